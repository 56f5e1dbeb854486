"""Sequential arithmetic for the quoter: a shift-and-add multiplier and a restoring divider.

The quoter evaluates one instrument at a time over some hundred cycles, so its products and
quotients are computed one bit per cycle: each unit is a single adder (or subtractor) no wider
than its narrow operand plus the other one, with registers on both sides, instead of a wide
combinational multiplier or divider that ECP5 could not close at 125-156 MHz.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RestoringDivider", "ShiftAddMultiplier"]


class ShiftAddMultiplier(wiring.Component):
    """Unsigned ``a * b``, one bit of ``b`` per cycle.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths; the product has ``a_width + b_width`` bits and takes ``b_width`` steps,
        so the narrower operand should be ``b``.

    Ports
    -----
    start : In(1)
        Takes ``a`` and ``b`` this cycle and starts (also while busy: restarts).
    a : In(a_width), b : In(b_width)
    busy : Out(1)
        High during the ``b_width`` cycles after ``start``.
    done : Out(1)
        High for one cycle, the first cycle ``product`` holds the result.
    product : Out(a_width + b_width)
        Holds the result until the next ``start``.

    Latency
    -------
    ``b_width + 1`` cycles from ``start`` to ``done``.

    Throughput
    ----------
    One product every ``b_width + 1`` cycles.

    Bad input
    ---------
    None: every operand value has its exact product.
    """

    def __init__(self, a_width: int, b_width: int):
        self.a_width = a_width
        self.b_width = b_width
        super().__init__({
            "start": In(1),
            "a": In(a_width),
            "b": In(b_width),
            "busy": Out(1),
            "done": Out(1),
            "product": Out(a_width + b_width),
        })

    def elaborate(self, platform):
        m = Module()
        a = Signal(self.a_width)
        b = Signal(self.b_width)
        steps = Signal(range(self.b_width + 1))
        acc = self.product
        m.d.comb += self.busy.eq(steps != 0)
        m.d.sync += self.done.eq(steps == 1)
        with m.If(self.start):
            m.d.sync += [a.eq(self.a), b.eq(self.b), acc.eq(0), steps.eq(self.b_width)]
        with m.Elif(self.busy):
            # The accumulator shifts right one bit a step and the partial product enters at its
            # top, so the adder is a_width + 1 bits wide whatever the product's width.
            top = acc[self.b_width:] + Mux(b[0], a, 0)
            m.d.sync += [
                acc.eq(Cat(acc[1:self.b_width], top)),
                b.eq(b >> 1),
                steps.eq(steps - 1),
            ]
        return m


class RestoringDivider(wiring.Component):
    """Unsigned ``n // d`` and ``n % d`` for a quotient known to fit ``q_width`` bits.

    Parameters
    ----------
    n_width, d_width, q_width : int
        Dividend, divisor and quotient widths. The caller guarantees ``n < d << q_width`` (the
        quotient fits); the unit then takes ``q_width`` steps whatever ``n_width`` is.

    Ports
    -----
    start : In(1)
        Takes ``n`` and ``d`` this cycle and starts (also while busy: restarts).
    n : In(n_width), d : In(d_width)
    busy : Out(1)
        High during the ``q_width`` cycles after ``start``.
    done : Out(1)
        High for one cycle, the first cycle the results are valid.
    quotient : Out(q_width), remainder : Out(d_width)
        Hold the results until the next ``start``.

    Latency
    -------
    ``q_width + 1`` cycles from ``start`` to ``done``.

    Throughput
    ----------
    One division every ``q_width + 1`` cycles.

    Bad input
    ---------
    ``d == 0`` or a quotient that does not fit gives meaningless results (no hang); callers rule
    both out and say how next to the call.
    """

    def __init__(self, n_width: int, d_width: int, q_width: int):
        self.n_width = n_width
        self.d_width = d_width
        self.q_width = q_width
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
        d = Signal(self.d_width)
        rem = self.remainder
        # The dividend's low bits leave at the top as quotient bits enter at the bottom.
        bits = self.quotient
        steps = Signal(range(self.q_width + 1))
        m.d.comb += self.busy.eq(steps != 0)
        m.d.sync += self.done.eq(steps == 1)
        with m.If(self.start):
            m.d.sync += [
                d.eq(self.d),
                rem.eq(self.n[self.q_width:]),
                bits.eq(self.n[:self.q_width]),
                steps.eq(self.q_width),
            ]
        with m.Elif(self.busy):
            # ``rem < d`` holds before every step, so the shifted-in value is below 2 * d.
            trial = Cat(bits[-1], rem)
            fits = trial >= d
            m.d.sync += [
                rem.eq(Mux(fits, trial - d, trial)),
                bits.eq(Cat(fits, bits[:-1])),
                steps.eq(steps - 1),
            ]
        return m
