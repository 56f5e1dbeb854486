"""The core (``hdl/top.py``: feed ingress and order book) under cocotb.

Used by the core's test bench (``tests/cocotb/tb_top.py``) and by ``tickgate replay --until book``,
so a replay drives the gateware exactly as the verified test bench does.
"""

from cocotb.triggers import ClockCycles, RisingEdge

from hdl.top import FeedBook
from host.gatesim.ingress_tb import FeedInputTB
from host.gatesim.streams import StreamSink, pack, unpack

__all__ = ["FeedBookTB"]

BID, ASK = 0, 1


class FeedBookTB(FeedInputTB):
    """Testbench of a ``FeedBook`` toplevel.

    Parameters
    ----------
    dut
        The cocotb toplevel.
    core : FeedBook, optional
        An instance built like the design under test (for its layouts and geometry); default
        ``FeedBook()``.

    Attributes
    ----------
    updates : StreamSink
        Top-of-book updates from ``o``, as dicts of the ``sim.book.TopUpdate`` fields.
    geometry : BookGeometry
    """

    def __init__(self, dut, core: FeedBook | None = None):
        core = core if core is not None else FeedBook()
        super().__init__(dut, core)
        members = dict(core.signature.members)
        self.geometry = core.geometry
        self.cfg_layout = members["cfg"].shape
        self.book_status_layout = members["book_status"].shape
        self.q_addr_layout = members["q_addr"].shape
        self.q_data_layout = members["q_data"].shape
        self.updates = StreamSink(self, "o", members["o"].signature.members["payload"].shape)
        dut.clear_degraded.value = 0
        dut.clear_book.value = 0
        dut.q_addr.value = 0
        self.attach(self)

    def outputs(self) -> list[StreamSink]:
        return [self.updates, self.gaps]

    def track(self, slots: list[dict]) -> None:
        """Set every slot's configuration (``SlotConfigLayout`` fields, slot 0 first)."""
        self.dut.cfg.value = pack(self.cfg_layout, dict(enumerate(slots)))

    async def start(self, reset_cycles: int = 4):
        await super().start(reset_cycles)
        await self.book_ready()

    async def book_ready(self) -> None:
        """Until the book's reset sweep of its tables is over (events would only queue)."""
        while int(self.dut.book_busy.value):
            await ClockCycles(self.dut.clk, 16)

    async def drain(self, quiet_cycles: int = 32, limit: int = 10_000_000):
        """Wait until every frame went in and the book has had nothing to do for
        ``quiet_cycles`` (a clear or a refill keeps the output quiet for thousands of cycles
        while the book is still busy)."""
        # Coarse while the source still has beats: one wake-up per cycle here would cost as much
        # simulation time as the clocked loop itself.
        while not self.source.idle():
            await ClockCycles(self.dut.clk, 64)
        calm, seen = 0, [len(sink.transfers) for sink in self.outputs()]
        for _ in range(limit):
            await RisingEdge(self.dut.clk)
            now = [len(sink.transfers) for sink in self.outputs()]
            busy = now != seen or not int(self.dut.book_idle.value) or \
                int(self.dut.o__valid.value)
            calm, seen = (0 if busy else calm + 1), now
            if calm >= quiet_cycles:
                return
        raise TimeoutError(f"the core is still busy after {limit} cycles")

    def book_status(self) -> dict[int, dict]:
        """Each slot's binding, flags and top of book, by slot."""
        return unpack(self.book_status_layout, int(self.dut.book_status.value))

    def hazard(self) -> bool:
        return bool(int(self.dut.book_hazard.value))

    async def read_depth(self, slot: int, side: int) -> list[list[int]]:
        """The published levels of one side, best first, as ``[price, shares]`` pairs."""
        levels = []
        for level in range(self.geometry.depth):
            self.dut.q_addr.value = pack(self.q_addr_layout,
                                         {"slot": slot, "side": side, "level": level})
            # Written after this edge, registered at the next, read out one cycle later.
            await ClockCycles(self.dut.clk, 3)
            read = unpack(self.q_data_layout, int(self.dut.q_data.value))
            if read["shares"] == 0:
                break
            levels.append([read["price"], read["shares"]])
        return levels

    async def final_books(self, slots: int) -> list[dict]:
        """The books of slots ``0 .. slots - 1`` as the host reads them: status and depth."""
        status = self.book_status()
        books = []
        for slot in range(slots):
            st = status[slot]
            books.append({
                "slot": slot, "locate": st["locate"],
                "bid_price": st["bid_price"], "bid_shares": st["bid_shares"],
                "ask_price": st["ask_price"], "ask_shares": st["ask_shares"],
                "bids": await self.read_depth(slot, BID),
                "asks": await self.read_depth(slot, ASK),
                "halted": st["halted"], "degraded": st["degraded"],
            })
        return books
