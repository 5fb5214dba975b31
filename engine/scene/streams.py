"""The control socket's speech streams: `stream_start` opens one, `stream_audio` adds PCM, `stream_end` ends it.

A start goes to the frame loop like a `say` (the voice queues the stream at the next frame); its audio does not: each
chunk is converted on its connection's thread and appended to the SpeechStream the voice reads, so a chunk is heard
at the next audio block whether or not a frame has passed, and a chunk that arrives before the start was applied
waits in the stream. Streams end on `stream_end`, when their connection closes, or after a quiet spell; what had
arrived still plays. Everything is bounded: streams open per connection and in all, speech waiting per stream.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from engine.audio.sources import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, StreamResampler
from engine.audio.speech_stream import SpeechStream, StreamClosed
from engine.scene.protocol import ProtocolError

PCM_FORMATS = {"s16": np.dtype("<i2"), "f32": np.dtype("<f4")}
"""Sample formats a stream carries: little-endian 16-bit integers or 32-bit floats, mono."""
MAX_STREAMS_PER_CONNECTION = 4
MAX_STREAMS = 32
STREAM_IDLE_S = 30.0
"""A stream that gets no audio for this long is ended, so a client that forgets `stream_end` (or dies) frees it."""


@dataclass(eq=False)
class OpenStream:
    stream: SpeechStream
    owner: object
    dtype: np.dtype
    resampler: StreamResampler
    last_s: float = field(default_factory=time.monotonic)


class StreamTable:
    """Open streams by id, each owned by the connection that opened it."""

    def __init__(self, sample_rate: int = 16000, max_buffered_s: float = 600.0, idle_s: float = STREAM_IDLE_S) -> None:
        self.sample_rate = sample_rate
        self.max_buffered_s = max_buffered_s
        self.idle_s = idle_s
        self._open: dict[int, OpenStream] = {}
        self._ids = itertools.count(1)
        self._cut: deque[int] = deque(maxlen=64)
        """The latest streams dropped because they were cut, so their writers learn why."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def open(self, owner: object, rate: int, pcm_format: str) -> tuple[int, SpeechStream]:
        """A new stream of `pcm_format` samples at `rate` Hz; (its id, the stream the voice will play)."""
        if pcm_format not in PCM_FORMATS:
            raise ProtocolError(f"stream_start: format {pcm_format!r} is not one of {sorted(PCM_FORMATS)} (mono PCM, "
                                "little-endian)")
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise ProtocolError(f"stream_start: rate {rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]; "
                                "send the sample rate of the PCM, e.g. 16000, 22050, 24000, 44100 or 48000")
        self.expire()
        with self._lock:
            mine = sum(e.owner is owner for e in self._open.values())
            if mine >= MAX_STREAMS_PER_CONNECTION or len(self._open) >= MAX_STREAMS:
                raise ProtocolError(f"busy: {mine} streams open on this connection ({len(self._open)} in all; limits "
                                    f"{MAX_STREAMS_PER_CONNECTION} and {MAX_STREAMS}); end one with stream_end first")
            stream_id = next(self._ids)
            stream = SpeechStream(self.sample_rate, name=f"stream-{stream_id}")
            self._open[stream_id] = OpenStream(stream, owner, PCM_FORMATS[pcm_format],
                                               StreamResampler(rate, self.sample_rate))
        return stream_id, stream

    def append(self, owner: object, stream_id: object, pcm: bytes, text: str | None = None) -> SpeechStream:
        """Convert `pcm` and add it to the stream; a chunk may be any length (a partial sample is refused)."""
        entry = self._owned(owner, stream_id, "stream_audio")
        if len(pcm) % entry.dtype.itemsize:
            raise ProtocolError(f"stream_audio: {len(pcm)} bytes is not a whole number of "
                                f"{entry.dtype.itemsize}-byte samples; send whole samples")
        samples = np.frombuffer(pcm, entry.dtype).astype(np.float32)
        if entry.dtype.kind == "i":
            samples /= 32768.0
        elif not np.all(np.isfinite(samples)):
            raise ProtocolError("stream_audio: the chunk holds NaN or infinite samples; send finite PCM in [-1, 1]")
        waiting = entry.stream.buffered_s + len(samples) / entry.resampler.in_rate
        if waiting > self.max_buffered_s:
            raise ProtocolError(f"busy: the stream would hold {waiting:.1f} s not yet played, over the limit of "
                                f"{self.max_buffered_s:g} s (--control-max-queued-s); send audio nearer real time")
        with self._lock:  # one connection's chunks in order: the resampler keeps state between them
            converted = entry.resampler.process(np.clip(samples, -1.0, 1.0))
            entry.last_s = time.monotonic()
        self._add(stream_id, entry, converted, text)
        return entry.stream

    def end(self, owner: object, stream_id: object) -> SpeechStream:
        """No more audio for this stream: it plays out what it has and finishes."""
        entry = self._owned(owner, stream_id, "stream_end")
        self._finish(stream_id, entry)
        return entry.stream

    def end_owned_by(self, owner: object) -> None:
        """End every stream of a connection that closed."""
        with self._lock:
            owned = [(i, e) for i, e in self._open.items() if e.owner is owner]
        for stream_id, entry in owned:
            self._finish(stream_id, entry)

    def cancel(self, stream_id: int) -> None:
        """Drop a stream that was cut, or that the frame loop could not play (its voice or avatar was gone)."""
        with self._lock:
            entry = self._open.pop(stream_id, None)
            self._cut.append(stream_id)
        if entry is not None:
            entry.stream.cancel()

    def expire(self, now: float | None = None) -> int:
        """Forget the streams that were cut and end those that got no audio for `idle_s`; how many were ended."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for stream_id in [i for i, e in self._open.items() if e.stream.cancelled]:
                del self._open[stream_id]
                self._cut.append(stream_id)
            idle = [(i, e) for i, e in self._open.items() if now - e.last_s > self.idle_s]
        for stream_id, entry in idle:
            self._finish(stream_id, entry)
        return len(idle)

    def _owned(self, owner: object, stream_id: object, kind: str) -> OpenStream:
        with self._lock:
            entry = self._open.get(stream_id) if isinstance(stream_id, int) else None
            cut = stream_id in self._cut
        if entry is None and cut:
            raise ProtocolError(f"{kind}: stream {stream_id} was cut (interrupted or stopped); open a new one")
        if entry is None or entry.owner is not owner:
            raise ProtocolError(f"{kind}: no open stream {stream_id!r} on this connection (ended, timed out after "
                                f"{self.idle_s:g} s without audio, or never started); open one with stream_start")
        if entry.stream.cancelled:
            self.cancel(stream_id)
            raise ProtocolError(f"{kind}: stream {stream_id} was cut (interrupted or stopped); open a new one")
        return entry

    def _add(self, stream_id: int, entry: OpenStream, samples: np.ndarray, text: str | None) -> None:
        try:
            entry.stream.append(samples, text=text)
        except StreamClosed as error:
            self.cancel(stream_id)
            raise ProtocolError(f"stream_audio: {error}") from None

    def _finish(self, stream_id: int, entry: OpenStream) -> None:
        with self._lock:
            if self._open.pop(stream_id, None) is None:
                return
            tail = entry.resampler.flush()
        try:
            entry.stream.append(tail)
            entry.stream.end()
        except StreamClosed:
            pass  # cut meanwhile: nothing left to play
