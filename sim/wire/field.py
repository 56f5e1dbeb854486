"""A field of a fixed-layout binary message, shared by the wire formats' layout tables."""

from dataclasses import dataclass
from enum import Enum

__all__ = ["Field"]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message: ``size`` bytes from byte ``offset`` (the type byte is offset 0).

    ``kind`` is the wire format's own enum of how the bytes are read (e.g. ITCH's
    ``FieldKind.PRICE4``, OUCH's ``FieldKind.PRICE``).
    """

    name: str
    offset: int
    size: int
    kind: Enum

    @property
    def end(self) -> int:
        """Offset of the byte just after the field."""
        return self.offset + self.size
