"""Arm and kill state, the host heartbeat watchdog, and the free-running cycle counter."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AGE_BITS", "Control"]

#: Width of the heartbeat age and timeout: 2^32 cycles is 27 s at 156.25 MHz.
AGE_BITS = 32


class Control(wiring.Component):
    """The trading enable state the risk gate obeys, driven by the host's strobes.

    States: after reset nothing is armed. ``arm`` arms (and clears ``killed`` and
    ``heartbeat_lost``); ``kill`` disarms and sets ``killed``; a heartbeat watchdog disarms and
    sets ``heartbeat_lost`` when the host stays silent too long. ``killed`` and
    ``heartbeat_lost`` stay set until the next ``arm``, so the reason survives for the host to
    read.

    Parameters
    ----------
    age_bits : int
        Width of ``heartbeat_timeout`` and ``heartbeat_age`` (32 in the design).

    Ports
    -----
    arm, kill, heartbeat, commit : In(1)
        One-cycle strobes (the bank's W1P outputs).
    heartbeat_timeout : In(32)
        Cycles without a heartbeat (or arm) that trip the watchdog while armed; 0 disables it.
    armed : Out(1)
        Orders may be sent.
    killed, heartbeat_lost : Out(1)
        Why the design is no longer armed.
    heartbeat_age : Out(32)
        Cycles since the last heartbeat or arm strobe, saturating at 2^32 - 1.
    cycles : Out(64)
        Cycles since reset.
    commit_count : Out(32)
        Commit strobes since reset (wraps), so the host can tell its commit landed.

    Latency
    -------
    ``armed``/``killed`` change 1 cycle after their strobe. With ``heartbeat_timeout = T > 0``
    and no further strobe, ``heartbeat_lost`` rises and ``armed`` falls ``T + 2`` cycles after the
    cycle the ``heartbeat`` (or ``arm``) strobe is high: ``heartbeat_age`` is 0 one cycle after
    the strobe and reaches ``T`` ``T`` cycles later, and the trip is registered.

    Bad input
    ---------
    None: every strobe combination is legal. ``kill`` wins over ``arm`` in the same cycle, and a
    heartbeat in the very cycle the timeout is reached still counts.
    """

    def __init__(self, *, age_bits: int = AGE_BITS):
        self.age_bits = age_bits
        super().__init__({
            "arm": In(1),
            "kill": In(1),
            "heartbeat": In(1),
            "commit": In(1),
            "heartbeat_timeout": In(age_bits),
            "armed": Out(1),
            "killed": Out(1),
            "heartbeat_lost": Out(1),
            "heartbeat_age": Out(age_bits),
            "cycles": Out(64),
            "commit_count": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(self.commit):
            m.d.sync += self.commit_count.eq(self.commit_count + 1)

        with m.If(self.heartbeat | self.arm):
            m.d.sync += self.heartbeat_age.eq(0)
        with m.Elif(self.heartbeat_age != (1 << self.age_bits) - 1):
            m.d.sync += self.heartbeat_age.eq(self.heartbeat_age + 1)

        timed_out = ((self.heartbeat_timeout != 0)
                     & (self.heartbeat_age >= self.heartbeat_timeout))
        with m.If(self.kill):
            m.d.sync += [self.armed.eq(0), self.killed.eq(1)]
        with m.Elif(self.arm):
            m.d.sync += [self.armed.eq(1), self.killed.eq(0), self.heartbeat_lost.eq(0)]
        with m.Elif(self.armed & timed_out & ~self.heartbeat):
            m.d.sync += [self.armed.eq(0), self.heartbeat_lost.eq(1)]
        return m
