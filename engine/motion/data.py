"""Training data for the syncers: a dataset's speech windows, poses, upper-face blendshapes and blink timing."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.activity import speech_mask
from engine.audio.augment import augmented_copies
from engine.audio.features import FeatureExtractor, FeatureMismatchError, FeatureSpec, feature_spec, make_extractor
from engine.audio.settings import AudioSettings
from engine.audio.streaming import offline_windows
from engine.data.dataset import Dataset, DatasetError
from engine.motion.config import BLINK_CHANNELS

NO_BLINK_INTERVAL_S = 10.0


@dataclass
class MotionData:
    """Everything training needs, per video frame (T frames, K blendshapes, windows [W, D] of D-dim features)."""

    features: np.ndarray  # [C, P * (T - 1) + W, D] float32 feature frames of C versions of the audio (0: as
    # recorded, then augmented copies); frame k's window is rows P*k .. P*k + W - 1
    stride: int  # P: feature frames per video frame
    pose: np.ndarray  # [T, 6] euler_deg (roll, pitch, yaw) then trans (cm)
    expr: np.ndarray  # [T, K] blendshapes in [0, 1]
    names: tuple[str, ...]
    elapsed: np.ndarray  # [T] frames since the last blink onset before each frame
    interval: np.ndarray  # [T] frames between that onset and the next one
    blink_threshold: float
    intervals: np.ndarray  # [M] inter-onset intervals in frames (run time draws from these)
    silence: np.ndarray  # [D] features of silent audio
    spec: FeatureSpec
    fps: float
    val_start: int
    valid: np.ndarray  # [T] bool: the face was tracked (False: interpolated by preprocess)
    speech: np.ndarray  # [T] bool: the recording's energy VAD (engine/audio/activity.py) says speech


def silence_features(extractor: FeatureExtractor) -> np.ndarray:
    """The features [D] of all-zero audio (what non-finite input is replaced by)."""
    return extractor.compute(np.zeros((1, extractor.window_samples), np.float32))[0, 0].astype(np.float32)


def speech_windows(extractor: FeatureExtractor, audio: np.ndarray, frames: int, settings: AudioSettings) -> np.ndarray:
    """The streaming windows [frames, W, D] of `audio` [N], padded with silence so the last frames get their
    look-ahead (a live stream would hear the silence after the clip the same way)."""
    pad = np.zeros(int(settings.sample_rate * 1.0), np.float32)
    windows = offline_windows(extractor, np.concatenate([np.asarray(audio, np.float32), pad]), settings.window_frames,
                              settings.lookahead_frames, settings.video_fps, gate=settings.gate)
    if len(windows) < frames:
        filler = np.broadcast_to(silence_features(extractor), (frames - len(windows), *windows.shape[1:]))
        windows = np.concatenate([windows, filler])
    return np.ascontiguousarray(windows[:frames], np.float32)


def cached_windows(path: Path, spec: FeatureSpec, frames: int) -> np.ndarray | None:
    """The windows [frames, W, D] preprocess cached at `path` when they were made with exactly `spec`; else None
    (then they are recomputed: the same streaming calls, only slower)."""
    import json

    if not path.is_file():
        return None
    with np.load(path) as cache:
        if "windows" not in cache.files or "spec" not in cache.files:
            return None
        try:
            spec.check(json.loads(str(cache["spec"])), str(path))
        except FeatureMismatchError:
            return None
        windows = cache["windows"]
    return np.ascontiguousarray(windows[:frames], np.float32) if len(windows) >= frames else None


def dataset_windows(dataset, extractor: FeatureExtractor, settings: AudioSettings, frames: int, copies: int = 0,
                    seed: int = 0) -> Iterator[np.ndarray]:
    """The windows [frames, W, D] of a Dataset's recording (its cache when made with exactly these settings: another
    look-ahead would train on windows the engine never computes), then those of `copies` augmented versions of its
    audio (engine/audio/augment.py), one at a time."""
    spec = feature_spec(settings, extractor)
    windows = cached_windows(dataset.features_path(extractor.id), spec, frames)
    yield windows if windows is not None else speech_windows(extractor, dataset.audio(), frames, settings)
    for noisy in augmented_copies(dataset.audio(), copies, seed) if copies else ():
        yield speech_windows(extractor, noisy, frames, settings)


def blink_signal(expr: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Mean of the two eyelid blendshapes [T] from expr [T, K]."""
    return expr[:, [names.index(n) for n in BLINK_CHANNELS]].mean(1)


def blink_threshold(signal: np.ndarray) -> float:
    """Half-way between open (10th percentile) and closed (99.5th); above 1 when the data holds no clear blinks."""
    lo, hi = np.percentile(signal, [10.0, 99.5])
    return float(lo + 0.5 * (hi - lo)) if hi - lo >= 0.05 else 2.0


def blink_onsets(signal: np.ndarray, threshold: float) -> np.ndarray:
    """Frames where the blink signal [T] rises through `threshold` (frame 0 never counts)."""
    above = signal >= threshold
    return np.flatnonzero(above[1:] & ~above[:-1]) + 1


def blink_timing(onsets: np.ndarray, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: elapsed frames since the last onset before it and the interval that onset opened; and the list of
    intervals. Before the first onset and after the last, the unseen onset is placed at the median interval."""
    intervals = np.diff(onsets).astype(np.float64)
    typical = float(np.median(intervals)) if len(intervals) else NO_BLINK_INTERVAL_S * fps
    elapsed = np.zeros(frames)
    interval = np.zeros(frames)
    first = int(onsets[0]) if len(onsets) else frames
    lead = max(0.0, typical - first)
    t = np.arange(first + 1 if len(onsets) else frames)
    elapsed[: len(t)] = lead + t
    interval[: len(t)] = lead + first
    for i, onset in enumerate(onsets):
        end = int(onsets[i + 1]) if i + 1 < len(onsets) else frames
        span = np.arange(onset + 1, min(end + 1, frames))
        elapsed[span] = span - onset
        interval[span] = (end - onset) if i + 1 < len(onsets) else max(typical, frames - onset + 1)
    if not len(intervals):
        intervals = np.array([typical])
    return elapsed.astype(np.float32), interval.astype(np.float32), intervals.astype(np.float32)


def feature_rows(windows: np.ndarray, stride: int) -> np.ndarray:
    """Windows [T, W, D] -> the feature frames [P * (T - 1) + W, D] they are cut from (neighbouring windows overlap
    in all but P rows: keeping each frame once saves W / P times the memory; HuBERT windows would be ~1 GB)."""
    return np.concatenate([windows[0], windows[1:, -stride:].reshape(-1, windows.shape[-1])])


def load_motion_data(root: Path, settings: AudioSettings, names: tuple[str, ...], copies: int = 0,
                     seed: int = 0) -> MotionData:
    """Read dataset `root` and compute everything the syncers train on, with the features of `copies` augmented
    versions of its audio (other gains and noise floors, engine/audio/augment.py) after those of the recording;
    errors name the file and the fix."""
    data = Dataset(root)
    tracks = data.tracks
    missing = [n for n in names if n not in tracks.blendshape_names]
    if missing:
        raise DatasetError(f"{root / 'tracks.npz'} has no blendshapes {missing} (it has {tracks.blendshape_names}); "
                           "re-run `syncanim preprocess`, or train with --blendshapes naming ones it has")
    if any(n not in names for n in BLINK_CHANNELS):
        raise ValueError(f"blendshapes {names} must include {BLINK_CHANNELS}: blinks are the emotion syncer's job")
    if abs(data.meta.fps - settings.video_fps) > 1e-6:
        raise DatasetError(f"{root / 'meta.json'} has fps {data.meta.fps}, the motion syncers run at "
                           f"AudioSettings.video_fps={settings.video_fps}; re-run preprocess at that rate")
    extractor = make_extractor(settings)
    frames = len(tracks)
    spec = feature_spec(settings, extractor)
    stride = round(50.0 / settings.video_fps)
    features = np.stack([feature_rows(windows, stride)
                         for windows in dataset_windows(data, extractor, settings, frames, copies, seed)])
    expr = tracks.blendshapes[:, [tracks.blendshape_names.index(n) for n in names]].astype(np.float32)
    pose = np.concatenate([tracks.euler_deg, tracks.trans], 1).astype(np.float32)
    signal = blink_signal(expr[: data.meta.val_start], names)
    threshold = blink_threshold(signal)
    onsets = blink_onsets(blink_signal(expr, names), threshold)
    elapsed, interval, _ = blink_timing(onsets, frames, data.meta.fps)
    train_onsets = onsets[onsets < data.meta.val_start]
    _, _, intervals = blink_timing(train_onsets, data.meta.val_start, data.meta.fps)
    speech = speech_mask(data.audio(), data.meta.sample_rate, data.meta.fps, frames)
    return MotionData(features, stride, pose, expr, tuple(names), elapsed, interval, threshold, intervals,
                      silence_features(extractor), spec, data.meta.fps,
                      data.meta.val_start, np.asarray(tracks.valid, bool), speech)


def sequence_starts(valid: np.ndarray, low: int, high: int, frames: int) -> np.ndarray:
    """Start frames in [low, high) whose sequence (two frames of history, then `frames`) was tracked throughout;
    all of them when fewer than a tenth qualify (a poorly tracked video still trains, on interpolated frames)."""
    candidates = np.arange(low, high)
    if len(candidates) == 0:
        return candidates
    bad = np.concatenate([[0], np.cumsum(~valid)])
    clean = candidates[bad[candidates + frames] - bad[candidates - 2] == 0]
    return clean if len(clean) >= 0.1 * len(candidates) else candidates
