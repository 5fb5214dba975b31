"""predict_motion: a whole clip through the streaming path, frame by frame (for eval, tests and tools)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from engine.audio.features import make_extractor, settings_for
from engine.data.dataset import Dataset
from engine.motion.data import speech_windows
from engine.motion.runtime import Mode, MotionRuntime


def clip_windows(runtime: MotionRuntime, audio: np.ndarray, frames: int | None = None) -> np.ndarray:
    """The FeatureRing windows [T, W, D] a live stream of `audio` [N] (16 kHz mono) gives this model's features;
    T = the clip's length in video frames unless `frames` is given."""
    settings = settings_for(runtime.spec)
    if frames is None:
        frames = math.ceil(len(audio) / settings.sample_rate * runtime.fps)
    return speech_windows(make_extractor(settings), audio, frames, settings)


def predict_motion(avatar_dir: str | os.PathLike, audio: np.ndarray | str | os.PathLike, mode: Mode = "one_shot",
                   seed: int = 0, reference: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Pose and expression (upper face, and the mouth for models that drive it) for `audio` (a 16 kHz mono array [N]
    or a file) from the avatar's motion model, run one frame at a time exactly as the engine runs them.

    Returns euler_deg [T, 3], trans [T, 3], blendshapes [T, K], breath [T], blendshape_names [K], time_s [T].
    """
    runtime = MotionRuntime.load(avatar_dir)
    if not isinstance(audio, np.ndarray):
        from engine.audio.sources import decode_file

        audio = decode_file(Path(audio), 16000)
    return run_frames(runtime, clip_windows(runtime, audio), runtime.new_memory(mode, seed, reference))


def run_frames(runtime: MotionRuntime, windows: np.ndarray, memory) -> dict[str, np.ndarray]:
    """Step one avatar through windows [T, W, D]; outputs stacked over T (see predict_motion)."""
    steps = [runtime.step(windows[k:k + 1], [memory]) for k in range(len(windows))]
    out = {key: np.concatenate([s[key] for s in steps]) if steps else np.zeros((0, 3), np.float32)
           for key in ("euler_deg", "trans", "blendshapes", "breath")}
    out["blendshape_names"] = np.array(runtime.names)
    out["time_s"] = np.arange(len(windows)) / runtime.fps
    return out


def dataset_reference(data_dir: str | os.PathLike, frame: int, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A one-shot reference from frame `frame` of a dataset: euler_deg [3], trans [3], blendshapes [K] (`names`)."""
    tracks = Dataset(data_dir).tracks
    if not 0 <= frame < len(tracks):
        raise IndexError(f"reference frame {frame} is outside {data_dir} (frames 0..{len(tracks) - 1}); "
                         "pick one in range")
    return {"euler_deg": tracks.euler_deg[frame].astype(np.float32), "trans": tracks.trans[frame].astype(np.float32),
            "blendshapes": np.array([tracks.blendshape(n)[frame] for n in names], np.float32)}
