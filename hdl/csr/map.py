"""The tickgate register map: every register the host can reach, declared once.

Everything else is generated from :data:`REGISTER_MAP`: the gateware bank
(:class:`~hdl.csr.bank.RegisterBank`), the host's map (``host/regmap.py``), the Markdown document
``docs/registers.md`` and the C header ``host/include/tickgate_regs.h``
(``python -m hdl.csr.docgen`` rewrites both; a test fails when they are stale).

How registers get here:

- a stage's counters come from its ``stats`` layout (:func:`stats_block`), so a new counter in a
  stage's ``Stat`` enum appears here, in the bank and on the host without further typing;
- a stage's configuration or status port becomes a block of the same fields (:func:`port_block`);
- host-set parameters are the dataclasses of :mod:`hdl.csr.params` (one field per register);
- the rest (control, link, per-instrument status) is declared below.

To add a stage's registers, append a block to :func:`register_blocks` (after the existing ones, so
no address moves) and connect its port where the core instantiates the control plane.
"""

from enum import IntEnum

from hdl.arch.mold import SEQ_BITS
from hdl.book.layout import SlotConfigLayout, slot_status_layout
from hdl.csr.params import PRICE, PortLimits, QuoteParams, RiskLimits
from hdl.csr.protocol import BridgeStat
from hdl.csr.reg import Access, Block, Fmt, Reg, RegisterMap, build_map
from hdl.feed.mold_rx import MoldRxStatusLayout
from hdl.net.udp_rx import UdpRxConfigLayout
from hdl.stats import stats_layout
from sim.book import BookStat
from sim.book_mirror import BookGeometry
from sim.itch_decode import ItchDecodeStat
from sim.mold_rx import MoldRxStat
from sim.order_entry import OuchTxStat
from sim.orders import OrderTableStat
from sim.ouch_rx import OuchRxStat
from sim.quoter import QuoterStat, RequoteStat
from sim.risk import RiskReason, RiskState
from sim.udp_rx import UdpRxStat

__all__ = ["MAGIC", "MAP_VERSION", "N_INSTRUMENTS", "REGISTER_MAP", "build_register_map",
           "layout_regs", "port_block", "register_blocks", "stats_block"]

#: Instrument slots of the book, the quoter, the risk gate and the per-instrument status: the
#: book's default geometry, so every per-instrument block has one element per tracked slot.
N_INSTRUMENTS = BookGeometry().slots
RISK_STATE_BITS = max(RiskState).bit_length()
RISK_REASON_BITS = max(RiskReason).bit_length()

#: ``ctrl.magic`` reads this ("TKGT" in ASCII): the host checks it finds a tickgate design.
MAGIC = 0x544B_4754
#: Version of the register map's conventions (framing, access modes), not of its contents:
#: the contents are identified by ``ctrl.map_hash``.
MAP_VERSION = 1


def stats_block(name: str, reasons: type[IntEnum], doc: str) -> Block:
    """One RO counter register per field of ``stats_layout(reasons)``, named as the field."""
    layout = stats_layout(reasons)
    regs = tuple(
        Reg(field_name, field.width, Access.RO, unit="events",
            doc=f"Counter {reasons.__name__}.{field_name.upper()}.")
        for field_name, field in layout)
    return Block(name, doc, regs, layout=layout)


def layout_regs(name: str, layout, access: Access, fields: dict[str, dict]) -> tuple[Reg, ...]:
    """One register per field of a stage's struct ``layout``, named as the field.

    ``fields`` gives each layout field's description (and optionally unit and ``fmt``); a layout
    field without an entry is an error, so a port that gains a field gets documented. RW
    registers are staged.
    """
    regs = []
    for field_name, field in layout:
        if field_name not in fields:
            raise KeyError(f"block {name}: describe the port's field {field_name!r}")
        regs.append(Reg(field_name, field.width, access,
                        staged=access is Access.RW, **fields[field_name]))
    extra = set(fields) - {field_name for field_name, _ in layout}
    if extra:
        raise KeyError(f"block {name}: {sorted(extra)} are not fields of the port")
    return tuple(regs)


def port_block(name: str, layout, access: Access, doc: str, fields: dict[str, dict]) -> Block:
    """A block mirroring a stage's struct port field for field (see :func:`layout_regs`)."""
    return Block(name, doc, layout_regs(name, layout, access, fields), layout=layout)


def register_blocks(n_instruments: int = N_INSTRUMENTS) -> list[Block]:
    """Every block of the map, in address order."""
    ro, rw, w1p = Access.RO, Access.RW, Access.W1P
    return [
        Block("ctrl", "Identification, arm/kill, host heartbeat watchdog, commit.", (
            Reg("magic", 32, ro, f"Reads 0x{MAGIC:08X} ('TKGT').", fmt=Fmt.HEX),
            Reg("map_version", 32, ro, "Version of the register conventions "
                f"(this document describes {MAP_VERSION})."),
            Reg("map_hash", 32, ro, "CRC-32 of the register layout; the host refuses a "
                "design whose hash differs from its own map.", fmt=Fmt.HEX),
            Reg("build_id", 32, ro, "Identifies the bitstream (e.g. the source revision).",
                fmt=Fmt.HEX),
            Reg("clk_hz", 32, ro, "Core clock frequency.", unit="Hz"),
            Reg("scratch", 32, rw, "Free for the host (link test)."),
            Reg("cycles", 64, ro, "Core clock cycles since reset.", unit="cycles"),
            Reg("commit", 1, w1p, "Write 1: apply every staged register in the same cycle."),
            Reg("commit_count", 32, ro, "Commits since reset (wraps).", unit="commits"),
            Reg("arm", 1, w1p, "Write 1: allow trading; clears killed and heartbeat_lost."),
            Reg("kill", 1, w1p, "Write 1: stop trading and cancel every live order."),
            Reg("heartbeat", 1, w1p, "Write 1: the host is alive (restarts the watchdog)."),
            Reg("heartbeat_timeout", 32, rw, "Cycles without a heartbeat, while armed, "
                "that disarm and set heartbeat_lost; 0 disables the watchdog.", unit="cycles"),
            Reg("heartbeat_age", 32, ro, "Cycles since the last heartbeat or arm "
                "(saturates).", unit="cycles"),
            Reg("armed", 1, ro, "Trading allowed.", fmt=Fmt.BOOL),
            Reg("killed", 1, ro, "Disarmed by kill (until the next arm).", fmt=Fmt.BOOL),
            Reg("heartbeat_lost", 1, ro, "Disarmed by the watchdog (until the next arm).",
                fmt=Fmt.BOOL),
        )),
        stats_block("bridge_stats", BridgeStat, "UART register bridge counters."),
        port_block("net", UdpRxConfigLayout, rw, "Feed ingress: where the feed is sent "
                   "(UdpRx ``endpoint``).", {
                       "mac": {"doc": "Destination MAC of the feed.", "fmt": Fmt.MAC},
                       "ip": {"doc": "Destination IPv4 address of the feed.",
                              "fmt": Fmt.IPV4},
                       "port": {"doc": "Destination UDP port of the feed."},
                   }),
        port_block("mold", MoldRxStatusLayout, ro, "MoldUDP64 sequencing state (MoldRx "
                   "``status``).", {
                       "expected": {"doc": "Next sequence number wanted."},
                       "session": {"doc": "Session of the feed (latched from the first "
                                          "packet).", "fmt": Fmt.TEXT},
                       "session_valid": {"doc": "A session has been latched.",
                                         "fmt": Fmt.BOOL},
                       "ended": {"doc": "An end-of-session packet was seen.", "fmt": Fmt.BOOL},
                   }),
        Block("mold_recovery", "MoldUDP64 gaps for the host to re-request, oldest first, and "
              "setting the expected sequence number after a recovery.", (
                  Reg("gap_pending", 1, ro, "A gap waits in gap_first/gap_count.",
                      fmt=Fmt.BOOL),
                  Reg("gap_first", SEQ_BITS, ro, "First missing sequence number of the oldest "
                      "gap (valid while gap_pending)."),
                  Reg("gap_count", SEQ_BITS, ro, "Number of messages missing in that gap.",
                      unit="messages"),
                  Reg("gap_pop", 1, w1p, "Write 1: drop the oldest gap (read it first)."),
                  Reg("next_expected", SEQ_BITS, rw, "Sequence number for set_expected."),
                  Reg("set_expected", 1, w1p, "Write 1: make next_expected the expected "
                      "sequence number (MoldRx takes it between packets)."),
                  Reg("set_pending", 1, ro, "A set_expected has not been taken yet.",
                      fmt=Fmt.BOOL),
              )),
        stats_block("udp_rx_stats", UdpRxStat, "Ethernet/IPv4/UDP receive counters."),
        stats_block("mold_rx_stats", MoldRxStat, "MoldUDP64 sequencing counters."),
        stats_block("itch_decode_stats", ItchDecodeStat, "ITCH 5.0 decode counters."),
        stats_block("book_stats", BookStat, "Order book counters."),
        Block("book", "Top of book per instrument slot, as the book reports it (Book "
              "``status``); an empty side reads price 0 and 0 shares.", layout_regs(
                  "book", slot_status_layout(), ro, {
                      "bound": {"doc": "The slot tracks a stock locate (given, or learned "
                                       "from the stock directory for its symbol).",
                                "fmt": Fmt.BOOL},
                      "locate": {"doc": "Stock locate tracked (valid while bound)."},
                      "halted": {"doc": "Trading halted (ITCH trading action).",
                                 "fmt": Fmt.BOOL},
                      "degraded": {"doc": "The book ran out of room and may be wrong "
                                          "(until slot.clear_degraded).", "fmt": Fmt.BOOL},
                      "bid_price": {"doc": "Best bid price.", "unit": PRICE},
                      "bid_shares": {"doc": "Shares at the best bid.", "unit": "shares"},
                      "ask_price": {"doc": "Best ask price.", "unit": PRICE},
                      "ask_shares": {"doc": "Shares at the best ask.", "unit": "shares"},
                  }), count=n_instruments, reserve=16),
        Block("position", "Position and order state per instrument slot.", (
            Reg("position", 32, ro, "Net position (long positive).", signed=True,
                unit="shares"),
            Reg("live_orders", 16, ro, "Orders resting at the exchange.", unit="orders"),
            Reg("unacked_orders", 16, ro, "Orders sent and not yet acknowledged.",
                unit="orders"),
        ), count=n_instruments, reserve=8),
        Block.from_dataclass("quote", QuoteParams, "Quote parameters per instrument slot.",
                             count=n_instruments, reserve=32),
        Block.from_dataclass("risk", RiskLimits, "Risk limits per instrument slot.",
                             count=n_instruments, reserve=16),
        Block.from_dataclass("port_limits", PortLimits, "Order port limits."),
        Block("slot", "What each instrument slot of the book tracks (Book ``cfg``), and its "
              "clear strobes. Changing a slot's configuration unbinds a symbol slot.", (
                  *layout_regs("slot", SlotConfigLayout, rw, {
                      "enable": {"doc": "Track an instrument in this slot.", "fmt": Fmt.BOOL},
                      "by_symbol": {"doc": "Track the locate that the stock directory "
                                           "message (R) announces for symbol; else locate.",
                                    "fmt": Fmt.BOOL},
                      "locate": {"doc": "Stock locate to track (by_symbol = 0)."},
                      "symbol": {"doc": "Symbol to track (by_symbol = 1), space padded.",
                                 "fmt": Fmt.SYMBOL},
                  }),
                  Reg("clear_degraded", 1, w1p, "Write 1: clear the slot's degraded flag "
                      "(after the host has dealt with the cause)."),
                  Reg("clear_book", 1, w1p, "Write 1: empty the slot's book."),
              ), count=n_instruments, reserve=8),
        Block("risk_state", "Risk gate state per instrument slot (RiskGate ``state``), a cycle "
              "late.", (
                  Reg("state", RISK_STATE_BITS, ro, "ACTIVE, REDUCING (orders may only reduce "
                      "the position) or HALTED (live orders are canceled).", enum=RiskState),
                  Reg("cause", RISK_REASON_BITS, ro, "Why the slot is not ACTIVE (PASSED when "
                      "it is).", enum=RiskReason),
              ), count=n_instruments, reserve=2),
        Block("order_entry", "OUCH order entry: ClOrdID prefix and UserRefNum counter.", (
            Reg("clordid_prefix", 48, rw, "ClOrdID prefix, up to 6 characters, first in bits "
                "7..0, ending at the first zero byte; the UserRefNum follows in 8 hexadecimal "
                "digits.", reset=int.from_bytes(b"TKG", "little"), fmt=Fmt.HEX, staged=True),
            Reg("next_user_ref", 33, ro, "Next UserRefNum the encoder gives; 2**32 once they "
                "are exhausted."),
            Reg("set_user_ref", 32, rw, "UserRefNum for set_next (after a reconnection: the "
                "exchange's NextUserRefNum).", reset=1, min=1),
            Reg("set_next", 1, w1p, "Write 1: make set_user_ref the next UserRefNum."),
        )),
        stats_block("quoter_stats", QuoterStat, "Quoter counters."),
        stats_block("requote_stats", RequoteStat, "Requote and hedge action counters."),
        stats_block("risk_stats", RiskReason, "Risk gate decisions by reason."),
        stats_block("order_table_stats", OrderTableStat, "Order table counters."),
        stats_block("ouch_tx_stats", OuchTxStat, "OUCH encoder counters."),
        stats_block("ouch_rx_stats", OuchRxStat, "OUCH answer decoder counters."),
    ]


def build_register_map(n_instruments: int = N_INSTRUMENTS) -> RegisterMap:
    """The register map with ``n_instruments`` instrument slots."""
    return build_map(register_blocks(n_instruments), commit="ctrl.commit")


#: The register map of the design.
REGISTER_MAP = build_register_map()
