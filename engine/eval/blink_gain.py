"""The blink gain: how far past the person's own blink peak an avatar's eyelids are commanded so that its trained head
renders them shut.

How deep a NeRF head renders a closed eye varies from training to training and with the pose (the field blends the
lid over a faint ghost of the iris), and a shallow one reads as an open eye. Commanding eyeBlink past the tracked
peak closes the rendered lid further, smoothly. `syncanim train` measures the gain once both parts of an avatar
exist: it renders training poses with open eyes and with the blink the runtime shows at each of GAINS, reads the eye
aspect ratio (EAR) of every render with MediaPipe, and keeps the smallest gain that renders the eyes shut in the
motion model's blink metadata (MotionRuntime multiplies the blink it shows by it). AVATAR_DIR/val/blinks.png shows
the renders' eyes.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.data.dataset import Dataset, Tracks
from engine.eval.metrics import LEFT_EYE, RIGHT_EYE, eye_aspect_ratio
from engine.motion.config import BLINK_CHANNELS
from engine.motion.pooled import training_frames
from engine.motion.runtime import MotionRuntime, shown_blink

log = logging.getLogger(__name__)

GAINS = (1.0, 1.1, 1.2, 1.3, 1.4)
"""Gains tried, smallest first. Up to 1.4 the rendered lid closes further without visible artefacts on the real
clips' avatars (README: "Blinks")."""
SEEN_RATIO = 0.7
"""The eval counts an eye closed below this share of its open EAR (metrics.ear_thresholds)."""
SHUT_RATIO = 0.5
"""A rendered blink is shut when its EAR is at most this share of the same pose's open eye: below SEEN_RATIO, with a
margin for the poses at which a head renders its blink shallower."""
POSES = 6
"""Training poses rendered: the person's deepest blink frame and POSES - 1 spread over the training frames."""


@dataclass(frozen=True)
class BlinkGain:
    """The measured gain and what chose it."""

    gain: float
    """The gain the runtime applies to the avatar's blink peak (1 where no face was found in the renders)."""
    gains: tuple[float, ...]
    """The gains tried."""
    shut_ratio: tuple[float | None, ...]
    """Per gain: the median over the poses of EAR(blink) / EAR(open eye) (None: no face found at any pose)."""
    frames: tuple[int, ...]
    """The training frames whose pose and expression were rendered."""
    target: float = SHUT_RATIO
    """The ratio at or below which a blink counts as shut."""

    def to_json(self) -> dict:
        return asdict(self)


def choose_gain(shut_ratio: tuple[float | None, ...], gains: tuple[float, ...] = GAINS,
                target: float = SHUT_RATIO) -> float:
    """The smallest gain whose blink renders shut (ratio <= target); where none does, the one that renders it
    deepest; 1 where no render showed a face."""
    measured = [(g, r) for g, r in zip(gains, shut_ratio, strict=True) if r is not None and np.isfinite(r)]
    if not measured:
        return 1.0
    shut = [g for g, r in measured if r <= target]
    return shut[0] if shut else min(measured, key=lambda gr: gr[1])[0]


def pose_frames(tracks: Tracks, val_start: int, count: int = POSES) -> np.ndarray:
    """The training frames rendered: the deepest tracked blink first, then count - 1 spread evenly."""
    frames = training_frames(tracks.valid, val_start)
    blink = np.mean([tracks.blendshape(c)[frames] for c in BLINK_CHANNELS], axis=0)
    spread = frames[np.round(np.linspace(0, len(frames) - 1, count - 1)).astype(int)]
    return np.array([frames[int(np.argmax(blink))], *spread])


def eyelid_rows(tracks: Tracks, val_start: int, peak: np.ndarray) -> list[np.ndarray]:
    """The eyeBlink values [2] rendered: open eyes (the training frames' median), then the blink the runtime shows
    (`peak` [2], the motion model's blink peak per eyelid) at each of GAINS."""
    train = training_frames(tracks.valid, val_start)
    open_eyes = np.median([tracks.blendshape(c)[train] for c in BLINK_CHANNELS], axis=1)
    return [open_eyes, *(shown_blink(peak, gain) for gain in GAINS)]


def blink_images(renderer, tracks: Tracks, frames: np.ndarray, eyelids: list[np.ndarray], size: int) -> np.ndarray:
    """RGB renders [len(eyelids), P, S, S, 3] uint8: each frame's pose and expression with each row's eyelids."""
    from engine.eval.report import to_uint8

    names = tracks.blendshape_names
    channels = [names.index(c) for c in BLINK_CHANNELS]
    rows = []
    for lids in eyelids:
        row = []
        for f in frames:
            expression = tracks.blendshapes[f].copy()
            expression[channels] = lids
            rgba = renderer.render(tracks.euler_deg[f], tracks.trans[f], expression, names, None, size=(size, size),
                                   zoom=1.0)
            row.append(to_uint8(rgba))
        rows.append(row)
    return np.asarray(rows)


def face_landmarks(images: np.ndarray, fps: float) -> np.ndarray:
    """MediaPipe's landmarks [..., 478, 2] in pixels of RGB images [..., S, S, 3] (NaN where it found no face)."""
    from engine.data.preprocess.track import track_frames

    flat = images.reshape(-1, *images.shape[-3:])
    raw = track_frames(enumerate(flat), fps, None)
    points = raw.landmarks[..., :2].astype(np.float64) * np.array([flat.shape[2], flat.shape[1]], np.float64)
    points[~raw.detected] = np.nan
    return points.reshape(*images.shape[:-3], *points.shape[1:])


def shut_ratios(landmarks: np.ndarray) -> tuple[float | None, ...]:
    """Per gain: the median over the poses of EAR(blink) / EAR(open), from landmarks [1 + G, P, 478, 2]."""
    ear = eye_aspect_ratio(landmarks)
    ratios = ear[1:] / ear[:1]
    return tuple(float(np.nanmedian(r)) if np.isfinite(r).any() else None for r in ratios)


def eye_crops(images: np.ndarray, landmarks: np.ndarray) -> list[np.ndarray]:
    """Per pose with a face in its open render: the eyes of every row [1 + G, h, w, 3], cut around the open eyes."""
    crops = []
    for p in range(images.shape[1]):
        eyes = landmarks[0, p, list(RIGHT_EYE + LEFT_EYE)]
        if not np.isfinite(eyes).all():
            continue
        (x0, y0), (x1, y1) = eyes.min(0), eyes.max(0)
        pad = 0.25 * (x1 - x0)
        cy = 0.5 * (y0 + y1)
        side = images.shape[2]
        left, right = int(max(x0 - pad, 0)), int(min(x1 + pad, side))
        top, bottom = int(max(cy - 1.6 * pad, 0)), int(min(cy + 1.6 * pad, side))
        crops.append(images[:, p, top:bottom, left:right])
    return crops


def measure_blink_gain(renderer, tracks: Tracks, frames: np.ndarray, eyelids: list[np.ndarray], size: int,
                       fps: float, figure: Path | None = None) -> BlinkGain:
    """Render `frames` of `tracks` with each of `eyelids` (eyelid_rows) at `size` pixels, read their eyes with
    MediaPipe and choose the gain; `figure`: where to draw the renders' eyes (not drawn where no face was found)."""
    images = blink_images(renderer, tracks, frames, eyelids, size)
    landmarks = face_landmarks(images, fps)
    ratios = shut_ratios(landmarks)
    result = BlinkGain(choose_gain(ratios), GAINS, ratios, tuple(int(f) for f in frames))
    crops = eye_crops(images, landmarks)
    if figure is not None and crops:
        from engine.eval.plots import plot_blink_gain

        plot_blink_gain(figure, crops, result)
    return result


def calibrate_blinks(data: Path, avatar: Path, device: str) -> BlinkGain | None:
    """Measure AVATAR_DIR's blink gain on DATA and keep it in its motion model's blink metadata (the checkpoint is
    rewritten atomically); None for a motion model older than its blink peak (it shows the syncer's blinks)."""
    from engine.nerf.kernels.runtime import init_taichi
    from engine.nerf.render import AvatarRenderer

    runtime = MotionRuntime.load(avatar)
    blink = runtime.metadata["blink"]
    if blink.get("peak") is None:
        log.info("%s: the motion model keeps no blink peak (trained before it was kept): no blink gain to measure",
                 runtime.path)
        return None
    init_taichi(device)
    dataset = Dataset(data)
    tracks, val_start = dataset.tracks, dataset.meta.val_start
    eyelids = eyelid_rows(tracks, val_start, np.asarray(blink["peak"], np.float64))
    result = measure_blink_gain(AvatarRenderer.load(avatar, device), tracks, pose_frames(tracks, val_start), eyelids,
                                dataset.meta.size, dataset.meta.fps, Path(avatar) / "val" / "blinks.png")
    log_blink_gain(result, avatar, data)
    blink.update(gain=result.gain, gain_check=result.to_json())
    runtime.save(avatar)
    return result


def log_blink_gain(result: BlinkGain, avatar: Path, data: Path) -> None:
    """Say what was measured; warn where no face was found or the blink will not show even at the largest gain."""
    measured = [(g, r) for g, r in zip(result.gains, result.shut_ratio) if r is not None]
    if not measured:
        log.warning("blink gain: MediaPipe found no face in %s's renders of %s; its blinks are shown at gain 1",
                    avatar, data)
        return
    log.info("blink gain %.1f (rendered EAR shut / open, median over %d poses: %s; shut at <= %.2f)", result.gain,
             len(result.frames), ", ".join(f"x{g:.1f}: {r:.2f}" for g, r in measured), result.target)
    deepest = min(r for _, r in measured)
    if deepest > SEEN_RATIO:
        log.warning("%s renders its blink at %.2f of the open eye's EAR at best (seen closed below %.2f): most blinks "
                    "it is driven to will not show. How deep a training renders the blink varies from training to "
                    "training: `syncanim train` with another --seed may show them (see %s)",
                    avatar, deepest, SEEN_RATIO, Path(avatar) / "val" / "blinks.png")
