"""Reading the input video: checks with clear errors, frames resampled to the dataset rate, and the aligned speech.

Time zero is the first video frame. Dataset frame k shows the source frame nearest to t = k / fps (by presentation
time, so variable frame rates and 24/30/60 fps inputs land on the same clock as the audio), and sample n of the
audio is t = n / sample_rate on that clock.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.activity import frame_levels_db, loud_and_noise_db
from engine.audio.sources import AudioFormatError, decode_file
from engine.data.preprocess.config import PreprocessError

MIN_SIDE = 96
"""Shorter side, in pixels, below which a face is too small to track."""


@dataclass(frozen=True)
class SourceInfo:
    """What the checks learned about the input video (sizes after applying its rotation metadata)."""

    path: Path
    width: int
    height: int
    fps: float
    """The container's average frame rate (informational; resampling uses each frame's own time)."""
    rotation: int
    """Degrees the stored frames are turned counter-clockwise for display (phone videos): 0, 90, 180 or 270."""
    codec: str
    duration_s: float
    """Length of the video stream the file declares (0 if unknown); frames are counted by decoding, and a decoded
    length well short of this means a truncated file."""
    has_audio: bool
    audio_offset_s: float
    """Start of the audio track minus start of the video track, seconds (0 when there is no audio)."""


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except av.error.FFmpegError as error:
        raise PreprocessError(f"{path} is not a readable video ({error}); re-export it as mp4 (h264 + aac), e.g. "
                              f"`ffmpeg -i {path.name} -c:v libx264 -c:a aac fixed.mp4`") from error


def _first_frame(container, stream):
    """The first decoded frame of `stream`, or None when nothing decodes."""
    import av

    try:
        return next(iter(container.decode(stream)), None)
    except av.error.FFmpegError:
        return None


def _start_time(frame) -> float:
    """Presentation time in seconds (0 for streams without timestamps, e.g. raw .h264)."""
    return float(frame.time) if frame.time is not None else 0.0


def _declared_duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return float(container.duration) / 1e6 if container.duration else 0.0


def inspect_source(path: str | os.PathLike) -> SourceInfo:
    """Open the video and check it can become a dataset; raises PreprocessError naming the problem and the fix."""
    path = Path(path)
    if not path.is_file():
        raise PreprocessError(f"{path}: no such file; pass the path of a video (mp4, mov, mkv, webm, ...)")
    if path.stat().st_size == 0:
        raise PreprocessError(f"{path} is empty (0 bytes); the recording or copy did not finish, pass the full video")
    with _open(path) as container:
        if not container.streams.video:
            raise PreprocessError(f"{path} has no video stream (only {len(container.streams.audio)} audio streams); "
                                  "pass a video of the person talking")
        stream = container.streams.video[0]
        first = _first_frame(container, stream)
        if first is None:
            raise PreprocessError(f"{path}: no video frame could be decoded (the file is corrupt or truncated); "
                                  "re-export or re-download it")
        rotation = int(round((first.rotation or 0) / 90.0)) % 4 * 90
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        codec, duration = stream.codec_context.name, _declared_duration(container, stream)
        video_start, has_audio = _start_time(first), bool(container.streams.audio)
    offset = 0.0
    if has_audio:
        with _open(path) as container:  # a fresh demuxer: the first open has read ahead in the video
            audio_first = _first_frame(container, container.streams.audio[0])
        has_audio = audio_first is not None
        offset = _start_time(audio_first) - video_start if has_audio else 0.0
    if min(width, height) < MIN_SIDE:
        raise PreprocessError(f"{path} is {width}x{height}: too small to track a face (the shorter side must be at "
                              f"least {MIN_SIDE} px, 512 or more works best); use a higher-resolution recording")
    return SourceInfo(path, width, height, fps, rotation, codec, duration, has_audio, float(offset))


def _upright(frame, rotation: int) -> np.ndarray:
    """An av.VideoFrame -> RGB [H, W, 3] uint8, turned the way a player would show it."""
    picture = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(np.rot90(picture, rotation // 90)) if rotation else picture


def resampled_frames(source: SourceInfo, fps: float) -> Iterator[tuple[int, np.ndarray]]:
    """(k, RGB frame [H, W, 3] uint8) for k = 0, 1, ...: the source frame nearest to t = k / fps.

    Frames repeat (24 fps in) or drop (30 fps in) as nearest-in-time picks; the last frame counts for one frame
    interval, so a 5 s video gives round(5 * fps) frames whatever its own rate.
    """
    import av

    k = 0
    nominal = 1.0 / (source.fps or fps)  # for streams without timestamps (raw .h264): the declared rate
    previous, previous_t, interval = None, 0.0, nominal
    start = None
    with _open(source.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else index * nominal
                start = t if start is None else start
                t -= start
                if previous is not None:
                    if t <= previous_t:
                        continue  # a repeated or out-of-order timestamp: keep the first frame shown at that time
                    interval = t - previous_t
                    boundary = (previous_t + t) / 2.0
                    while k / fps < boundary - 1e-9:
                        yield k, previous
                        k += 1
                previous, previous_t = _upright(frame, source.rotation), t
        except av.error.FFmpegError as error:
            raise PreprocessError(f"{source.path}: decoding failed after {k} frames ({error}); the file is corrupt "
                                  "or truncated, re-export it (e.g. `ffmpeg -i in -c:v libx264 fixed.mp4`)") from error
    if previous is None:
        raise PreprocessError(f"{source.path}: no video frame could be decoded; re-export or re-download it")
    # The video ends one frame interval after its last frame; counting output frames up to half a frame before that
    # end rounds the length to whole output frames despite millisecond timestamps (mkv, webm).
    while k / fps < previous_t + interval - 0.5 / fps:
        yield k, previous
        k += 1


def audio_sample_rate(path: Path) -> int | None:
    """The sample rate the first audio stream of `path` declares, Hz (None: no audio stream, or unreadable)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            return int(container.streams.audio[0].codec_context.sample_rate) or None
    except av.error.FFmpegError:
        return None


SILENT_DBFS = -50.0
"""Sound whose loud level (95th-percentile frame level) stays below this holds no speech: the video is silent."""


def load_audio(source: SourceInfo, audio_file: Path | None, frames: int, fps: float, sample_rate: int,
               silent: bool = False) -> tuple[np.ndarray, bool]:
    """Speech aligned with the dataset frames: mono float32 [frames * sample_rate / fps] (silence-padded at the end),
    and whether the recording is silent (zeros when it has no sound at all, or `silent` asks to ignore it).

    From `audio_file` when given (assumed to start with the video), else from the video's audio track, shifted by
    its start offset so sample 0 plays with frame 0.
    """
    length = int(round(frames * sample_rate / fps))
    if silent or (audio_file is None and not source.has_audio):
        return np.zeros(length, np.float32), True
    origin = Path(audio_file) if audio_file is not None else source.path
    try:
        samples = decode_file(origin, sample_rate)
    except (AudioFormatError, FileNotFoundError) as error:
        raise PreprocessError(f"{origin}: the speech could not be decoded ({error}); pass --audio with a wav or "
                              "flac file, or --silent to make a silent dataset") from error
    offset = 0.0 if audio_file is not None else source.audio_offset_s
    shift = int(round(offset * sample_rate))
    if shift > 0:
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:
        samples = samples[-shift:]
    if len(samples) < length:
        samples = np.concatenate([samples, np.zeros(length - len(samples), np.float32)])
    samples = samples[:length].astype(np.float32)
    levels = frame_levels_db(samples, sample_rate, fps, frames)
    quiet = not np.isfinite(levels).any() or loud_and_noise_db(levels)[0] < SILENT_DBFS
    return samples, bool(quiet)
