"""Audio sources behind one interface: file, microphone (pyaudio), push (queued clips) and silence.

Every source hands out mono float32 at the engine rate (16 kHz) through `read(n)`, which always returns exactly n
samples (silence where there is nothing to give). Files of any rate or channel count are decoded with PyAV
(bundled ffmpeg: wav, flac, mp3, ogg, m4a, ...), averaged to mono and resampled with libswresample.
"""
from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.devices import find_device, open_pyaudio
from engine.audio.ring import SampleRing
from engine.audio.speech_stream import SpeechStream


class AudioFormatError(ValueError):
    """A file that is not readable audio."""


@dataclass
class AudioClip:
    """Mono float32 samples at `sample_rate`, ready to play or push (`samples` [N])."""

    samples: np.ndarray
    sample_rate: int = 16000
    name: str = "clip"

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


class StreamResampler:
    """Mono float32 rate conversion that keeps its filter state between blocks (libswresample via PyAV).

    Feeding a signal in any block sizes and then `flush()` gives the same samples as converting it in one go.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self._resampler = None
        if self.in_rate != self.out_rate:
            import av

            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.out_rate)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """[n] at in_rate -> [m] at out_rate (m ~ n * out/in; the filter holds back a few samples until flush)."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._resampler is None or len(samples) == 0:
            return samples.copy()
        import av

        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = self.in_rate
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[Any]) -> np.ndarray:
        parts = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


class DCBlocker:
    """A streaming one-pole high-pass at `cutoff_hz`: takes a microphone's DC offset away. The speech features never
    hear DC (they start at 55 Hz, where this loses 0.15 dB), but the noise gate would count it as level and close on
    quiet speech: an offset of 0.01 took a sixth off the bundled avatar's mouth opening in speech. Any split of the
    signal into calls gives the same output."""

    def __init__(self, sample_rate: int, cutoff_hz: float = 10.0) -> None:
        pole = math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
        self._b, self._a = np.array([1.0, -1.0]), np.array([1.0, -pole])
        self._state = np.zeros(1)

    def process(self, samples: np.ndarray) -> np.ndarray:
        from scipy.signal import lfilter

        out, self._state = lfilter(self._b, self._a, np.asarray(samples, np.float64), zi=self._state)
        return out.astype(np.float32)


MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000
"""Rates a bounded decode accepts: outside them resampling to the engine rate multiplies the samples (a wav that
declares 1 Hz becomes 16000 samples per stored byte) or the filter's work."""
MAX_CHANNELS = 64


class AudioLimitError(AudioFormatError):
    """Audio outside a bounded decode's limits (rate, channels, length)."""


class ClipTooLong(AudioLimitError):
    """A bounded decode stopped: the clip is longer than the caller's limit (`seconds` may be a lower bound)."""

    def __init__(self, seconds: float, limit: float, declared: bool) -> None:
        if declared:
            text = f"clip of {seconds:.1f} s (as its header declares) is over the limit of {limit:g} s"
        else:
            text = f"clip is longer than the limit of {limit:g} s (decoding stopped at {seconds:.1f} s)"
        super().__init__(text)
        self.seconds, self.limit = seconds, limit


def decode_file(path: str | Path, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """Decode any audio file ffmpeg reads into mono float32 [N] at `sample_rate` (channels averaged).

    With `max_seconds` (audio from outside, e.g. the control socket) the work is bounded before and while decoding:
    the header's rate (MIN_SAMPLE_RATE..MAX_SAMPLE_RATE), channels (<= MAX_CHANNELS) and declared duration are
    checked first, and decoding stops with ClipTooLong once the output passes the limit, since a header may lie.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist; pass the path of a wav, flac or mp3 file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise AudioFormatError(f"{path} is not readable audio ({error}); convert it to wav, flac or mp3") from error
    with container:
        if not container.streams.audio:
            raise AudioFormatError(f"{path} has no audio stream; pass a file with sound in it")
        stream = container.streams.audio[0]
        cap = None
        if max_seconds is not None:
            check_declared_audio(stream, container, max_seconds)
            cap = int(math.ceil(max_seconds * sample_rate))
        to_float = None
        resampler: StreamResampler | None = None
        parts = []
        decoded = 0
        for frame in container.decode(stream):
            channels = len(frame.layout.channels)
            if to_float is None:
                # Packed (interleaved) float at the file's own rate and layout, whatever the codec stores: one plane.
                # PyAV's to_ndarray of planar audio crashed the process (SIGSEGV) from 8 channels on.
                to_float = av.AudioResampler(format="flt", layout=frame.layout.name, rate=frame.sample_rate)
                resampler = StreamResampler(frame.sample_rate, sample_rate)
            if cap is not None:
                check_rate(frame.sample_rate, channels)  # a stream may change rate mid-way
            for converted in to_float.resample(frame):
                interleaved = converted.to_ndarray().reshape(-1, len(converted.layout.channels))
                parts.append(resampler.process(interleaved.mean(axis=1)))
                decoded += len(parts[-1])
            if cap is not None and decoded > cap:
                raise ClipTooLong(decoded / sample_rate, max_seconds, declared=False)
        if resampler is not None:
            parts.append(resampler.flush())
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


def check_declared_audio(stream: Any, container: Any, max_seconds: float) -> None:
    """Refuse from the header alone: a rate or channel count out of range, or a declared duration over the limit."""
    check_rate(stream.sample_rate or 0, stream.channels or 0)
    declared = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = container.duration / 1_000_000  # AV_TIME_BASE
    if declared is not None and declared > max_seconds:
        raise ClipTooLong(declared, max_seconds, declared=True)


def check_rate(rate: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioLimitError(f"sample rate of {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; "
                              "resample the audio (16000 Hz is what the engine uses)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioLimitError(f"{channels} audio channels is outside 1..{MAX_CHANNELS}; mix the audio down to mono")


def load_clip(clip_or_path: AudioClip | str | Path | np.ndarray, sample_rate: int = 16000) -> AudioClip:
    """An AudioClip from a clip (resampled if its rate differs), a file path, or an array [N] already at the rate."""
    if isinstance(clip_or_path, AudioClip):
        if clip_or_path.sample_rate == sample_rate:
            return clip_or_path
        resampler = StreamResampler(clip_or_path.sample_rate, sample_rate)
        samples = np.concatenate([resampler.process(clip_or_path.samples), resampler.flush()])
        return AudioClip(samples, sample_rate, clip_or_path.name)
    if isinstance(clip_or_path, np.ndarray):
        if clip_or_path.ndim != 1:
            raise ValueError(f"a clip array must be mono [N]; got shape {clip_or_path.shape} (average the channels)")
        samples = clip_or_path
        if np.issubdtype(samples.dtype, np.integer):  # PCM as read from a wav or a socket: scale to [-1, 1]
            samples = samples / float(np.iinfo(samples.dtype).max)
        return AudioClip(samples.astype(np.float32, copy=False), sample_rate, "array")
    path = Path(clip_or_path)
    return AudioClip(decode_file(path, sample_rate), sample_rate, path.name)


class AudioSource(ABC):
    """The interface: `read(n)` gives exactly n mono float32 samples at `sample_rate`; `finished` says nothing more
    will come (a file at its end); `close()` frees devices."""

    sample_rate: int = 16000

    @abstractmethod
    def read(self, n: int) -> np.ndarray:
        """Exactly n samples [n] float32."""

    @property
    def finished(self) -> bool:
        return False

    def close(self) -> None:
        pass


class SilenceSource(AudioSource):
    """Zeros, forever."""

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate

    def read(self, n: int) -> np.ndarray:
        return np.zeros(n, np.float32)


class FileSource(AudioSource):
    """A decoded file, read front to back; silence after its end."""

    def __init__(self, path: str | Path, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.clip = load_clip(path, sample_rate)
        self._cursor = 0

    def read(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        part = self.clip.samples[self._cursor:self._cursor + n]
        out[:len(part)] = part
        self._cursor += n
        return out

    @property
    def finished(self) -> bool:
        return self._cursor >= len(self.clip.samples)


@dataclass
class ClipHandle:
    """Where a pushed clip sits in its source's output: samples [start, end) once it has been read."""

    clip: AudioClip
    start: int | None = None
    """Source sample index of the clip's first sample (None until reading reaches it)."""
    end: int | None = None
    """Source sample index one past its last sample (None until it has been read to the end)."""
    cancelled: bool = False
    """Interrupted or stopped before it finished."""
    stream: SpeechStream | None = None
    """Speech still arriving, played in place of `clip` (whose samples are then empty)."""

    @property
    def length(self) -> int:
        """Samples to play: the clip's, or what the stream has received so far."""
        return self.stream.received if self.stream is not None else len(self.clip.samples)


@dataclass
class _Queue:
    items: list[ClipHandle] = field(default_factory=list)
    offset: int = 0  # samples of items[0] already read


class PushSource(AudioSource):
    """Clips queued by scenes or the control socket, played back to back, silence when the queue is empty.

    `push` may be called from any thread while another thread reads; a short lock guards the queue only.
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self._queue = _Queue()
        self._lock = threading.Lock()
        self.position = 0
        """Samples read so far (the source's clock, in samples)."""

    def push(self, clip: AudioClip | str | Path | np.ndarray, interrupt: bool = False) -> ClipHandle:
        """Queue `clip` (a file path is decoded now); interrupt=True first drops the clip playing and the queue."""
        handle = ClipHandle(load_clip(clip, self.sample_rate))
        with self._lock:
            if interrupt:
                self._cancel_all()
            self._queue.items.append(handle)
        return handle

    def push_stream(self, stream: SpeechStream, interrupt: bool = False) -> ClipHandle:
        """Queue a stream: it plays what has arrived when its turn comes, then each chunk as it arrives, until it
        is ended and played out; clips queued after it wait for that."""
        handle = ClipHandle(AudioClip(np.zeros(0, np.float32), self.sample_rate, stream.name), stream=stream)
        with self._lock:
            if interrupt:
                self._cancel_all()
            self._queue.items.append(handle)
        return handle

    def clear(self) -> None:
        """Drop the clip playing and everything queued."""
        with self._lock:
            self._cancel_all()

    def _cancel_all(self) -> None:
        for handle in self._queue.items:
            handle.cancelled = True
            if handle.stream is not None:
                handle.stream.cancel()
        self._queue = _Queue()

    @property
    def busy(self) -> bool:
        return bool(self._queue.items)

    @property
    def queued_s(self) -> float:
        """Seconds still to play: the rest of the clip playing and every clip queued after it."""
        with self._lock:
            samples = sum(handle.stream.buffered if handle.stream is not None else len(handle.clip.samples)
                          for handle in self._queue.items) - self._queue.offset
        return samples / self.sample_rate

    def read(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        filled = 0
        with self._lock:
            queue = self._queue
            while filled < n and queue.items:
                handle = queue.items[0]
                if handle.start is None and handle.stream is None:
                    handle.start = self.position + filled
                if handle.stream is not None:
                    filled = self._read_stream(handle, out, filled)
                    if handle.end is None:
                        break  # an under-run: silence for the rest of this block, the stream stays first
                    continue
                part = handle.clip.samples[queue.offset:queue.offset + n - filled]
                out[filled:filled + len(part)] = part
                filled += len(part)
                queue.offset += len(part)
                if queue.offset >= len(handle.clip.samples):
                    handle.end = self.position + filled
                    queue.items.pop(0)
                    queue.offset = 0
        self.position += n
        return out

    def _read_stream(self, handle: ClipHandle, out: np.ndarray, filled: int) -> int:
        """Copy what the stream has into out[filled:]; pops it when it is over. Returns the new fill."""
        part = handle.stream.read(len(out) - filled)
        if handle.start is None and len(part):  # a stream starts with its first sample, not with its first read
            handle.start = self.position + filled
        out[filled:filled + len(part)] = part
        filled += len(part)
        if handle.stream.finished:
            handle.end = self.position + filled
            handle.start = handle.end if handle.start is None else handle.start
            handle.cancelled = handle.stream.cancelled
            self._queue.items.pop(0)
        return filled


class MicSource(AudioSource):
    """A pyaudio input device, at its native rate, resampled to the engine rate, its DC offset removed.

    The PortAudio callback only copies into `native` (a SampleRing at the device rate). `read(n)` moves what has
    arrived through the resampler into `ring` (engine rate) and takes n samples from it, so a late device shows up
    as underruns and a consumer that falls behind as overruns, both counted on the rings.
    """

    def __init__(self, device: str | int | None = None, sample_rate: int = 16000, block_s: float = 0.02,
                 ring_seconds: float = 2.0) -> None:
        self.sample_rate = sample_rate
        self.want = device
        self.block_s = block_s
        self.ring_seconds = ring_seconds
        self.device_name = ""
        self.device_rate = 0
        self.native: SampleRing | None = None
        self.ring = SampleRing(int(ring_seconds * sample_rate), sample_rate)
        self._pa: Any = None
        self._stream: Any = None
        self._channels = 1
        self._resampler: StreamResampler | None = None
        self._dc_blocker = DCBlocker(sample_rate)
        self._continue = 0

    def open(self) -> MicSource:
        """Find the device and start capturing; an AudioDeviceError names the devices there are."""
        import pyaudio

        self._continue = pyaudio.paContinue
        self._pa = open_pyaudio()
        try:
            info = find_device(self._pa, self.want, "input")
            self.device_name = info["name"]
            self.device_rate = int(info["defaultSampleRate"])
            self.native = SampleRing(int(self.ring_seconds * self.device_rate), self.device_rate)
            self._resampler = StreamResampler(self.device_rate, self.sample_rate)
            self._stream = self._open_stream(pyaudio, info)
        except Exception:
            self.close()
            raise
        return self

    def _open_stream(self, pyaudio: Any, info: dict[str, Any]) -> Any:
        # Mono first; some hardware only opens with its own channel count, which read() then averages.
        last_error: Exception | None = None
        for channels in dict.fromkeys((1, int(info["maxInputChannels"]))):
            try:
                self._channels = channels
                return self._pa.open(
                    format=pyaudio.paFloat32, channels=channels, rate=self.device_rate, input=True,
                    input_device_index=info["index"], frames_per_buffer=max(1, int(self.block_s * self.device_rate)),
                    stream_callback=self._callback,
                )
            except OSError as error:
                last_error = error
        raise OSError(f"could not open input device {self.device_name!r} at {self.device_rate} Hz: {last_error}")

    def _callback(self, in_data: bytes, frame_count: int, time_info: Any, status: int) -> tuple[None, int]:
        self.native.write(np.frombuffer(in_data, np.float32))
        return None, self._continue

    def poll(self) -> None:
        """Resample whatever the device delivered into `ring` (frame loop side)."""
        if self.native is None:
            return
        raw = self.native.read_available()
        if self._channels > 1:
            raw = raw[: len(raw) - len(raw) % self._channels].reshape(-1, self._channels).mean(axis=1)
        self.ring.write(self._dc_blocker.process(self._resampler.process(raw)))

    @property
    def available(self) -> int:
        self.poll()
        return self.ring.available

    def read(self, n: int) -> np.ndarray:
        self.poll()
        return self.ring.read(n)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop_stream()
            stream.close()
        pa, self._pa = self._pa, None
        if pa is not None:
            pa.terminate()
