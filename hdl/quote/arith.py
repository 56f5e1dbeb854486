"""Pipelined arithmetic for the quoter: a multiplier on 18x18 partial products and a radix-2**r
divider.

The quoter prices one instrument at a time, and every cycle of its evaluation is on the
tick-to-trade path, so its products come from ECP5's 18x18 DSP blocks (``*`` of operands of at
most 18 bits, which Yosys ``synth_ecp5`` maps to MULT18X18D) summed in a registered adder tree,
and its quotients come several bits a cycle from a divider that compares the partial remainder
with every multiple of the divisor at once.
"""

from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "CHUNK_BITS",
    "PipelinedMultiplier",
    "RadixDivider",
    "divider_steps",
    "multiplier_latency",
    "times_constant",
]

#: Width of a partial product's operands: one MULT18X18D each.
CHUNK_BITS = 18


def _chunks(width: int) -> list[tuple[int, int]]:
    """``(offset, width)`` of each ``CHUNK_BITS`` slice of a ``width``-bit operand."""
    return [(lo, min(CHUNK_BITS, width - lo)) for lo in range(0, width, CHUNK_BITS)]


def _rows(terms: list[tuple[int, int]]) -> list[list[int]]:
    """Pack partial products ``(offset, width)`` into rows of non-overlapping ones (indices).

    A row is a concatenation, free in logic; only rows are added. First fit by offset.
    """
    rows: list[list[int]] = []
    ends: list[int] = []
    for index in sorted(range(len(terms)), key=lambda i: (terms[i][0], -terms[i][1])):
        offset, width = terms[index]
        for row, end in enumerate(ends):
            if end <= offset:
                rows[row].append(index)
                ends[row] = offset + width
                break
        else:
            rows.append([index])
            ends.append(offset + width)
    return rows


def _partial_products(a_width: int, b_width: int) -> list[tuple[int, int]]:
    return [(ao + bo, aw + bw) for ao, aw in _chunks(a_width) for bo, bw in _chunks(b_width)]


def multiplier_latency(a_width: int, b_width: int) -> int:
    """Cycles of :class:`PipelinedMultiplier` ``(a_width, b_width)``: the DSP stage, then one
    registered adder level per halving of the rows."""
    rows = len(_rows(_partial_products(a_width, b_width)))
    return 1 + (rows - 1).bit_length()


def divider_steps(q_width: int, radix_bits: int) -> int:
    """Cycles of :class:`RadixDivider` from ``start`` to its results: one per quotient digit."""
    return -(-q_width // radix_bits)


def _csd(k: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``k > 0``: ``(sign, shift)`` pairs, the fewest non-zero."""
    digits = []
    shift = 0
    while k:
        if k & 1:
            digit = 2 - (k & 3)   # +1 when k = 1 mod 4, -1 when k = 3 mod 4
            digits.append((digit, shift))
            k -= digit
        k >>= 1
        shift += 1
    return digits


def times_constant(value: Value, k: int) -> Value:
    """``value * k`` for a small constant ``k >= 0`` by shifts and adds (no DSP block): at most
    ``ceil(bits(k) / 2)`` terms, e.g. one adder for every ``k < 11``."""
    if k == 0:
        return Const(0, 1)
    digits = _csd(k)
    plus = [value << shift for sign, shift in digits if sign > 0]
    minus = [value << shift for sign, shift in digits if sign < 0]
    out = reduce(lambda x, y: x + y, plus)
    for term in minus:
        out = out - term
    return out


def _any(values: list[Value]) -> Value:
    """The OR of ``values``, as a balanced tree."""
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


class PipelinedMultiplier(wiring.Component):
    """Unsigned ``a * b`` from 18x18 partial products, fully pipelined.

    The operands are cut into 18-bit chunks; each pair of chunks is one DSP multiplier with a
    registered output. The partial products at the same or overlapping bit positions are
    packed into rows (partial products that do not overlap are concatenated, not added) and the
    rows are added pairwise, one registered adder level per cycle. An adder spans only the bits
    where its two rows overlap: the low bits of the lower row pass beside it.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths; the product has ``a_width + b_width`` bits.

    Ports
    -----
    a : In(a_width), b : In(b_width)
        Sampled every cycle.
    product : Out(a_width + b_width)
        ``a * b`` of ``latency`` cycles before.

    Attributes
    ----------
    latency : int
        :func:`multiplier_latency`: 1 for operands of at most 18 bits, 2 for e.g. 40 x 16, 3 for
        e.g. 48 x 32.

    Latency
    -------
    ``latency`` cycles: ``a`` and ``b`` held from cycle ``t`` give their product from cycle
    ``t + latency`` on.

    Throughput
    ----------
    One product a cycle.

    Bad input
    ---------
    None: every operand value has its exact product.
    """

    def __init__(self, a_width: int, b_width: int):
        self.a_width = a_width
        self.b_width = b_width
        self.latency = multiplier_latency(a_width, b_width)
        super().__init__({
            "a": In(a_width),
            "b": In(b_width),
            "product": Out(a_width + b_width),
        })

    def elaborate(self, platform):
        m = Module()
        width = self.a_width + self.b_width
        terms = []
        for ao, aw in _chunks(self.a_width):
            for bo, bw in _chunks(self.b_width):
                p = Signal(aw + bw, name=f"p_{ao}_{bo}")
                m.d.sync += p.eq(self.a[ao:ao + aw] * self.b[bo:bo + bw])
                terms.append((ao + bo, p))
        # Each row: (offset of its lowest bit, its value from there up).
        rows = []
        for members in _rows([(offset, len(p)) for offset, p in terms]):
            base = terms[members[0]][0]
            parts, at = [], base
            for index in members:
                offset, p = terms[index]
                parts += [Const(0, offset - at), p] if offset > at else [p]
                at = offset + len(p)
            rows.append((base, Cat(*parts)))
        level = 0
        while len(rows) > 1:
            summed = []
            for i in range(0, len(rows), 2):
                if i + 1 == len(rows):
                    base, value = rows[i]
                    reg = Signal(len(value), name=f"pass_{level}_{i}")
                    m.d.sync += reg.eq(value)
                    summed.append((base, reg))
                    continue
                (lo_base, lo), (hi_base, hi) = sorted(rows[i:i + 2], key=lambda r: r[0])
                split = hi_base - lo_base
                if len(lo) < split:
                    lo = Cat(lo, Const(0, split - len(lo)))
                top = max(lo_base + len(lo), hi_base + len(hi)) + 1
                reg = Signal(min(top, width) - lo_base, name=f"sum_{level}_{i}")
                m.d.sync += reg.eq(Cat(lo[:split], lo[split:] + hi))
                summed.append((lo_base, reg))
            rows = summed
            level += 1
        base, value = rows[0]
        m.d.comb += self.product.eq(value << base)
        return m


class RadixDivider(wiring.Component):
    """Unsigned ``n // d`` and ``n % d``, ``radix_bits`` quotient bits a cycle, for a quotient
    known to fit ``q_width`` bits.

    Each step appends ``radix_bits`` dividend bits to the partial remainder and compares the
    result with every multiple ``k * d``, ``0 < k < 2**radix_bits``, at once; the largest
    multiple not above it is subtracted and ``k`` is the quotient digit. The multiples are
    registered from ``d`` every cycle (each one adder of shifted ``d``), so that a step is a
    2-way select of its input (the dividend's top bits on ``start``, else the partial
    remainder), one subtraction of ``d_width + radix_bits`` bits and a one-hot select. The
    first step and the later ones share that logic.

    Parameters
    ----------
    n_width, d_width, q_width : int
        Dividend, divisor and quotient widths. The caller guarantees ``n < d << q_width`` (the
        quotient fits); the unit then takes ``ceil(q_width / radix_bits)`` steps whatever
        ``n_width`` is.
    radix_bits : int
        Quotient bits a step, 1 to 4.

    Ports
    -----
    start : In(1)
        Takes ``n`` this cycle, computes the first digit and starts (also while busy:
        restarts).
    n : In(n_width)
    d : In(d_width)
        Read every cycle: it must hold its value from the cycle before ``start`` until ``done``.
    busy : Out(1)
        High during the cycles after ``start`` until ``done``.
    done : Out(1)
        High for one cycle, the first cycle the results are valid.
    quotient : Out(q_width), remainder : Out(d_width)
        Hold the results until the next ``start``.

    Latency
    -------
    ``steps = ceil(q_width / radix_bits)`` cycles from ``start`` to ``done``
    (:func:`divider_steps`).

    Throughput
    ----------
    One division every ``steps`` cycles (a ``start`` in the cycle of ``done``).

    Bad input
    ---------
    ``d == 0`` or a quotient that does not fit gives meaningless results (no hang); callers rule
    both out and say how next to the call.
    """

    def __init__(self, n_width: int, d_width: int, q_width: int, radix_bits: int):
        if not 1 <= radix_bits <= 4:
            raise ValueError(f"radix_bits must be 1 to 4, not {radix_bits}")
        self.n_width = n_width
        self.d_width = d_width
        self.q_width = q_width
        self.radix_bits = radix_bits
        self.steps = divider_steps(q_width, radix_bits)
        super().__init__({
            "start": In(1),
            "n": In(n_width),
            "d": In(d_width),
            "busy": Out(1),
            "done": Out(1),
            "quotient": Out(q_width),
            "remainder": Out(d_width),
        })

    def elaborate(self, platform):
        m = Module()
        r = self.radix_bits
        dw = self.d_width
        qp = self.steps * r    # the quotient padded to whole digits; its top bits come out 0
        multiples = [None] + [Signal(dw + r, name=f"times_{k}") for k in range(1, 1 << r)]
        for k in range(1, 1 << r):
            m.d.sync += multiples[k].eq(times_constant(self.d, k))

        rem = Signal(dw)
        bits = Signal(qp)    # dividend bits leave at the top as quotient digits enter below
        left = Signal(range(self.steps + 1))
        n = Cat(self.n, Const(0, max(0, qp + dw - self.n_width)))

        def step(rem_in, bits_in):
            # ``rem_in < d``, so ``trial < d << r`` and the digit is below ``2**r``.
            trial = Cat(bits_in[qp - r:], rem_in)
            diffs = [trial] + [trial - multiples[k] for k in range(1, 1 << r)]
            fits = [Const(1)] + [~diff[-1] for diff in diffs[1:]] + [Const(0)]
            # ``fits`` is a thermometer code (k * d grows with k): the last 1 is the digit.
            pick = [fits[k] & ~fits[k + 1] for k in range(1 << r)]
            new_rem = _any([Mux(pick[k], diffs[k][:dw], 0) for k in range(1 << r)])
            digit = _any([Mux(pick[k], Const(k, r), 0) for k in range(1, 1 << r)])
            return new_rem, Cat(digit, bits_in[:qp - r])

        m.d.comb += [self.busy.eq(left != 0), self.quotient.eq(bits[:self.q_width]),
                     self.remainder.eq(rem)]
        # One step's logic serves the first digit and the later ones: its inputs are picked
        # before it rather than its results after two copies (half the subtractors and selects,
        # which all converge on ``rem``).
        new_rem, new_bits = step(Mux(self.start, n[qp:qp + dw], rem),
                                 Mux(self.start, n[:qp], bits))
        with m.If(self.start):
            m.d.sync += [rem.eq(new_rem), bits.eq(new_bits), left.eq(self.steps - 1),
                         self.done.eq(self.steps == 1)]
        with m.Elif(self.busy):
            m.d.sync += [rem.eq(new_rem), bits.eq(new_bits), left.eq(left - 1),
                         self.done.eq(left == 1)]
        with m.Else():
            m.d.sync += self.done.eq(0)
        return m
