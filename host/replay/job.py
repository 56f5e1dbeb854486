"""The hand-over between ``tickgate replay`` and the cocotb bench running in the simulator.

The bench runs in the simulator's own Python process, so the replay writes the frames and
settings to files and reads the results back: a frame file of ``u32 length, u8 flags, bytes``
records (flag bit 0: the MAC's bad-frame flag) and JSON for the rest.
"""

import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["BenchJob", "read_frame_file", "write_frame_file"]

_RECORD = struct.Struct(">IB")
ENV_JOB = "TICKGATE_BENCH_JOB"


def write_frame_file(path: Path, frames: Iterable[bytes | tuple[bytes, bool]]) -> int:
    count = 0
    with open(path, "wb") as f:
        for item in frames:
            frame, error = item if isinstance(item, tuple) else (item, False)
            f.write(_RECORD.pack(len(frame), int(error)))
            f.write(frame)
            count += 1
    return count


def read_frame_file(path: Path) -> Iterator[tuple[bytes, bool]]:
    with open(path, "rb") as f:
        while header := f.read(_RECORD.size):
            length, flags = _RECORD.unpack(header)
            frame = f.read(length)
            if len(frame) != length:
                raise ValueError(f"{path}: frame file truncated")
            yield frame, bool(flags & 1)


@dataclass
class BenchJob:
    """What the bench should do, and where it writes what it saw."""

    frames: str
    result: str
    mac: int
    ip: int
    port: int
    idle: float = 0.0
    backpressure: float = 0.0
    seed: int = 1
    # Global input beat index of the last byte of each expected event's message, for latency.
    event_beats: list[int] = field(default_factory=list)
    # With the book: every slot's configuration (``SlotConfigLayout`` fields), and the input
    # beat of the message behind each expected top-of-book update.
    slots: list[dict] = field(default_factory=list)
    update_beats: list[int] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> "BenchJob":
        return cls(**json.loads(Path(path).read_text()))
