"""The whole core's bench work in each cycle: :class:`~host.gatesim.loop_driver.LoopDriver` on
the core's own ports.

The core (:class:`~hdl.top.TickgateCore`) takes the feed as Ethernet frames (``s_axis_t*``) and
the exchange's answers as AXI-Stream frames (``s_axis_answer_t*``), and sends its orders on
``m_axis_t*``; its book makes the top updates the loop bench hands over itself. So the driver
gives each step's beats to the Ethernet input, expects the step's top updates from the core's
own book on the ``o_top`` monitor, in the model's order and equal to the model's field for
field (a difference fails the run at once, naming the update), and reads decisions and fills
from the same monitors as the loop's. Parameters, symbols and arm come from the host driver
through the register map before the run (the launcher's job), not from here.
"""

from __future__ import annotations

from collections import deque

from host.gatesim.loop_driver import LoopDriver, Ports, Shares, payload_layout
from host.gatesim.loop_world import Step
from host.gatesim.streams import unpack

__all__ = ["CoreDriver", "TopMismatch"]

_TOP_FIELDS = ("slot", "locate", "bid_price", "bid_shares", "ask_price", "ask_shares", "seq",
               "timestamp", "halted", "degraded")


class TopMismatch(AssertionError):
    """The core's book made a top update other than the model's."""


class CoreDriver(LoopDriver):
    """One run of the core bench; ``component`` is the :class:`~hdl.top.TickgateCore`
    simulated (its port layouts are read, nothing else). The launcher counts the bench's
    cycles from the first after reset, set-up through the register map included, so that they
    are the core's own clock (the risk gate's decision times)."""

    def __init__(self, component, config, world, **options):
        if options.get("kill_at") is not None:
            raise ValueError("the core bench disarms through the register map, not kill_at")
        super().__init__(component, config, world, **options)
        self._beats: deque = deque()      # (beat, feed item it ends or None) of the steps given
        self._out_first = True            # the next order beat starts a packet
        self.top_mismatches = 0

    def _read_layouts(self, component) -> None:
        self.top_layout = payload_layout(component, "o_top")
        self.decision_layout = payload_layout(component, "o_decision")
        self.fill_layout = payload_layout(component, "o_fill")

    def configure(self, ports: Ports) -> None:
        """Only ``m_axis`` ready: the host driver set everything else up."""
        ports.set("m_axis_tready", 1)

    def _give(self, step: Step, cycle: int) -> None:
        last = len(step.beats) - 1
        self._beats.extend((beat, step.item if k == last else None)
                           for k, beat in enumerate(step.beats))
        super()._give(step, cycle)

    def _waiting(self) -> bool:
        return bool(self._beats or super()._waiting())

    def _drive_feed(self, ports: Ports) -> None:
        if self._beats:
            tdata, tkeep, tlast, tuser = self._beats[0][0]
            ports.set("s_axis_tdata", tdata)
            ports.set("s_axis_tkeep", tkeep)
            ports.set("s_axis_tlast", tlast)
            ports.set("s_axis_tuser", tuser)
        ports.set("s_axis_tvalid", int(bool(self._beats)))

    def _drive_answer(self, ports: Ports, data: int | None, keep: int, last: bool) -> None:
        if data is not None:
            ports.set("s_axis_answer_tdata", data)
            ports.set("s_axis_answer_tkeep", keep)
            ports.set("s_axis_answer_tlast", int(last))
            ports.set("s_axis_answer_tuser", 0)
        ports.set("s_axis_answer_tvalid", int(data is not None))

    def _take_feed(self, ports: Ports, cycle: int) -> None:
        if self._beats and ports.get("s_axis_tready"):
            _, item = self._beats.popleft()
            if item is not None:
                self.result.feed_ends[item] = cycle
        if not ports.get("o_top__valid"):
            return
        got = unpack(self.top_layout, ports.get("o_top__payload"))
        if not self._tops:
            raise TopMismatch(f"cycle {cycle}: the core's book made a top update the model's "
                              f"did not: {dict(got)}")
        update, index = self._tops.popleft()
        want = {name: int(getattr(update, name)) for name in _TOP_FIELDS}
        have = {name: int(got[name]) for name in _TOP_FIELDS}
        if have != want:
            raise TopMismatch(f"cycle {cycle}: feed item {index}: the core's top update "
                              f"{have} differs from the model's {want}")
        self.result.top_cycles.append((cycle, index))
        self.result.top_slots.append(update.slot)

    def _answer_taken(self, ports: Ports) -> bool:
        return bool(ports.get("s_axis_answer_tready"))

    def _out_beat(self, ports: Ports) -> dict | None:
        if not ports.get("m_axis_tvalid"):
            return None
        beat = {"first": int(self._out_first), "data": ports.get("m_axis_tdata"),
                "keep": ports.get("m_axis_tkeep"), "last": ports.get("m_axis_tlast")}
        self._out_first = bool(beat["last"])
        return beat

    def _stuck_detail(self) -> str:
        waiting = (f"; the next expected from the book: {self._tops[0][0]} (feed item "
                   f"{self._tops[0][1]})") if self._tops else ""
        return (f"{len(self._beats)} feed beats and {len(self._answer_beats)} answer beats not "
                f"taken, {len(self._tops)} top updates not seen{waiting}")

    def _progress_mark(self) -> int:
        return super()._progress_mark() + len(self._beats)

    def finish_core(self, cycle: int, positions: list[int], counters: dict) -> object:
        """The run's end, with the positions and the counters the host read through the
        register map (``counters``: :meth:`host.driver.Driver.counters`)."""
        result = self.result
        result.cycles, result.fed = cycle, self.world.fed
        result.positions = [Shares(p) for p in positions[:self.slots]]
        result.stats = {block.removesuffix("_stats"): dict(values)
                        for block, values in counters.items()}
        return result
