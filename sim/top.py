"""The core's model: Ethernet frames in, top-of-book updates out (twin of ``hdl/top.py``).

:class:`~sim.ingress.Ingress` then :class:`~sim.book.Books`, chained as the gateware chains
``FeedIngress`` and ``Book``; the books mirror the gateware's table geometry, so they refuse adds
where the gateware does. What the gateware adds on top, its input queue, never loses an event in
the model; compare with a gateware run that does not drop either (``drop_when_full=False``).
"""

from dataclasses import dataclass, field

from sim.book import Books, TopUpdate
from sim.book_mirror import BookGeometry
from sim.ingress import Ingress, IngressOutput
from sim.udp_rx import UdpRxConfig

__all__ = ["FeedBook", "FeedBookOutput"]


@dataclass
class FeedBookOutput(IngressOutput):
    """What one frame produced: the ingress's events and the updates they caused."""

    updates: list[TopUpdate] = field(default_factory=list)
    # Index into ``events`` of the event that caused each update.
    update_events: list[int] = field(default_factory=list)


class FeedBook:
    """Feed ingress and order book, as plain Python.

    Parameters
    ----------
    config : UdpRxConfig
        The feed's destination MAC, IP and UDP port.
    geometry : BookGeometry, optional
        The gateware book's table sizes (default: its defaults).

    Attributes
    ----------
    ingress : Ingress
    books : Books
        Configure the tracked instruments here (``books.track_locate``, ``books.track_symbol``)
        before pushing frames, as the host sets the gateware's ``cfg``.
    """

    def __init__(self, config: UdpRxConfig, geometry: BookGeometry | None = None):
        self.ingress = Ingress(config)
        self.books = Books(geometry=geometry or BookGeometry())

    def push(self, frame: bytes, error: bool = False) -> FeedBookOutput:
        """Feed one Ethernet frame (no FCS); ``error`` is the MAC's bad-frame flag."""
        decoded = self.ingress.push(frame, error)
        out = FeedBookOutput(events=decoded.events, event_ends=decoded.event_ends,
                             event_messages=decoded.event_messages,
                             delivered_messages=decoded.delivered_messages)
        for index, event in enumerate(decoded.events):
            for update in self.books.push(event):
                out.updates.append(update)
                out.update_events.append(index)
        return out

    @property
    def gaps(self):
        return self.ingress.gaps

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Counters by stage and name, as the gateware's ``stats`` port fields."""
        return {**self.ingress.stats,
                "book": {member.name.lower(): value for member, value in self.books.stats.items()}}
