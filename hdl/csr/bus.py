"""The internal CSR bus: one 32-bit register access per cycle, answered the next cycle.

Timing (initiator's view)
-------------------------
In cycle ``t`` the initiator presents ``addr`` (a word address) with either ``r_stb`` or
``w_stb`` (never both) and, for a write, ``w_data``. The target registers its answer: in cycle
``t + 1`` ``err`` holds the :class:`~hdl.csr.protocol.BusError` of that access and, for a read,
``r_data`` the word read (0 on error). A write takes effect at the end of cycle ``t``, so a read in
``t + 1`` already sees it. Accesses may follow each other in consecutive cycles; ``r_data`` and
``err`` are meaningful only in the cycle after a strobe.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.csr.protocol import BusError
from hdl.csr.reg import WORD_BITS

__all__ = ["ERROR_BITS", "CsrSignature"]

ERROR_BITS = max(BusError).bit_length()


class CsrSignature(wiring.Signature):
    """CSR bus, from the initiator's side (a target takes it ``In``).

    Members
    -------
    addr : Out(addr_width)
    r_stb, w_stb : Out(1)
    w_data : Out(32)
    r_data : In(32)
    err : In(2)
        :class:`~hdl.csr.protocol.BusError`.
    """

    def __init__(self, addr_width: int = 16):
        self.addr_width = addr_width
        super().__init__({
            "addr": Out(addr_width),
            "r_stb": Out(1),
            "w_stb": Out(1),
            "w_data": Out(WORD_BITS),
            "r_data": In(WORD_BITS),
            "err": In(ERROR_BITS),
        })

    def __eq__(self, other):
        return isinstance(other, CsrSignature) and other.addr_width == self.addr_width

    def __hash__(self):
        return hash((CsrSignature, self.addr_width))

    def __repr__(self):
        return f"CsrSignature({self.addr_width})"
