"""OUCH 5.0 order entry, outbound: approved order actions in, SoupBinTCP packets out.

Twin of :class:`sim.order_entry.OrderEntry`: each action becomes one OUCH message in one
SoupBinTCP unsequenced data packet, byte for byte as ``OrderEntry.send(action).packet``.

- New -> Enter Order with a fresh UserRefNum, the slot's symbol, the action's side, quantity,
  price and time in force; Replace -> Replace Order Request naming ``ref``, with a fresh
  UserRefNum; Cancel -> Cancel Order Request for ``ref``, quantity 0, no appendage. Day orders
  carry the PostOnly option. The constant fields are the model's (``sim.order_entry.ORDER_POLICY``).
- The UserRefNum counter starts at ``first_user_ref`` (or the value last written to
  ``i_next_ref``) and is taken by every Enter and Replace Order. After ``MAX_USER_REF`` it is
  exhausted: Enter and Replace Orders are refused and counted (cancels still go), never wrapped.
- ClOrdID: the prefix (up to 6 characters, ending at the first zero byte of
  ``clordid_prefix``), the UserRefNum as 8 upper-case hexadecimal digits, spaces to 14.

How it works
------------
Two register stages. The accept stage checks the action, takes the UserRefNum, looks up the
symbol and writes the ClOrdID's characters, all into registers. The frame stage is a shift
register holding the whole packet (at most 7 beats), loaded from the accept stage's registers
through one multiplexer per byte (which message), then shifted by a beat per transfer: the
output beat is its low 64 bits, with no multiplexer behind it. The frame stage loads the next
packet in the cycle the last beat of the current one leaves, so packets go back to back.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BEAT_BYTES, BeatStream
from hdl.arch.ouch import (
    INBOUND_SPECS,
    UNSEQUENCED_DATA,
    USER_REF_BITS,
    TimeInForceCode,
    appendage_bytes,
    message_bytes,
    packet_bytes,
)
from hdl.quote.order_action import OrderActionLayout
from hdl.stats import count, stats_layout
from sim.itch_event import Side
from sim.order_entry import DAY_OPTIONS, MAX_USER_REF, ORDER_POLICY, SIDE_CODES, OuchTxStat
from sim.orders import ActionKind

__all__ = ["CLORDID_PREFIX_CHARS", "OUCH_TX_LATENCY", "OuchTx", "SentLayout"]

_CL_ORD_ID = INBOUND_SPECS["O"].field("cl_ord_id")
_HEX_DIGITS = USER_REF_BITS // 4
#: Characters of the ClOrdID in front of the hexadecimal UserRefNum.
CLORDID_PREFIX_CHARS = _CL_ORD_ID.size - _HEX_DIGITS
#: Cycles from an action accepted on ``i`` to its first beat offered on ``o``, the output free.
OUCH_TX_LATENCY = 2
_SYMBOL_BYTES = INBOUND_SPECS["O"].field("symbol").size


#: One per message sent: the UserRefNum it carries (the new one of an Enter or Replace Order,
#: the canceled one of a Cancel Order) and the action it came from.
SentLayout = data.StructLayout({"user_ref": USER_REF_BITS, "action": OrderActionLayout})


def _hex_digit(nibble):
    """The upper-case hexadecimal character of a 4-bit value."""
    return Mux(nibble < 10, ord("0") + nibble, ord("A") - 10 + nibble)[:8]


class OuchTx(wiring.Component):
    """OUCH 5.0 encoder: one SoupBinTCP unsequenced data packet per approved order action.

    Parameters
    ----------
    slots : int
        Entries of the symbol table (instrument slots 0 to ``slots - 1``), 1 to 256.
    first_user_ref : int
        The UserRefNum counter after reset, 1 to ``MAX_USER_REF`` (``OrderEntry``'s
        ``first_user_ref``).

    Ports
    -----
    i : In(stream.Signature(OrderActionLayout))
        Approved actions. ``ref`` names the order replaced or canceled; the order table has
        checked that it exists and is not busy.
    o : Out(BeatStream())
        The packets, lane 0 first on the wire; ``first`` on the first beat, ``last`` on the
        last, whose ``keep`` marks its bytes (from lane 0); other beats are full; ``error`` is 0.
    o_sent : Out(stream.Signature(SentLayout))
        One per packet, offered in the cycle its first beat is: the UserRefNum the message
        carries, for the order table. A packet waits until its report can be offered.
    i_next_ref : In(stream.Signature(32))
        Sets the next UserRefNum (the exchange's NextUserRefNum after a reconnection); it takes
        priority over ``i`` in the same cycle. A 0 is ignored and counted (``BAD_NEXT_REF``).
    symbols : In(data.ArrayLayout(64, slots))
        Per slot, the symbol's 8 characters, first in bits 7..0; zero bytes are sent as spaces.
        A slot whose symbol is 0 has no instrument.
    clordid_prefix : In(data.ArrayLayout(8, 6))
        The ClOrdID prefix's characters, first in element 0, ending at the first zero byte. A
        change applies to actions accepted from the second cycle after it.
    stats : Out(stats_layout(OuchTxStat))
        48-bit counters, updated 2 cycles after the event (the accept, or the packet's
        hand-over to the frame stage for ``MESSAGES``).
    next_ref : Out(33)
        The next UserRefNum; ``MAX_USER_REF + 1`` once exhausted.
    busy : Out(1)
        An accepted action has not yet had its UserRefNum report taken from ``o_sent``: the
        order table does not know of it yet.

    Latency
    -------
    2 cycles from an action accepted to its first beat offered on ``o`` when the output is
    free; the UserRefNum report is offered in the same cycle.

    Throughput
    ----------
    One beat per cycle; packets leave back to back: a message of ``n`` beats every ``n``
    cycles (Enter Order 7 beats, Replace Order 6, Cancel Order 2). ``i`` is ready whenever the
    accept stage is empty or hands over in the same cycle.

    Bad input
    ---------
    Refused, counted, no output, no UserRefNum taken: an action kind or (except for a cancel) a
    time in force outside its enum (``BAD_ACTION``); a new order for a slot at or above
    ``slots`` or whose symbol is 0 (``UNKNOWN_SLOT``); an Enter or Replace Order once the
    UserRefNums are exhausted (``REFS_EXHAUSTED``). Nothing stalls on bad input.
    """

    def __init__(self, *, slots: int = 8, first_user_ref: int = 1):
        if not 1 <= slots <= 256:
            raise ValueError(f"slots must be in 1..256, got {slots}")
        if not 1 <= first_user_ref <= MAX_USER_REF:
            raise ValueError(f"first_user_ref must be in 1..{MAX_USER_REF}, got {first_user_ref}")
        self._slots = slots
        self._first_user_ref = first_user_ref
        super().__init__({
            "i": In(stream.Signature(OrderActionLayout)),
            "o": Out(BeatStream()),
            "o_sent": Out(stream.Signature(SentLayout)),
            "i_next_ref": In(stream.Signature(USER_REF_BITS)),
            "symbols": In(data.ArrayLayout(8 * _SYMBOL_BYTES, slots)),
            "clordid_prefix": In(data.ArrayLayout(8, CLORDID_PREFIX_CHARS)),
            "stats": Out(stats_layout(OuchTxStat)),
            "next_ref": Out(USER_REF_BITS + 1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        act, stats = self.i.payload, self.stats

        # --- The UserRefNum counter and the ClOrdID it gives, from registers only.
        next_ref = Signal(USER_REF_BITS + 1, init=self._first_user_ref)
        exhausted = next_ref[USER_REF_BITS]
        m.d.comb += self.next_ref.eq(next_ref)

        prefix = self.clordid_prefix
        prefix_len = Signal(range(CLORDID_PREFIX_CHARS + 1))
        first_zero = Signal.like(prefix_len)
        m.d.comb += first_zero.eq(CLORDID_PREFIX_CHARS)
        for k in reversed(range(CLORDID_PREFIX_CHARS)):
            with m.If(prefix[k] == 0):
                m.d.comb += first_zero.eq(k)
        m.d.sync += prefix_len.eq(first_zero)

        digits = [_hex_digit(next_ref[4 * (_HEX_DIGITS - 1 - k):][:4]) for k in range(_HEX_DIGITS)]
        cl_ord_id = [Signal(8, name=f"cl_ord_id{j}") for j in range(_CL_ORD_ID.size)]
        with m.Switch(prefix_len):
            for length in range(CLORDID_PREFIX_CHARS + 1):
                with m.Case(length):
                    for j, char in enumerate(cl_ord_id):
                        if j < length:
                            m.d.comb += char.eq(prefix[j])
                        elif j < length + _HEX_DIGITS:
                            m.d.comb += char.eq(digits[j - length])
                        else:
                            m.d.comb += char.eq(ord(" "))

        # --- Accept stage: check the action, take the UserRefNum, look up the symbol.
        is_new = act.kind == ActionKind.NEW
        is_cancel = act.kind == ActionKind.CANCEL
        kind_ok = Cat(*(act.kind == kind for kind in ActionKind)).any()
        tif_ok = Cat(*(act.tif == code for code in TimeInForceCode)).any()
        symbol = Signal(8 * _SYMBOL_BYTES)
        m.d.comb += symbol.eq(self.symbols[act.slot])
        slot_known = (act.slot < self._slots) & symbol.any()
        # A symbol register holds the characters; the padding up to 8 goes out as spaces.
        spaced = Cat(*(Mux(symbol[8 * k:8 * k + 8] == 0, ord(" "), symbol[8 * k:8 * k + 8])[:8]
                       for k in range(_SYMBOL_BYTES)))

        bad_action = Signal()
        unknown_slot = Signal()
        no_ref = Signal()
        m.d.comb += [
            bad_action.eq(~kind_ok | (~is_cancel & ~tif_ok)),
            unknown_slot.eq(~bad_action & is_new & ~slot_known),
            no_ref.eq(~bad_action & ~unknown_slot & ~is_cancel & exhausted),
        ]

        a_full = Signal()
        a_ref = Signal(USER_REF_BITS)       # the UserRefNum the message carries
        a_orig = Signal(USER_REF_BITS)
        a_side = Signal(8)
        a_symbol = Signal(8 * _SYMBOL_BYTES)
        a_cl_ord_id = Signal(8 * _CL_ORD_ID.size)
        a_action = Signal(OrderActionLayout)

        # The packets the frame stage can hold: one per message and option set.
        tif = a_action.tif.as_value()
        enter = {"user_ref_num": a_ref, "side": a_side, "quantity": a_action.quantity,
                 "symbol": a_symbol, "price": a_action.price, "time_in_force": tif,
                 "cl_ord_id": a_cl_ord_id, **ORDER_POLICY}
        replace = {"orig_user_ref_num": a_orig, "user_ref_num": a_ref,
                   "quantity": a_action.quantity, "price": a_action.price,
                   "time_in_force": tif, "display": ORDER_POLICY["display"],
                   "intermarket_sweep": ORDER_POLICY["intermarket_sweep"],
                   "cl_ord_id": a_cl_ord_id}
        cancel = {"user_ref_num": a_ref, "quantity": 0}
        variants = []
        for spec, values in ((INBOUND_SPECS["O"], enter), (INBOUND_SPECS["U"], replace)):
            for options in ((), DAY_OPTIONS):
                variants.append(packet_bytes(UNSEQUENCED_DATA,
                                             message_bytes(spec, values, appendage_bytes(options))))
        variants.append(packet_bytes(UNSEQUENCED_DATA, message_bytes(INBOUND_SPECS["X"], cancel)))
        frame_bytes = max(len(v) for v in variants)
        max_beats = -(-frame_bytes // BEAT_BYTES)
        a_variant = Signal(range(len(variants)))

        post_only = act.tif == TimeInForceCode.DAY
        variant_of = Mux(is_cancel, len(variants) - 1, Cat(post_only, act.kind != ActionKind.NEW))

        # --- Frame stage: the packet in a shift register, the output beat in its low bits.
        frame = Signal(8 * BEAT_BYTES * max_beats)
        beats_left = Signal(range(max_beats + 1))
        b_last = Signal()
        b_first = Signal()
        b_last_keep = Signal(BEAT_BYTES)
        out = self.o.payload
        m.d.comb += [
            out.data.eq(frame[:8 * BEAT_BYTES]),
            out.keep.eq(Mux(b_last, b_last_keep, (1 << BEAT_BYTES) - 1)),
            out.first.eq(b_first),
            out.last.eq(b_last),
            out.error.eq(0),
        ]

        frame_free = ~self.o.valid | (self.o.ready & b_last)
        sent_free = ~self.o_sent.valid | self.o_sent.ready
        hand_over = Signal()
        accept = Signal()
        load = Signal()
        m.d.comb += [
            hand_over.eq(a_full & frame_free & sent_free),
            self.i.ready.eq(~self.i_next_ref.valid & (~a_full | hand_over)),
            accept.eq(self.i.valid & self.i.ready),
            load.eq(accept & ~bad_action & ~unknown_slot & ~no_ref),
        ]

        with m.If(load):
            m.d.sync += [
                a_full.eq(1),
                a_ref.eq(Mux(is_cancel, act.ref, next_ref[:USER_REF_BITS])),
                a_orig.eq(act.ref),
                a_side.eq(Mux(act.side == Side.SELL, ord(SIDE_CODES[Side.SELL]),
                              ord(SIDE_CODES[Side.BUY]))),
                a_symbol.eq(spaced),
                a_cl_ord_id.eq(Cat(*cl_ord_id)),
                a_action.eq(act),
                a_variant.eq(variant_of),
            ]
            with m.If(~is_cancel):
                m.d.sync += next_ref.eq(next_ref + 1)
        with m.Elif(hand_over):
            m.d.sync += a_full.eq(0)

        with m.If(self.i_next_ref.valid):
            with m.If(self.i_next_ref.payload != 0):
                m.d.sync += next_ref.eq(self.i_next_ref.payload)
        m.d.comb += self.i_next_ref.ready.eq(1)

        with m.If(hand_over):
            with m.Switch(a_variant):
                for index, packet in enumerate(variants):
                    beats = -(-len(packet) // BEAT_BYTES)
                    tail = len(packet) - BEAT_BYTES * (beats - 1)
                    with m.Case(index):
                        m.d.sync += [
                            frame.eq(Cat(*packet)),
                            beats_left.eq(beats),
                            b_last.eq(beats == 1),
                            b_last_keep.eq((1 << tail) - 1),
                        ]
            m.d.sync += [
                self.o.valid.eq(1),
                b_first.eq(1),
                self.o_sent.valid.eq(1),
                self.o_sent.payload.user_ref.eq(a_ref),
                self.o_sent.payload.action.eq(a_action),
            ]
        with m.Else():
            with m.If(self.o.valid & self.o.ready):
                with m.If(b_last):
                    m.d.sync += self.o.valid.eq(0)
                m.d.sync += [
                    frame.eq(frame >> (8 * BEAT_BYTES)),
                    beats_left.eq(beats_left - 1),
                    b_last.eq(beats_left == 2),
                    b_first.eq(0),
                ]
            with m.If(self.o_sent.ready):
                m.d.sync += self.o_sent.valid.eq(0)

        m.d.comb += self.busy.eq(a_full | self.o_sent.valid)

        # --- Counters.
        count(m, stats.messages, hand_over)
        count(m, stats.bad_action, accept & bad_action)
        count(m, stats.unknown_slot, accept & unknown_slot)
        count(m, stats.refs_exhausted, accept & no_ref)
        count(m, stats.bad_next_ref, self.i_next_ref.valid & (self.i_next_ref.payload == 0))
        return m
