"""Calibration of the universal motion model onto one avatar: reading it, and the normalisation that maps its outputs
straight into the avatar's units (used by calibrate_universal and by train_motion's init_from)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.audio.features import FeatureSpec
from engine.io.checkpoint import load_checkpoint
from engine.motion.data import MotionData
from engine.motion.emotion_syncer import AudioEmotionSyncer
from engine.motion.pooled import range_stats, training_frames
from engine.motion.pose_syncer import AudioPoseSyncer
from engine.motion.runtime import motion_path

UNIVERSAL_KIND = "syncanim-universal-motion"


def read_universal(universal_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of UNIVERSAL_DIR/motion.safetensors; refuses any other kind of motion file."""
    return load_checkpoint(motion_path(universal_dir), expect={"kind": UNIVERSAL_KIND},
                           fix="Pass a folder written by `syncanim universal` (an avatar's own motion file is not "
                               "universal).")


def calibrated_norms(universal: dict[str, Any], stats: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The ZScore (mean, std) per part that maps the universal network's z-scores straight into an avatar's units.

    The network's z becomes normalised n = z * std_u + mean_u (the pooled fit), and n becomes the avatar's pose
    median + spread * n and blendshape lo + width * n; one affine map, so one ZScore.
    """
    norm = universal["normalisation"]
    out = {}
    for part, offset, scale in (("pose", "median", "spread"), ("blendshapes", "lo", "width")):
        mean_u, std_u = np.asarray(norm[part]["mean"]), np.asarray(norm[part]["std"])
        a, s = np.asarray(stats[part][offset]), np.asarray(stats[part][scale])
        out[part] = ((a + s * mean_u).astype(np.float32), (s * std_u).astype(np.float32))
    return out


def load_calibrated(pose: AudioPoseSyncer, emotion: AudioEmotionSyncer, tensors: dict[str, torch.Tensor],
                    universal: dict[str, Any], data: MotionData, universal_dir: Path,
                    spec: FeatureSpec) -> dict[str, Any]:
    """Load the universal weights into syncers built for `data` (an avatar's MotionData, in its own units) and set
    their pose / expression normalisation to its ranges; returns the normalisation metadata (train_motion's
    init_from)."""
    spec.check(universal["features"], str(motion_path(universal_dir)))
    pose.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("pose.")})
    emotion.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("emotion.")})
    frames = training_frames(data.valid, data.val_start)
    config = universal["training"]["config"]
    stats = range_stats(data.pose[frames], data.expr[frames], config["pose_spread_floor"],
                        config["blendshape_width_floor"], data.names)
    norms = calibrated_norms(universal, stats)
    pose.pose_norm.set(*norms["pose"])
    emotion.expr_norm.set(*norms["blendshapes"])
    return {"features": pose.features.z.stats(), "silence": pose.features.silence.tolist(),
            "pose": pose.pose_norm.stats(), "blendshapes": emotion.expr_norm.stats(), "avatar_stats": stats}
