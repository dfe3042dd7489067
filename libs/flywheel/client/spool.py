"""The SDK's buffer: bounded memory, spilling to disk so a gateway outage loses nothing.

Events wait in memory until the sender takes them. When memory holds ``max_events``, new
events are appended to a segment file in the spool directory instead; so are the events still
in memory when the client closes before it could send them. The sender drains the spool first,
oldest segment first, and deletes a segment only after every event in it was acknowledged, so
a crash at any point replays events rather than losing them; the gateway recognises replays by
their ids and does not produce them twice.

Segment format: per event one kind byte (``T`` or ``F``), a varint length, the Protobuf bytes.
A directory belongs to one client at a time (an exclusive ``flock``); a second client on the
same directory uses ``<dir>/<pid>`` and the first client to open the parent later replays it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .wire import FEEDBACK, TRACE, varint

_KIND_BYTE = {TRACE: b"T", FEEDBACK: b"F"}
_BYTE_KIND = {v[0]: k for k, v in _KIND_BYTE.items()}
_SEGMENT_EVENTS = 5000


@dataclass(frozen=True)
class Pending:
    """One event waiting to be sent: its kind, id and Protobuf bytes."""

    kind: str
    event_id: str
    payload: bytes
    segment: str | None = None  # the spool segment it was read from


def _encode(event: Pending) -> bytes:
    return _KIND_BYTE[event.kind] + varint(len(event.payload)) + event.payload


def _decode_segment(data: bytes, segment: str, id_of) -> list[Pending]:  # noqa: ANN001
    events, pos = [], 0
    while pos < len(data):
        kind = _BYTE_KIND.get(data[pos])
        pos += 1
        length, shift = 0, 0
        while pos < len(data):
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        payload = data[pos:pos + length]
        pos += length
        if kind is None or len(payload) != length:
            break  # a torn write at the end of the file: the rest was never acknowledged
        events.append(Pending(kind, id_of(kind, payload), payload, segment))
    return events


class DiskSpool:
    """Append-only segment files in a directory, read back oldest first."""

    def __init__(self, directory: Path, id_of) -> None:  # noqa: ANN001 - (kind, bytes) -> id
        directory = Path(directory).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(directory / ".lock", "a+")  # noqa: SIM115 - held for the lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            directory = directory / str(os.getpid())
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(directory / ".lock", "a+")  # noqa: SIM115
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self.directory = directory
        self.id_of = id_of
        self._writing: Path | None = None
        self._written = 0
        self._seq = max((int(p.stem) for p in directory.glob("*.seg") if p.stem.isdigit()),
                        default=0)

    def _segments(self) -> list[Path]:
        own = sorted(self.directory.glob("*.seg"), key=lambda p: int(p.stem))
        orphans = [d for d in self.directory.iterdir() if d.is_dir() and d.name.isdigit()
                   and not _pid_alive(int(d.name))]
        for orphan in orphans:  # spools left by clients that shared this directory and died
            for seg in sorted(orphan.glob("*.seg"), key=lambda p: int(p.stem)):
                self._seq += 1
                seg.rename(self.directory / f"{self._seq:012d}.seg")
            own = sorted(self.directory.glob("*.seg"), key=lambda p: int(p.stem))
        return own

    def append(self, events: list[Pending]) -> None:
        """Write events to the current segment (flushed to the OS before returning)."""
        if not events:
            return
        if self._writing is None or self._written >= _SEGMENT_EVENTS:
            self._seq += 1
            self._writing = self.directory / f"{self._seq:012d}.seg"
            self._written = 0
        with open(self._writing, "ab") as fh:
            fh.write(b"".join(_encode(e) for e in events))
            fh.flush()
        self._written += len(events)

    def read_oldest(self) -> list[Pending]:
        """All events of the oldest segment (the segment being written is closed first)."""
        segments = self._segments()
        if not segments:
            return []
        oldest = segments[0]
        if oldest == self._writing:
            self._writing = None
        return _decode_segment(oldest.read_bytes(), oldest.name, self.id_of)

    def drop(self, segment: str) -> None:
        """Delete a segment whose events were all acknowledged."""
        path = self.directory / segment
        if path == self._writing:
            self._writing = None
        path.unlink(missing_ok=True)

    def count_segments(self) -> int:
        return len(list(self.directory.glob("*.seg")))

    def close(self) -> None:
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EventBuffer:
    """Thread-safe memory queue bounded by ``max_events``, backed by an optional DiskSpool."""

    def __init__(self, max_events: int, spool: DiskSpool | None) -> None:
        self.max_events = max_events
        self.spool = spool
        self._memory: deque[Pending] = deque()
        self._spooled: list[Pending] = []  # read from the spool, not yet handed out
        self._open_segments: dict[str, int] = {}  # segment -> events not yet acknowledged
        self._lock = threading.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._memory) + len(self._spooled)

    def put(self, event: Pending) -> bool:
        """Queue an event; False only when memory is full and there is no spool (dropped)."""
        with self._lock:
            if len(self._memory) < self.max_events:
                self._memory.append(event)
                return True
            if self.spool is None:
                self.dropped += 1
                return False
            self.spool.append([event])
            return True

    def has_spooled(self) -> bool:
        with self._lock:
            return bool(self._spooled) or (self.spool is not None and not self._open_segments
                                           and self.spool.count_segments() > 0)

    def take(self, max_events: int) -> list[Pending]:
        """Up to ``max_events`` events of one kind, spooled ones first."""
        with self._lock:
            if not self._spooled and self.spool is not None and not self._open_segments:
                self._spooled = self.spool.read_oldest()
                if self._spooled:
                    self._open_segments[self._spooled[0].segment] = len(self._spooled)
                elif self.spool.count_segments():
                    # an empty or torn segment: nothing in it can be sent
                    for name in [p.name for p in self.spool._segments()[:1]]:
                        self.spool.drop(name)
            source = self._spooled if self._spooled else None
            batch: list[Pending] = []
            if source is not None:
                kind = source[0].kind
                while source and len(batch) < max_events and source[0].kind == kind:
                    batch.append(source.pop(0))
                return batch
            if not self._memory:
                return batch
            kind = self._memory[0].kind
            while self._memory and len(batch) < max_events and self._memory[0].kind == kind:
                batch.append(self._memory.popleft())
            return batch

    def ack(self, batch: list[Pending]) -> None:
        """The batch was acknowledged (or rejected for good): forget it."""
        with self._lock:
            for event in batch:
                if event.segment is None:
                    continue
                left = self._open_segments.get(event.segment, 0) - 1
                if left <= 0:
                    self._open_segments.pop(event.segment, None)
                    if self.spool is not None:
                        self.spool.drop(event.segment)
                else:
                    self._open_segments[event.segment] = left

    def give_back(self, batch: list[Pending]) -> None:
        """A batch that could not be sent now: it goes first in line again."""
        with self._lock:
            spooled = [e for e in batch if e.segment is not None]
            memory = [e for e in batch if e.segment is None]
            self._spooled[:0] = spooled
            self._memory.extendleft(reversed(memory))

    def spill(self) -> int:
        """Write everything still in memory to the spool (at close); returns how many."""
        with self._lock:
            if self.spool is None or not self._memory:
                return 0
            events = list(self._memory)
            self._memory.clear()
            self.spool.append(events)
            return len(events)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
