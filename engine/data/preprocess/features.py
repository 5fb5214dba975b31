"""Speech features cached with the dataset: the default extractor's frames and per-video-frame windows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.audio.features import HOP, WIN, feature_spec, make_extractor
from engine.audio.settings import AudioSettings
from engine.audio.streaming import offline_frames, offline_windows
from engine.data.dataset import save_npz_atomic


def feature_settings():
    """The engine's default AudioSettings (its extractor is what the dataset caches)."""
    return AudioSettings()


def extract_features(audio: np.ndarray, frames: int, fps: float) -> dict[str, np.ndarray]:
    """Audio [N] at 16 kHz for `frames` video frames -> arrays for features/<id>.npz.

    frames [J, D]            50 Hz feature frames exactly as the streaming engine computes them
    windows [frames, W, D]   the window the engine hands the motion models at each video frame (audio past the end
                             counts as silence, so the last frames have windows too)
    spec                     JSON of the FeatureSpec (extractor id, params, window and look-ahead) models check
    """
    settings = feature_settings()
    extractor = make_extractor(settings)
    feature_frames = offline_frames(extractor, audio, gate=settings.gate)
    tail = np.zeros((settings.lookahead_frames + 2 * extractor.block_frames + extractor.right_frames) * HOP + WIN,
                    np.float32)
    windows = offline_windows(extractor, np.concatenate([audio, tail]), settings.window_frames,
                              settings.lookahead_frames, fps, gate=settings.gate)[:frames]
    if len(windows) < frames:
        raise RuntimeError(f"feature windows cover {len(windows)} of {frames} frames; the silence tail is too short")
    spec = feature_spec(settings, extractor).to_dict()
    spec["video_fps"] = fps
    return {"frames": feature_frames.astype(np.float32), "windows": windows.astype(np.float32),
            "spec": np.array(json.dumps(spec, sort_keys=True)), "extractor": np.array(extractor.id),
            "params": np.array(json.dumps(extractor.params(), sort_keys=True))}


def default_extractor_id() -> str:
    return feature_settings().extractor


def write_features(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(path, **arrays)
