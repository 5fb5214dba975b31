"""Playback: voices of queued clips, mixed and sent to a pyaudio output or to a virtual one that follows the clock.

Each call of `Mixer.render(n)` reads n samples from every voice: it copies each voice's samples into that voice's
SampleRing (what its avatar hears, for the feature extractor) and the delayed sum into the output ring (what the
speakers play, for the AudioTap and the level meter). With a device, PortAudio's callback calls `render`; without
one, the `advance_playback` system does, once per frame, for exactly the samples the master clock has moved on.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.devices import find_device
from engine.audio.ring import SampleRing
from engine.audio.sources import AudioClip, ClipHandle, PushSource
from engine.audio.speech_stream import SpeechStream


class DelayLine:
    """A fixed delay of `samples` (silence at first)."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self._held = np.zeros(samples, np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        if self.samples == 0:
            return block
        joined = np.concatenate([self._held, block])
        self._held = joined[len(block):]
        return joined[:len(block)]

    def pending(self) -> bool:
        return bool(np.any(self._held))


class Mixer:
    """Voices (PushSources) -> their SampleRings (heard now) and the output ring (played `delay` samples later)."""

    def __init__(self, voices: dict[str, PushSource], heard: dict[str, SampleRing], output: SampleRing,
                 delay: int = 0) -> None:
        self.voices = voices
        self.heard = heard
        """Rings the voices' samples go to; a voice missing here (the main voice with a mic) is played only."""
        self.output = output
        self.delay = DelayLine(delay)
        self.rendered = 0
        """Samples rendered so far (output sample index of the next block)."""

    def render(self, n: int) -> np.ndarray:
        """Mix the next n samples [n] of every voice (called on the device thread or the frame loop)."""
        mix = np.zeros(n, np.float32)
        for name, voice in self.voices.items():
            block = voice.read(n)
            ring = self.heard.get(name)
            if ring is not None:
                ring.write(block)
            mix += block
        out = np.clip(self.delay.process(mix), -1.0, 1.0)
        self.output.write(out)
        self.rendered += n
        return out


class PlaybackHandle:
    """What `play` returns: `done` once the clip has been played to its end (or was interrupted)."""

    def __init__(self, clip: ClipHandle, mixer: Mixer) -> None:
        self._clip = clip
        self._mixer = mixer

    @property
    def clip(self) -> AudioClip:
        return self._clip.clip

    @property
    def cancelled(self) -> bool:
        return self._clip.cancelled

    @property
    def started(self) -> bool:
        return self._clip.start is not None and self._mixer.rendered > self._clip.start + self._mixer.delay.samples

    @property
    def done(self) -> bool:
        end = self._clip.end
        return self._clip.cancelled or (end is not None and self._mixer.rendered >= end + self._mixer.delay.samples)

    @property
    def position_s(self) -> float:
        """Seconds of this clip played so far."""
        return self.position / self._clip.clip.sample_rate

    @property
    def stream(self) -> SpeechStream | None:
        """The stream this handle plays, for speech still arriving."""
        return self._clip.stream

    @property
    def said(self) -> str:
        """For a stream with text, the piece being heard now (the output delay taken into account)."""
        stream = self._clip.stream
        return stream.text_at(max(0, stream.played - self._mixer.delay.samples)) if stream is not None else ""

    @property
    def position(self) -> int:
        """Samples of this clip or stream that have left the output so far."""
        if self._clip.start is None:
            return 0
        return max(0, min(self._mixer.rendered - self._mixer.delay.samples - self._clip.start, self._clip.length))


class DeviceOutput:
    """A pyaudio output stream whose callback renders the mixer; its position drives the master clock."""

    def __init__(self, pa: Any, mixer: Mixer, device: str | int | None, sample_rate: int, block: int) -> None:
        import pyaudio

        self.mixer = mixer
        self.sample_rate = sample_rate
        self.block = block
        info = find_device(pa, device, "output")
        self.name = info["name"]
        self._frames = 0
        self._last_callback = 0.0
        self._continue = pyaudio.paContinue
        try:
            self._stream = pa.open(
                format=pyaudio.paFloat32, channels=1, rate=sample_rate, output=True,
                output_device_index=info["index"], frames_per_buffer=block, stream_callback=self._callback,
                start=False,
            )
        except (OSError, ValueError) as error:
            raise OSError(
                f"output device {self.name!r} does not open mono at {sample_rate} Hz ({error}); pick one that "
                "converts (ALSA 'default' or 'pulse') with AudioSettings.output_device, or output='virtual'"
            ) from error
        self.latency_s = float(self._stream.get_output_latency())

    def start(self) -> None:
        self._stream.start_stream()

    def _callback(self, in_data: Any, frame_count: int, time_info: Any, status: int) -> tuple[bytes, int]:
        out = self.mixer.render(frame_count)
        self._frames += frame_count
        self._last_callback = time.perf_counter()
        return out.tobytes(), self._continue

    @property
    def position_s(self) -> float:
        """Seconds of sound that have left the speaker: blocks handed over, less the device latency, plus the time
        since the last callback (capped at one block) so the clock moves smoothly between callbacks."""
        if self._frames == 0:
            return 0.0
        since = min(time.perf_counter() - self._last_callback, self.block / self.sample_rate)
        return max(0.0, (self._frames - self.block) / self.sample_rate - self.latency_s + since)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop_stream()
            stream.close()


class AudioPlayback:
    """Resource: play clips or files on a voice, stop them, and tell the playback position.

    `mode` is 'device' (a pyaudio output; the master clock follows `position_s`) or 'virtual' (`position_s` follows
    the master clock: each frame plays the samples up to the end of that frame).
    """

    def __init__(self, mixer: Mixer, sample_rate: int = 16000, mode: str = "virtual") -> None:
        self.mixer = mixer
        self.sample_rate = sample_rate
        self.mode = mode
        self.device: DeviceOutput | None = None
        self.device_name = "virtual"

    @property
    def voices(self) -> tuple[str, ...]:
        return tuple(self.mixer.voices)

    def play(self, clip_or_path: AudioClip | str | Path | np.ndarray, interrupt: bool = False,
             voice: str | None = None) -> PlaybackHandle:
        """Queue a clip (AudioClip, file path, or mono array [N] at 16 kHz) on `voice` (default: the first one).

        interrupt=True drops what that voice is playing and has queued first. A file is decoded here: preload long
        files with `load_clip` in a scene's setup to keep the frame short.
        """
        return PlaybackHandle(self._voice(voice).push(clip_or_path, interrupt=interrupt), self.mixer)

    def play_stream(self, stream: SpeechStream, interrupt: bool = False, voice: str | None = None) -> PlaybackHandle:
        """Queue speech that is still arriving on `voice` (default: the first one); see SpeechStream."""
        return PlaybackHandle(self._voice(voice).push_stream(stream, interrupt=interrupt), self.mixer)

    def _voice(self, voice: str | None) -> PushSource:
        name = voice or self.voices[0]
        if name not in self.mixer.voices:
            raise KeyError(f"no voice {name!r}; voices are {list(self.voices)} (AudioSettings.voices)")
        return self.mixer.voices[name]

    def stop(self, voice: str | None = None) -> None:
        """Drop the clips playing and queued on `voice`, or on every voice."""
        for name, source in self.mixer.voices.items():
            if voice is None or name == voice:
                source.clear()

    @property
    def busy(self) -> bool:
        """A clip is queued, playing, or still in the output delay."""
        return any(source.busy for source in self.mixer.voices.values()) or self.mixer.delay.pending()

    @property
    def position_s(self) -> float:
        """Seconds played since start: the device's playback position, or the samples rendered so far."""
        if self.device is not None:
            return self.device.position_s
        return self.mixer.rendered / self.sample_rate
