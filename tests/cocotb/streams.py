"""The stream drivers and monitors for the test benches (shared with ``tickgate replay``)."""

from host.gatesim.streams import (
    AxisSink,
    AxisSource,
    StreamSink,
    StreamSource,
    TBBase,
    frame_beats,
    pack,
    unpack,
)

__all__ = ["AxisSink", "AxisSource", "StreamSink", "StreamSource", "TBBase", "frame_beats",
           "pack", "unpack"]
