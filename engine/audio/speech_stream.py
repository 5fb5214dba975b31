"""SpeechStream: speech that plays while it is still arriving (PCM streamed over the control socket, sentences of a
text-to-speech voice).

Writers append from any thread; the voice that plays it reads it in order on the audio thread. Reading past what has
arrived is an under-run: the voice plays silence for the rest of that block (the avatar hears silence, so its mouth
closes) and the stream goes on with the next chunk, nothing skipped. A stream is over once it has been ended and
read to its last sample, or cancelled.
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np


class StreamClosed(RuntimeError):
    """Audio appended to a stream that was ended or cancelled."""


class SpeechStream:
    """Mono float32 samples at `sample_rate`, appended in chunks of any length and read in order."""

    def __init__(self, sample_rate: int = 16000, name: str = "stream") -> None:
        self.sample_rate = sample_rate
        self.name = name
        self._chunks: deque[np.ndarray] = deque()
        self._offset = 0  # samples of _chunks[0] already read
        self._lock = threading.Lock()
        self.received = 0
        """Samples appended so far."""
        self.played = 0
        """Samples read so far."""
        self.ended = False
        self.cancelled = False
        self.underruns = 0
        """Reads that found the stream empty before its end (each one is a gap of silence)."""
        self.marks: list[tuple[int, str]] = []
        """(sample index, text) where each appended piece of text begins: what is being said, for captions."""

    def append(self, samples: np.ndarray, text: str | None = None) -> None:
        """Add samples [n] (float32 in [-1, 1] at the stream's rate); `text` names what they say (a caption)."""
        chunk = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(chunk)):
            raise ValueError(f"stream {self.name!r}: a chunk holds NaN or infinite samples; send finite PCM")
        with self._lock:
            if self.ended or self.cancelled:
                raise StreamClosed(f"stream {self.name!r} was {'cancelled' if self.cancelled else 'ended'}; "
                                   "open a new one")
            if text:
                self.marks.append((self.received, text))
            if len(chunk):
                self._chunks.append(chunk)
                self.received += len(chunk)

    def end(self) -> None:
        """No more audio: the stream finishes once what has arrived is played."""
        with self._lock:
            self.ended = True

    def cancel(self) -> None:
        """Stop now: what has not been played is dropped."""
        with self._lock:
            self.cancelled = True
            self._chunks.clear()
            self._offset = 0

    @property
    def buffered(self) -> int:
        """Samples that have arrived and not yet been played."""
        return self.received - self.played if not self.cancelled else 0

    @property
    def buffered_s(self) -> float:
        return self.buffered / self.sample_rate

    @property
    def finished(self) -> bool:
        """Cancelled, or ended and played to the end."""
        return self.cancelled or (self.ended and self.played >= self.received)

    def read(self, n: int) -> np.ndarray:
        """Up to n samples, fewer when less has arrived (an under-run unless the stream is finished)."""
        parts, wanted = [], n
        with self._lock:
            while wanted and self._chunks:
                head = self._chunks[0]
                part = head[self._offset:self._offset + wanted]
                parts.append(part)
                wanted -= len(part)
                self._offset += len(part)
                if self._offset >= len(head):
                    self._chunks.popleft()
                    self._offset = 0
            got = n - wanted
            self.played += got
            if wanted and not (self.ended or self.cancelled):
                self.underruns += 1
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.float32))

    def text_at(self, sample: int) -> str:
        """What is being said at stream sample `sample` (the last mark at or before it; '' before any)."""
        said = ""
        for start, text in self.marks:
            if start > sample:
                break
            said = text
        return said
