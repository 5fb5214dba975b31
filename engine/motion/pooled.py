"""Several presenters' datasets as one training set: each normalised by its own ranges, then laid end to end."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.settings import AudioSettings
from engine.data.dataset import Dataset, DatasetError
from engine.motion.config import BLINK_CHANNELS
from engine.motion.data import MotionData, load_motion_data, sequence_starts

MAD_TO_STD = 1.4826
"""1.4826 x the median absolute deviation estimates a Gaussian's std, and one blink or nod barely moves it."""
BLEND_PERCENTILES = (5.0, 99.5)
"""[lo, hi] of a blendshape: its rest (5th) and its fullest (99.5th: blinks are a few percent of frames)."""


@dataclass
class Segment:
    """Where one dataset lies in the pooled frames (global frame indices)."""

    root: Path
    """The dataset folder."""
    start: int
    """Its first frame."""
    val_start: int
    """Its first held-out frame (meta.json val_start)."""
    end: int
    """One past its last frame (the gap frames after it belong to no dataset)."""


@dataclass
class PooledData:
    """The pooled, normalised training set (data.val_start is 0: held-out frames are per segment)."""

    data: MotionData
    """All datasets end to end; pose and blendshapes normalised per dataset (range_stats, normalise)."""
    segments: list[Segment]
    """Each dataset's frames, in order."""
    stats: list[dict[str, Any]]
    """Each dataset's range_stats (JSON-ready), in order."""
    blink_intervals: np.ndarray
    """[M] inter-blink intervals (frames) of every dataset whose tracks show clear blinks."""


def range_stats(pose: np.ndarray, expr: np.ndarray, pose_floor: float, width_floor: float,
                names: tuple[str, ...] = ()) -> dict[str, Any]:
    """One presenter's ranges from its frames (pose [T, 6], expr [T, K] with channel `names`): pose median and
    robust spread (1.4826 x MAD, at least pose_floor), blendshape lo / hi percentiles and width hi - lo (at least
    width_floor). The eyelids' hi is at least their typical blink peak (`event_peak`): a presenter who blinked twice
    has no blink at the 99.5th percentile, and a blink commanded to that level would not close the eyes."""
    median = np.median(pose, 0)
    spread = np.maximum(MAD_TO_STD * np.median(np.abs(pose - median), 0), pose_floor)
    lo, hi = np.percentile(expr, BLEND_PERCENTILES, axis=0)
    for k, name in enumerate(names):
        if name in BLINK_CHANNELS:
            hi[k] = blink_peak(expr[:, k])
    width = np.maximum(hi - lo, width_floor)
    return {"pose": {"median": median.tolist(), "spread": spread.tolist()},
            "blendshapes": {"lo": lo.tolist(), "hi": hi.tolist(), "width": width.tolist()}}


def blink_peak(eyelid: np.ndarray) -> float:
    """How far one eyelid channel [T] of a presenter's tracks shuts in a blink: its typical blink peak, or its 99.5th
    percentile when that is higher."""
    return max(float(np.percentile(eyelid, BLEND_PERCENTILES[1])), event_peak(eyelid))


def blink_peaks(expr: np.ndarray, names: tuple[str, ...]) -> list[float]:
    """blink_peak of each of BLINK_CHANNELS in expr [T, K] (channel `names`): the full blink a motion model shows."""
    return [blink_peak(expr[:, names.index(channel)]) for channel in BLINK_CHANNELS]


def event_peak(signal: np.ndarray, min_frames: int = 2) -> float:
    """The median peak of a channel's excursions [T]: runs of at least `min_frames` frames above half-way from its
    median to its maximum (a one-frame spike is a tracking glitch); the median when there are none."""
    rest, top = float(np.median(signal)), float(np.max(signal))
    above = np.concatenate([[False], signal > rest + 0.5 * (top - rest), [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    peaks = [signal[a:b].max() for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_frames]
    return float(np.median(peaks)) if peaks else rest


def normalise(pose: np.ndarray, expr: np.ndarray, stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Pose [T, 6] and expr [T, K] in a presenter's units -> normalised: pose (x - median) / spread, blendshapes
    (x - lo) / width (lo -> 0, hi -> 1)."""
    p, b = stats["pose"], stats["blendshapes"]
    pose_n = (pose - np.asarray(p["median"])) / np.asarray(p["spread"])
    expr_n = (expr - np.asarray(b["lo"])) / np.asarray(b["width"])
    return pose_n.astype(np.float32), expr_n.astype(np.float32)


def training_frames(valid: np.ndarray, val_start: int) -> np.ndarray:
    """The frames the ranges are measured on: tracked training frames, all training frames if none were tracked."""
    frames = np.flatnonzero(np.asarray(valid[:val_start], bool))
    return frames if len(frames) else np.arange(val_start)


def load_pooled(roots: tuple[Path, ...], settings: AudioSettings, names: tuple[str, ...], copies: int = 0,
                seed: int = 0, pose_floor: float = 0.1, width_floor: float = 0.05,
                progress: bool = False) -> PooledData:
    """Load every dataset (load_motion_data: features of the recording and `copies` augmented versions, blink
    timing by its own blink curve), normalise each by its own training frames' ranges and lay them end to end.

    A gap of silent frames after each dataset keeps frame k's feature window at rows P*k .. P*k + W - 1 of the pooled
    features (what Tensors.window assumes); no sequence starts in, or runs into, a gap or another dataset.
    """
    from tqdm.auto import tqdm

    if not roots:
        raise DatasetError("no datasets given to the universal model: pass one or more DATA_DIR folders made by "
                           "`syncanim preprocess`")
    parts, segments, stats, intervals, start = [], [], [], [], 0
    for i, root in enumerate(tqdm(roots, desc="datasets", disable=not progress)):
        root = Path(root)
        if Dataset(root).meta.silent:
            raise DatasetError(f"{root / 'meta.json'} marks the recording silent: it has no speech to learn from; "
                               "leave it out of `syncanim universal` (calibrate an avatar from it instead)")
        data = load_motion_data(root, settings, names, copies, seed + i)
        frames = training_frames(data.valid, data.val_start)
        stats.append(range_stats(data.pose[frames], data.expr[frames], pose_floor, width_floor, names))
        pose, expr = normalise(data.pose, data.expr, stats[-1])
        parts.append(replace(data, pose=pose, expr=expr))
        segments.append(Segment(root, start, start + data.val_start, start + len(pose)))
        if data.blink_threshold <= 1.0:  # above 1: no clear blinks, its intervals are only a default
            intervals.append(data.intervals)
        start += len(pose) + gap_frames(data)
    if not intervals:
        intervals = [parts[0].intervals]
    return PooledData(_concatenate(parts), segments, stats, np.concatenate(intervals).astype(np.float32))


def gap_frames(data: MotionData) -> int:
    """Frames of silence after a dataset so its last window's rows P*(T-1) .. P*(T-1) + W - 1 fit in P*(T + gap)."""
    return math.ceil((data.spec.window_frames - data.stride) / data.stride)


def _concatenate(parts: list[MotionData]) -> MotionData:
    """MotionData end to end, each followed by gap_frames of silence (repeated edge values for the per-frame data)."""
    first = parts[0]
    features, per_frame = [], {k: [] for k in ("pose", "expr", "elapsed", "interval", "valid", "speech")}
    for data in parts:
        gap = gap_frames(data)
        rows = data.stride * (len(data.pose) + gap)
        pad = np.broadcast_to(data.silence, (len(data.features), rows - data.features.shape[1], data.silence.shape[0]))
        features.append(np.concatenate([data.features, pad], 1))
        for key, values in per_frame.items():
            value = getattr(data, key)
            filler = np.zeros_like(value[:1]) if value.dtype == bool else value[-1:]
            values.append(np.concatenate([value, np.repeat(filler, gap, 0)]))
    joined = {k: np.concatenate(v) for k, v in per_frame.items()}
    return replace(first, features=np.concatenate(features, 1), val_start=0,
                   intervals=np.concatenate([d.intervals for d in parts]), **joined)


def train_starts(pooled: PooledData, frames: int) -> np.ndarray:
    """Start frames of `frames`-frame training sequences (2 frames of history first), each inside one dataset's
    training frames."""
    valid = pooled.data.valid
    return np.concatenate([sequence_starts(valid, s.start + 2, s.val_start - frames + 1, frames)
                           for s in pooled.segments]).astype(np.int64)


def validation_starts(pooled: PooledData, frames: int, per_dataset: int = 16) -> np.ndarray:
    """Start frames of held-out sequences: up to `per_dataset` in each dataset's own tail."""
    starts = [np.arange(s.val_start + 2, s.end - frames + 1, max(frames // 2, 1))[:per_dataset]
              for s in pooled.segments]
    return np.concatenate(starts).astype(np.int64)


def pooled_training_frames(pooled: PooledData) -> np.ndarray:
    """Every training frame at least 2 frames into its dataset (for statistics that read two frames of history)."""
    return np.concatenate([np.arange(s.start + 2, s.val_start) for s in pooled.segments])
