"""mp4 files: an atomic h264 writer that muxes AAC audio at close (from memory or from a wav streamed to disk while
recording), and a probe for reading them back."""
from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.io.atomic import atomic_path


def ffmpeg_exe() -> str:
    """The ffmpeg binary bundled with imageio-ffmpeg (no system ffmpeg needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _pcm16(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples
    return (np.clip(np.nan_to_num(samples), -1.0, 1.0) * 32767.0).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Mono float32 in [-1, 1] (or int16) -> 16-bit PCM wav."""
    samples = _pcm16(samples)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(samples.tobytes())


class WavSpool:
    """Mono 16-bit PCM streamed to a wav file block by block, so a recording of any length holds no audio in memory.

    `finish(length)` pads with silence or cuts to exactly `length` samples and writes the header's sizes; until
    then the header says 0 bytes (the file is a partial one). `discard()` closes and deletes it.
    """

    HEADER_BYTES = 44
    SILENCE_CHUNK = 1 << 16

    def __init__(self, path: str | os.PathLike, sample_rate: int) -> None:
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.samples = 0
        """Samples written so far."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 (kept open for the whole recording)
        self._file.write(self._header(0))

    def _header(self, samples: int) -> bytes:
        data = 2 * samples
        return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 1, self.sample_rate,
                           2 * self.sample_rate, 2, 16, b"data", data)

    def write(self, block: np.ndarray) -> None:
        """Append mono float32 in [-1, 1] (or int16) samples [n]."""
        if len(block):
            self._file.write(_pcm16(block).astype("<i2", copy=False).tobytes())
            self.samples += len(block)

    def finish(self, length: int | None = None) -> Path:
        """Close the file at exactly `length` samples (default: as written); returns its path."""
        if length is not None:
            if length < 0:
                raise ValueError(f"{self.path}: a wav length is >= 0 samples, got {length}")
            while self.samples < length:
                self.write(np.zeros(min(self.SILENCE_CHUNK, length - self.samples), np.int16))
            if self.samples > length:
                self._file.truncate(self.HEADER_BYTES + 2 * length)
                self.samples = length
        self._file.seek(0)
        self._file.write(self._header(self.samples))
        self._file.close()
        return self.path

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


class H264Encoder:
    """An ffmpeg process that reads raw RGB frames on its stdin and writes them as h264 into `path`."""

    EXIT_SECONDS = 120.0
    """How long `finish` waits for ffmpeg to encode what it has buffered before it gives up on it."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, quality: int, preset: str,
                 name: Path | None = None) -> None:
        self.name = name or path
        """The file errors name (the output the partial `path` becomes)."""
        command = [
            ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{size[0]}x{size[1]}", "-r", str(Fraction(fps).limit_denominator()), "-i", "-", "-an",
            # yuv420p needs even sides: pad odd sizes by one pixel instead of rescaling.
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            "-crf", str(int((1 - quality / 10) * 51)), "-preset", preset, str(path),
        ]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (ffmpeg's errors, read when it fails)
        # A process group of its own keeps a Ctrl-C at the terminal from stopping ffmpeg mid-file: the engine gets it
        # and finishes the recording. process_group is applied in C between fork and exec; a Python preexec_fn there
        # could deadlock on a lock one of the engine's other threads held at the fork.
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self._log, process_group=0)

    def write(self, rgb: np.ndarray) -> None:
        """One C-contiguous [H, W, 3] uint8 frame of the encoder's size."""
        try:
            self._process.stdin.write(rgb.data)
        except (BrokenPipeError, ValueError) as error:
            self.kill()
            raise RuntimeError(f"{self.name}: the h264 encoder (ffmpeg) stopped with exit code "
                               f"{self._process.returncode}: {self.errors()}") from error

    def finish(self) -> None:
        """Flush the last frames and wait for ffmpeg to write the file; raises if it fails or hangs."""
        try:
            self._process.stdin.close()
            code = self._process.wait(timeout=self.EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.name}: the h264 encoder (ffmpeg) did not finish within "
                               f"{self.EXIT_SECONDS:g} s") from None
        except BrokenPipeError:
            code = self._process.wait()
        if code != 0:
            raise RuntimeError(f"{self.name}: the h264 encoder (ffmpeg) failed with exit code {code}: {self.errors()}")
        self._log.close()

    def kill(self) -> None:
        """Stop ffmpeg now (what it wrote is left for the caller to delete)."""
        self._process.kill()
        self._process.wait()
        try:
            self._process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    def errors(self) -> str:
        """The end of what ffmpeg printed (it prints only errors)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-500:] or "(it printed nothing)"


class Mp4Writer:
    """h264 frames into a hidden partial file; `close(audio=...)` muxes AAC and moves it into place.

    Nothing appears at `path` until close() succeeds, so a crash or Ctrl-C never leaves a truncated
    file over a good one. Use as a context manager: an exception inside aborts the file.
    """

    def __init__(self, path: str | os.PathLike, fps: float, quality: int = 8, preset: str = "veryfast") -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.quality = quality
        # x264's speed/size trade-off: 'veryfast' costs about a third of the default 'medium' for a similar file,
        # which keeps recording and synthesis faster than real time on a 2-core CPU.
        self.preset = preset
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._video_tmp = atomic_path(self.path.with_name(f"{self.path.stem}.video.mp4"))
        self._encoder = None

    def write(self, frame: np.ndarray) -> None:
        """One frame, [H, W, 3|4] uint8 (alpha is dropped: mp4 has none)."""
        if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be [H, W, 3|4] uint8, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        if self._encoder is None:
            self._encoder = H264Encoder(self._video_tmp, (width, height), self.fps, self.quality, self.preset,
                                        name=self.path)
            self.size = (width, height)
        elif (width, height) != self.size:
            raise ValueError(f"{self.path}: frame size changed from {self.size} to {(width, height)}")
        self._encoder.write(np.ascontiguousarray(frame[:, :, :3]))
        self.frames += 1

    def close(self, audio: np.ndarray | str | os.PathLike | None = None, sample_rate: int = 16000) -> Path:
        """Finish the file; `audio` is mono float32 in [-1, 1] at `sample_rate`, or the path of a wav file (a
        WavSpool's, streamed from disk), muxed as AAC."""
        if self._encoder is None:
            raise ValueError(f"{self.path}: no frames were written; nothing to save")
        encoder, self._encoder = self._encoder, None
        try:
            encoder.finish()
        except BaseException:
            self._video_tmp.unlink(missing_ok=True)
            raise
        if audio is None or (isinstance(audio, np.ndarray) and len(audio) == 0):
            os.replace(self._video_tmp, self.path)
            return self.path
        if not isinstance(audio, np.ndarray):
            self._mux(Path(audio))
            return self.path
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "audio.wav"
            write_wav(wav, audio, sample_rate)
            self._mux(wav)
        return self.path

    def _mux(self, wav: Path) -> None:
        muxed = atomic_path(self.path.with_name(f"{self.path.stem}.muxed.mp4"))
        command = [
            ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(self._video_tmp), "-i", str(wav),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k",
            "-movflags", "+faststart", str(muxed),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            muxed.unlink(missing_ok=True)
            raise RuntimeError(f"muxing audio into {self.path} failed: {result.stderr.strip()[-500:]}")
        os.replace(muxed, self.path)
        self._video_tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop the encoder at once and delete the partial file (safe from another thread than write's)."""
        if self._encoder is not None:
            self._encoder.kill()
            self._encoder = None
        self._video_tmp.unlink(missing_ok=True)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self._encoder is not None:
            self.close()


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    audio_duration_s: float | None
    audio_rate: int | None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Count the frames and measure the audio of a media file by decoding it (exact, not header guesses)."""
    import av

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream")
        vstream = container.streams.video[0]
        fps = float(vstream.average_rate or vstream.guessed_rate or 0)
        width, height = vstream.codec_context.width, vstream.codec_context.height
        frames = sum(1 for _ in container.decode(video=0))
    audio_duration = audio_rate = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            astream = container.streams.audio[0]
            audio_rate = astream.codec_context.sample_rate
            samples = sum(frame.samples for frame in container.decode(audio=0))
            audio_duration = samples / audio_rate
    return VideoInfo(frames, fps, width, height, frames / fps if fps else 0.0, audio_duration, audio_rate)
