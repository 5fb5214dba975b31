"""The universal motion model: train_universal on many presenters, calibrate_universal onto one avatar's ranges.

Each presenter's pose and blendshapes are normalised by their own ranges before pooling (pooled.py), so the model
learns how motion follows speech, not any one person's amplitude. An avatar maps the normalised outputs back onto
its own ranges; since both maps are affine, calibration only rewrites the ZScore buffers the run time already
inverts through (pose_norm, expr_norm): the calibrated file is an ordinary motion.safetensors.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.audio.features import FeatureSpec
from engine.data.dataset import Dataset, DatasetError
from engine.io.checkpoint import file_sha256, save_checkpoint
from engine.motion.calibration import UNIVERSAL_KIND, calibrated_norms, read_universal
from engine.motion.config import BLINK_CHANNELS, SyncerDims, TrainUniversalConfig, UniversalOptions, universal_preset
from engine.motion.data import blink_onsets, blink_signal, blink_threshold, blink_timing
from engine.motion.emotion_syncer import AudioEmotionSyncer
from engine.motion.pooled import (
    PooledData, load_pooled, pooled_training_frames, range_stats, train_starts, training_frames, validation_starts,
)
from engine.motion.pose_syncer import AudioPoseSyncer
from engine.motion.runtime import KIND, MotionRuntime, build_syncers, motion_path
from engine.motion.train import (
    Tensors, _device, fit_normalisation, latent_autocorrelation, model_metadata, optimise, speech_level_threshold,
    validate_starts,
)
from engine.training_loop import start_run

MIN_OWN_BLINKS = 5
"""Blinks an avatar's training frames must show before its own intervals replace the universal model's."""


def train_universal(config: TrainUniversalConfig) -> Path:
    """Train both syncers on every dataset in config.data and write UNIVERSAL_DIR/motion.safetensors (returned);
    progress on a bar, losses in UNIVERSAL_DIR/motion_log.jsonl, resumable state in UNIVERSAL_DIR/.motion-train/."""
    start_run(config)
    device = _device(config)
    pooled = load_pooled(tuple(config.data), config.audio, tuple(config.blendshapes), config.audio_copies,
                         config.seed, config.pose_spread_floor, config.blendshape_width_floor, config.progress)
    data = pooled.data
    pose, emotion = build_syncers(data.spec, config.dims, data.names, config.state_dropout)
    train = pooled_training_frames(pooled)
    normalisation = _fit_pooled(pooled, train, pose, emotion)
    metadata = _metadata(config, pooled, normalisation)
    metadata["speech_level"] = speech_level_threshold(data, pose.features, train)
    pose.to(device), emotion.to(device)
    tensors = Tensors(data, pose, emotion, device)
    frames = config.sequence_frames
    candidates = torch.from_numpy(train_starts(pooled, frames))
    if len(candidates) == 0:
        raise ValueError(f"the datasets {[str(d) for d in config.data]} are too short to train on: sequences need "
                         f"{frames + 2} training frames in one dataset; add longer ones or lower --sequence-frames")
    stats_candidates = torch.from_numpy(train_starts(pooled, config.motion_stats_frames))
    val_frames = min([frames] + [s.end - s.val_start - 2 for s in pooled.segments])
    val_starts = torch.from_numpy(validation_starts(pooled, val_frames)).to(device)

    def validate() -> dict[str, float]:
        return validate_starts(pose, emotion, tensors, val_starts, val_frames, config) if val_frames >= 2 else {}

    fingerprint = {"features": metadata["features"], "names": metadata["blendshape_names"],
                   "dims": metadata["dims"], "frames": len(data.pose), "data": [str(d) for d in config.data]}
    step, val = optimise(pose, emotion, tensors, config, Path(config.universal_dir), fingerprint,
                         (candidates, stats_candidates), train, validate)
    metadata["training"].update({"steps": step, "val": val})
    metadata["latent_rho"] = latent_autocorrelation(pose, emotion, tensors, None, frames=train)
    return save_checkpoint(motion_path(Path(config.universal_dir)), _tensors(pose.cpu(), emotion.cpu()), metadata)


def run_universal(options: UniversalOptions) -> Path:
    """`syncanim universal`: the preset, with the time limit overridden when --minutes is given."""
    overrides = {} if options.minutes is None else {"time_limit_s": 60.0 * options.minutes}
    return train_universal(universal_preset(options.preset, options.data, options.universal_dir, **overrides))


def _fit_pooled(pooled: PooledData, train: np.ndarray, pose: AudioPoseSyncer,
                emotion: AudioEmotionSyncer) -> dict[str, Any]:
    """The usual ZScore fit, on the pooled normalised training frames (and their recordings' feature rows)."""
    data = pooled.data
    rows = np.concatenate([np.arange(data.stride * s.start, data.stride * s.val_start) for s in pooled.segments])
    return fit_normalisation(data, pose, emotion, rows, train)


def _metadata(config: TrainUniversalConfig, pooled: PooledData, normalisation: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": UNIVERSAL_KIND, **model_metadata(config, pooled.data, normalisation),
        "blink": {"channels": list(BLINK_CHANNELS), "intervals_frames": pooled.blink_intervals.tolist()},
        "datasets": [{"data": str(s.root), "frames": s.end - s.start, "val_start": s.val_start - s.start,
                      "stats": stats} for s, stats in zip(pooled.segments, pooled.stats)],
        "training": {"data": [str(d) for d in config.data],
                     "config": json.loads(json.dumps(asdict(config), default=str))},
    }


def _tensors(pose: AudioPoseSyncer, emotion: AudioEmotionSyncer) -> dict[str, torch.Tensor]:
    tensors = {f"pose.{k}": v for k, v in pose.state_dict().items()}
    tensors.update({f"emotion.{k}": v for k, v in emotion.state_dict().items()})
    return tensors


def calibrate_universal(universal_dir: Path, data_dir: Path, avatar_dir: Path) -> Path:
    """Write AVATAR_DIR/motion.safetensors: the universal model of UNIVERSAL_DIR with its outputs mapped onto the
    ranges of DATA_DIR's tracked training frames (no audio needed: a silent recording calibrates too). Blinks: the
    avatar's own threshold, and its own intervals when it blinks at least MIN_OWN_BLINKS times, else the universal
    model's. Returns the written path; MotionRuntime.load(avatar_dir) runs it."""
    universal_dir, data_dir = Path(universal_dir), Path(data_dir)
    tensors, universal = read_universal(universal_dir)
    names = tuple(universal["blendshape_names"])
    dataset = Dataset(data_dir)
    tracks, meta = dataset.tracks, dataset.meta
    missing = [n for n in names if n not in tracks.blendshape_names]
    if missing:
        raise DatasetError(f"{data_dir / 'tracks.npz'} has no blendshapes {missing} (the universal model drives "
                           f"{list(names)}); re-run `syncanim preprocess` on the video with this version, which "
                           "tracks every MediaPipe blendshape")
    if abs(meta.fps - universal["fps"]) > 1e-6:
        raise DatasetError(f"{data_dir / 'meta.json'} has fps {meta.fps}, the universal model runs at "
                           f"{universal['fps']}; re-run preprocess at that rate")
    expr = tracks.blendshapes[:, [tracks.blendshape_names.index(n) for n in names]].astype(np.float32)
    pose = np.concatenate([tracks.euler_deg, tracks.trans], 1).astype(np.float32)
    frames = training_frames(tracks.valid, meta.val_start)
    config = universal["training"]["config"]
    stats = range_stats(pose[frames], expr[frames], config["pose_spread_floor"], config["blendshape_width_floor"],
                        names)
    norms = calibrated_norms(universal, stats)
    metadata = _calibrated_metadata(universal, norms, stats, expr, pose, names, meta.val_start, meta.fps)
    metadata["calibration"] = {"universal": {"path": str(motion_path(universal_dir).resolve()),
                                             "sha256": file_sha256(motion_path(universal_dir))},
                               "data": str(data_dir), "avatar_stats": stats}
    spec = FeatureSpec.from_dict(universal["features"])
    pose_net, emotion_net = build_syncers(spec, SyncerDims(**universal["dims"]), names)
    pose_net.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("pose.")})
    emotion_net.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("emotion.")})
    pose_net.pose_norm.set(*norms["pose"])
    emotion_net.expr_norm.set(*norms["blendshapes"])
    return MotionRuntime(pose_net, emotion_net, metadata).save(avatar_dir)


def _calibrated_metadata(universal: dict[str, Any], norms: dict, stats: dict, expr: np.ndarray, pose: np.ndarray,
                         names: tuple[str, ...], val_start: int, fps: float) -> dict[str, Any]:
    """The avatar's motion metadata: the universal model's, with its own normalisation, blinks and reference."""
    signal = blink_signal(expr[:val_start], names)
    threshold = blink_threshold(signal)
    onsets = blink_onsets(signal, threshold)
    own = len(onsets) >= MIN_OWN_BLINKS
    intervals = blink_timing(onsets, val_start, fps)[2] if own else np.asarray(universal["blink"]["intervals_frames"])
    metadata = {k: v for k, v in universal.items() if k not in ("datasets", "training")}
    normalisation = dict(universal["normalisation"])
    normalisation.update({"pose": {"mean": norms["pose"][0].tolist(), "std": norms["pose"][1].tolist()},
                          "blendshapes": {"mean": norms["blendshapes"][0].tolist(),
                                          "std": norms["blendshapes"][1].tolist()}})
    metadata.update({
        "kind": KIND, "blendshape_names": list(names), "normalisation": normalisation,
        "blink": {"channels": list(BLINK_CHANNELS), "threshold": threshold,
                  "intervals_frames": [float(i) for i in intervals], "own_intervals": own, "onsets": len(onsets),
                  "peak": [stats["blendshapes"]["hi"][names.index(c)] for c in BLINK_CHANNELS]},
        "reference": {"frame": 0, "euler_deg": pose[0, :3].tolist(), "trans": pose[0, 3:].tolist(),
                      "blendshapes": expr[0].tolist()},
        "training": {"calibrated_from": "universal", "universal_training": universal["training"]},
    })
    return metadata
