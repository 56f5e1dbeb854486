"""Arm, kill and the host heartbeat watchdog, as plain Python (twin of ``hdl/csr/control.py``).

The model is event driven: the host's strobes are applied with the cycle they are high in, and
the state is read for any later cycle, with the gateware's latencies:

- ``arm``, ``kill`` strobed in cycle ``s`` take effect in cycle ``s + 1`` (``kill`` wins over an
  ``arm`` in the same cycle). ``arm`` clears ``killed`` and ``heartbeat_lost``.
- With ``heartbeat_timeout = T > 0``, armed, and no further ``heartbeat`` or ``arm`` after the
  one strobed in cycle ``s``, the watchdog disarms and sets ``heartbeat_lost`` in cycle
  ``s + T + 2``. A heartbeat strobed in any cycle before that one (the cycle the age reaches
  ``T`` included) restarts the count; one strobed later only resets the age. ``T = 0`` disables
  the watchdog.
- After reset nothing is armed.

Strobes must be applied in nondecreasing cycle order, and the state is read for cycles at or
after the last strobe.
"""

from dataclasses import dataclass

__all__ = ["Control", "ControlState"]


@dataclass(frozen=True, slots=True)
class ControlState:
    armed: bool = False
    killed: bool = False
    heartbeat_lost: bool = False


class Control:
    """Trading enable state, driven by the host's ``arm``, ``kill`` and ``heartbeat`` strobes.

    Parameters
    ----------
    heartbeat_timeout : int
        ``ctrl.heartbeat_timeout``: cycles without a heartbeat that disarm; 0 disables.
    """

    def __init__(self, heartbeat_timeout: int = 0):
        self.heartbeat_timeout = heartbeat_timeout
        self._before = ControlState()   # state up to cycle _effective - 1
        self._after = ControlState()    # state from cycle _effective
        self._effective = 0
        self._beat = 0                  # cycle of the last heartbeat or arm strobe
        self._last_strobe = -1

    def strobe(self, now: int, *, arm: bool = False, kill: bool = False,
               heartbeat: bool = False) -> None:
        """Apply every strobe high in cycle ``now`` (one call per cycle).

        Raises
        ------
        ValueError
            ``now`` is not after the cycle of the previous call.
        """
        if now <= self._last_strobe:
            raise ValueError(f"strobes at cycle {now} after strobes at cycle "
                             f"{self._last_strobe}: give every strobe of a cycle in one call, "
                             "in cycle order")
        self._last_strobe = now
        current = self.state(now)
        trip = self._trip()
        if trip is not None and now >= trip:
            # The watchdog fired already: that is now the steady state.
            self._before = self._after = current
            self._effective = trip
        if heartbeat or arm:
            self._beat = now  # the age restarts whether or not the design is armed
        if kill:
            new = ControlState(False, True, current.heartbeat_lost)
        elif arm:
            new = ControlState(True, False, False)
        else:
            return
        self._before, self._after, self._effective = current, new, now + 1

    def _trip(self) -> int | None:
        """Cycle the watchdog disarms in, given the strobes so far (None: never)."""
        if not self._after.armed or self.heartbeat_timeout == 0:
            return None
        return max(self._beat + self.heartbeat_timeout + 2, self._effective)

    def state(self, now: int) -> ControlState:
        """The state in cycle ``now``."""
        if now < self._effective:
            return self._before
        trip = self._trip()
        if trip is not None and now >= trip:
            return ControlState(False, self._after.killed, True)
        return self._after

    def armed(self, now: int) -> bool:
        return self.state(now).armed

    def next_change(self, now: int) -> int | None:
        """The first cycle after ``now`` in which the state changes without a strobe."""
        if self._effective > now:
            return self._effective
        trip = self._trip()
        if trip is not None and trip > now:
            return trip
        return None
