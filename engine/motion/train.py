"""train_motion: fit both syncers on a dataset with rollouts that feed the models their own outputs; resumable."""
from __future__ import annotations

import json
import logging
import platform
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.motion.blocks import kl_to_standard, reparameterize
from engine.motion.calibration import load_calibrated, read_universal
from engine.motion.config import BLINK_CHANNELS, SyncerDims, SyncerTraining, TrainMotionConfig
from engine.motion.data import MotionData, load_motion_data, sequence_starts
from engine.motion.emotion_syncer import AudioEmotionSyncer, time_inputs
from engine.motion.normalization import FeatureNorm, fit_stats
from engine.motion.pooled import blink_peaks, training_frames
from engine.motion.pose_syncer import POSE_NAMES, AudioPoseSyncer
from engine.motion.runtime import (
    KIND, POSE_CLAMP, VERSION, MotionRuntime, build_syncers, focus_positions, motion_path,
)
from engine.training_loop import Saved, TrainingLoop, start_run

log = logging.getLogger(__name__)
MIN_SPEECH_AGREEMENT = 0.8
"""Least share of training frames on which the speech level must agree with the energy VAD to drive breathing."""


class Tensors:
    """The dataset on the training device: feature frames [C, J, D] of C audio versions, z-scored pose [T, 6],
    expr [T, K], time [T, 2]."""

    def __init__(self, data: MotionData, pose: AudioPoseSyncer, emotion: AudioEmotionSyncer, device: torch.device):
        with torch.no_grad():
            self.features = torch.from_numpy(data.features).to(device)
            self.versions = len(self.features)
            self.offsets = torch.arange(data.spec.window_frames, device=device)
            self.stride = data.stride
            self.pose = pose.pose_norm(torch.from_numpy(data.pose).to(device))
            self.expr = emotion.expr_norm(torch.from_numpy(data.expr).to(device))
            elapsed, interval = torch.from_numpy(data.elapsed), torch.from_numpy(data.interval)
            self.time = time_inputs(elapsed, interval, data.fps).to(device)

    def window(self, frames: torch.Tensor, versions: torch.Tensor | None = None) -> torch.Tensor:
        """Video frames [N] -> their streaming feature windows [N, W, D] in audio versions [N] (default: the
        recording)."""
        rows = self.stride * frames[:, None] + self.offsets
        if versions is None:
            return self.features[0][rows]
        return self.features[versions[:, None], rows]

    def sequence_windows(self, frames: torch.Tensor, versions: torch.Tensor) -> torch.Tensor:
        """Frames [B, L] of B sequences, each in one audio version [B] -> windows [B * L, W, D]."""
        return self.window(frames.flatten(), versions.repeat_interleave(frames.shape[1]))


def fit_normalisation(data: MotionData, pose: AudioPoseSyncer, emotion: AudioEmotionSyncer,
                      feature_rows: np.ndarray | slice | None = None,
                      frames: np.ndarray | slice | None = None) -> dict[str, Any]:
    """Fit both syncers' input and output normalisation on the training frames (default: those before val_start)
    and their recordings' feature rows; returns the stats for the checkpoint's metadata."""
    frames = slice(0, data.val_start) if frames is None else frames
    feature_rows = slice(0, data.stride * data.val_start) if feature_rows is None else feature_rows
    feature_mean, feature_std = fit_stats(data.features[0, feature_rows])
    pose_mean, pose_std = fit_stats(data.pose[frames])
    expr_mean, expr_std = fit_stats(data.expr[frames], floor=0.02)
    for model in (pose, emotion):
        model.features.z.set(feature_mean, feature_std)
        model.features.silence.copy_(torch.from_numpy(data.silence))
    pose.pose_norm.set(pose_mean, pose_std)
    emotion.expr_norm.set(expr_mean, expr_std)
    return {"features": pose.features.z.stats(), "silence": data.silence.tolist(),
            "pose": pose.pose_norm.stats(), "blendshapes": emotion.expr_norm.stats()}


def speech_level_threshold(data: MotionData, norm: FeatureNorm, frames: np.ndarray | None = None) -> dict[str, Any]:
    """Where this model's `speech_level` tells speech from pauses, by the recording's energy VAD on the training
    frames: half-way between their typical pause and speech levels, and how often that cut agrees with the VAD.
    Mel features of a gated pause sit at silence's; Whisper's carry a second of context into it, so the cut differs
    by feature kind. threshold None: the cut agrees on less than MIN_SPEECH_AGREEMENT of the frames (or the
    recording has no pauses), and the avatar breathes at rest. `frames` [N]: which frames (default the training
    frames 0 .. val_start)."""
    frames = np.arange(data.val_start) if frames is None else np.asarray(frames)
    rows = data.stride * frames[:, None] + np.asarray(focus_positions(data.spec))[None]
    with torch.no_grad():
        level = norm.speech_level(torch.from_numpy(data.features[0][rows].mean(1))).numpy()
    speech = data.speech[frames]
    if speech.all() or not speech.any():
        return {"threshold": None, "agreement": None}
    # Half-way between the typical pause and the typical speech frame, not the cut that agrees best: gated mel pauses
    # sit exactly at 0, and a cut just above it would take a pause with a little noise left for speech.
    cut = 0.5 * float(np.median(level[speech]) + np.median(level[~speech]))
    agreement = float(((level > cut) == speech).mean())
    return {"threshold": cut if agreement >= MIN_SPEECH_AGREEMENT else None, "agreement": agreement}


def model_metadata(config: SyncerTraining, data: MotionData, normalisation: dict[str, Any]) -> dict[str, Any]:
    """What every motion checkpoint records of its features, names, sizes, normalisation and versions (the kind,
    blinks, reference and training sections are each trainer's own)."""
    spec = data.spec
    return {
        "version": VERSION, "features": spec.to_dict(), "lookahead_frames": spec.lookahead_frames,
        "lookahead_ms": 1000.0 * spec.lookahead_frames * spec.hop / spec.sample_rate,
        "blendshape_names": list(data.names), "pose_names": list(POSE_NAMES), "dims": asdict(config.dims),
        "normalisation": normalisation, "fps": data.fps, "pose_smoothing": config.pose_smoothing,
        "versions": {"motion": VERSION, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }


def _metadata(config: TrainMotionConfig, data: MotionData, normalisation: dict[str, Any]) -> dict[str, Any]:
    ref = min(max(config.reference_frame, 0), len(data.pose) - 1)
    return {
        "kind": KIND, **model_metadata(config, data, normalisation),
        "blink": {"channels": list(BLINK_CHANNELS), "threshold": data.blink_threshold,
                  "intervals_frames": data.intervals.tolist(),
                  "peak": blink_peaks(data.expr[training_frames(data.valid, data.val_start)], data.names)},
        "reference": {"frame": ref, "euler_deg": data.pose[ref, :3].tolist(), "trans": data.pose[ref, 3:].tolist(),
                      "blendshapes": data.expr[ref].tolist()},
        "training": {"data": str(config.data), "config": json.loads(json.dumps(asdict(config), default=str))},
    }


def rollout(pose: AudioPoseSyncer, emotion: AudioEmotionSyncer, data: Tensors, starts: torch.Tensor, frames: int,
            p_own: float, zero_shot: torch.Tensor, config: SyncerTraining,
            versions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Roll both syncers over `frames` frames from each start [B] (>= 2), hearing audio versions [B] (default: the
    recording); return the mean losses.

    Each step is fed, per sequence, either the truth or the model's own previous output (probability p_own),
    plus noise; zero-shot rows [B] bool start from Gaussian noise instead of the true previous frames.
    """
    idx = starts[:, None] + torch.arange(-2, frames, device=starts.device)  # [B, 2 + L]
    b = len(starts)
    if versions is None:
        versions = torch.zeros(b, dtype=torch.long, device=starts.device)
    windows = data.sequence_windows(idx[:, 2:], versions)  # [B * L, W, D]
    a_pose = pose.encode_audio(windows).unflatten(0, (b, frames))
    g_a, a_seq = (t.unflatten(0, (b, frames)) for t in emotion.encode_audio(windows))
    time = emotion.encode_time(data.time[idx[:, 2:]].flatten(0, 1)).unflatten(0, (b, frames))
    totals = {"pose_l1": 0.0, "pose_kl": 0.0, "pose_kl_cost": 0.0, "expr_l1": 0.0, "expr_kl": 0.0, "expr_kl_cost": 0.0}
    histories = {}
    for name, truth in (("pose", data.pose[idx]), ("expr", data.expr[idx])):
        noise = torch.randn_like(truth[:, 0])
        start = [torch.where(zero_shot[:, None], noise, truth[:, i]) for i in (0, 1)]
        histories[name] = (truth, start)
    (pose_truth, (p2, p1)), (expr_truth, (e2, e1)) = histories["pose"], histories["expr"]
    for t in range(frames):
        p_state = _noisy_state(p1, p2, config.state_noise)
        e_state = _noisy_state(e1, e2, config.state_noise)
        p_target, e_target = pose_truth[:, t + 2], expr_truth[:, t + 2]
        mu, logvar = pose.posterior(p_target, p_state, a_pose[:, t])
        p_out = pose(a_pose[:, t], p_state, reparameterize(mu, logvar))
        totals["pose_l1"] = totals["pose_l1"] + (p_out - p_target).abs().mean()
        totals["pose_kl"] = totals["pose_kl"] + kl_to_standard(mu, logvar)
        totals["pose_kl_cost"] = totals["pose_kl_cost"] + kl_to_standard(mu, logvar, config.kl_free_bits)
        mu, logvar = emotion.posterior(e_target, e_state, time[:, t], a_seq[:, t])
        e_out = emotion(g_a[:, t], a_seq[:, t], time[:, t], e_state, reparameterize(mu, logvar))
        totals["expr_l1"] = totals["expr_l1"] + (e_out - e_target).abs().mean()
        totals["expr_kl"] = totals["expr_kl"] + kl_to_standard(mu, logvar)
        totals["expr_kl_cost"] = totals["expr_kl_cost"] + kl_to_standard(mu, logvar, config.kl_free_bits)
        own = (torch.rand(b, 1, device=starts.device) < p_own)
        p2, p1 = p1, torch.where(own, p_out.detach(), p_target)
        e2, e1 = e1, torch.where(own, e_out.detach(), e_target)
    losses = {k: v / frames for k, v in totals.items()}
    losses["total"] = (config.reg_weight * (losses["pose_l1"] + losses["expr_l1"])
                       + config.kl_weight * (losses["pose_kl_cost"] + losses["expr_kl_cost"]))
    return losses


def motion_statistics(pose: AudioPoseSyncer, data: Tensors, starts: torch.Tensor, versions: torch.Tensor,
                      zero_shot: torch.Tensor, frames: int, rho: torch.Tensor) -> torch.Tensor:
    """The motion-statistics loss: free-running pose rollouts of `frames` frames from starts [B], run as the engine
    runs them (own outputs fed back, no state noise, latents an AR(1) process with coefficients rho [latent] and
    N(0, I) marginals), must match the truth's std, mean absolute speed and mean level over each rollout, per channel.

    Zero-shot rows [B] start from Gaussian noise, so a slow escape from a random start costs here too.
    """
    idx = starts[:, None] + torch.arange(-2, frames, device=starts.device)
    b = len(starts)
    audio = pose.encode_audio(data.sequence_windows(idx[:, 2:], versions)).unflatten(0, (b, frames))
    truth = data.pose[idx]
    noise = torch.randn_like(truth[:, 0])
    before, previous = (torch.where(zero_shot[:, None], noise, truth[:, i]) for i in (0, 1))
    z = torch.randn(b, pose.latent, device=starts.device)
    keep, fresh = rho, (1.0 - rho.square()).sqrt()
    outputs = []
    for t in range(frames):
        if t:
            z = keep * z + fresh * torch.randn_like(z)
        out = pose(audio[:, t], torch.cat([previous, previous - before], -1), z).clamp(-POSE_CLAMP, POSE_CLAMP)
        outputs.append(out)
        before, previous = previous, out
    rolled, target = torch.stack(outputs, 1), truth[:, 2:]
    spread = (rolled.std(1) - target.std(1)).abs().mean()
    speed = (rolled.diff(dim=1).abs().mean(1) - target.diff(dim=1).abs().mean(1)).abs().mean()
    # A steady ramp has a std too; the mean level keeps a rollout from buying its spread by drifting away.
    level = (rolled.mean(1) - target.mean(1)).abs().mean()
    return spread + speed + level


def _noisy_state(previous: torch.Tensor, before: torch.Tensor, noise: float) -> torch.Tensor:
    """Eq. 4's input: the previous frame (and its velocity) plus Gaussian noise, [B, 2C]."""
    state = torch.cat([previous, previous - before], -1)
    return state + noise * torch.randn_like(state) if noise > 0 else state


def _device(config: SyncerTraining) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _starts(candidates: torch.Tensor, count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """`count` start frames drawn from candidates [M]."""
    return candidates[torch.randint(0, len(candidates), (count,), generator=generator)].to(device)


def _validate(pose, emotion, tensors: Tensors, data: MotionData, config: SyncerTraining,
              device: torch.device) -> dict[str, float]:
    """Losses on the held-out frames: one-step ("tf_", fed the truth) and rolled out like training's end ("")."""
    frames = min(config.sequence_frames, len(data.pose) - data.val_start - 2)
    if frames < 2:
        return {}
    starts = torch.arange(data.val_start + 2, len(data.pose) - frames + 1, max(frames // 2, 1), device=device)[:64]
    return validate_starts(pose, emotion, tensors, starts, frames, config)


def validate_starts(pose, emotion, tensors: Tensors, starts: torch.Tensor, frames: int,
                    config: SyncerTraining) -> dict[str, float]:
    """Losses of `frames`-frame rollouts from held-out starts [B]: one-step ("tf_") and like training's end ("")."""
    pose.eval(), emotion.eval()
    out: dict[str, float] = {}
    # Training's noise goes on afterwards where it was, on a GPU too (reseeding its generator here restarted the
    # training noise from the same point after every validation).
    cuda = [starts.device] if starts.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        for prefix, p_own in (("tf_", 0.0), ("", config.scheduled_sampling)):
            torch.manual_seed(1234)  # the same noise every validation, so the curve shows the model, not the dice
            with torch.no_grad():
                losses = rollout(pose, emotion, tensors, starts, frames, p_own,
                                 torch.zeros(len(starts), dtype=torch.bool, device=starts.device), config)
            out.update({prefix + k: float(v) for k, v in losses.items()})
    pose.train(), emotion.train()
    return out


def train_motion(config: TrainMotionConfig) -> Path:
    """Train both syncers on config.data and write AVATAR_DIR/motion.safetensors (returned). Progress on a bar,
    losses in AVATAR_DIR/motion_log.jsonl, resumable state in AVATAR_DIR/.motion-train/. With config.init_from, the
    syncers start from that universal model, calibrated to this dataset's ranges (engine/motion/calibration.py)."""
    universal = None
    if config.init_from is not None:
        universal = read_universal(Path(config.init_from))
        meta = universal[1]
        config = replace(config, dims=SyncerDims(**meta["dims"]), blendshapes=tuple(meta["blendshape_names"]))
    start_run(config)
    device = _device(config)
    data = load_motion_data(Path(config.data), config.audio, tuple(config.blendshapes), config.audio_copies,
                            config.seed)
    pose, emotion = build_syncers(data.spec, config.dims, data.names, config.state_dropout)
    normalisation = fit_normalisation(data, pose, emotion)
    if universal is not None:
        normalisation = load_calibrated(pose, emotion, *universal, data, Path(config.init_from), data.spec)
    metadata = _metadata(config, data, normalisation)
    metadata["speech_level"] = speech_level_threshold(data, pose.features)
    pose.to(device), emotion.to(device)
    tensors = Tensors(data, pose, emotion, device)
    frames = config.sequence_frames
    candidates = torch.from_numpy(sequence_starts(data.valid, 2, data.val_start - frames + 1, frames))
    if len(candidates) == 0:
        raise ValueError(f"{config.data} is too short to train on: {data.val_start} training frames, but sequences "
                         f"need {frames + 2}; use a longer video or a smaller --sequence-frames")
    stats_frames = config.motion_stats_frames  # none on a clip shorter than one rollout: the loss is skipped
    stats_candidates = torch.from_numpy(sequence_starts(data.valid, 2, data.val_start - stats_frames + 1, stats_frames))
    fingerprint = {"features": metadata["features"], "names": metadata["blendshape_names"],
                   "dims": metadata["dims"], "frames": len(data.pose), "data": str(config.data),
                   "init_from": str(config.init_from)}
    step, val = optimise(pose, emotion, tensors, config, Path(config.avatar_dir), fingerprint,
                         (candidates, stats_candidates), np.arange(2, data.val_start),
                         lambda: _validate(pose, emotion, tensors, data, config, device))
    metadata["training"].update({"steps": step, "val": val})
    metadata["latent_rho"] = latent_autocorrelation(pose, emotion, tensors, data)
    runtime = MotionRuntime(pose.cpu(), emotion.cpu(), metadata)
    return runtime.save(motion_path(Path(config.avatar_dir)))


def optimise(pose: AudioPoseSyncer, emotion: AudioEmotionSyncer, tensors: Tensors, config: SyncerTraining,
             out_dir: Path, fingerprint: dict[str, Any], candidates: tuple[torch.Tensor, torch.Tensor],
             train_frames: np.ndarray, validate: Callable[[], dict[str, float]]) -> tuple[int, dict[str, float]]:
    """The training both motion trainers share: AdamW on rollouts from start frames candidates[0] (and statistics
    rollouts from candidates[1]), validated by `validate()`, logged to OUT_DIR/motion_log.jsonl, resumable from
    OUT_DIR/.motion-train/; `train_frames` [N] (each >= 2 frames into its own recording) give the latents' AR(1)
    coefficients. Returns (steps done, last validation losses)."""
    generator = torch.Generator().manual_seed(config.seed)
    loop = TrainingLoop(config, out_dir, "motion", {"fingerprint": fingerprint},
                        {"pose": pose, "emotion": emotion}, {"batches": generator})
    syncers = _Syncers(loop, pose, emotion, tensors, config, candidates, train_frames, validate, generator)
    saved = loop.resume()
    first = 0 if saved is None else saved.step
    if saved is not None:
        saved.load_optimizer(syncers.optimizer)
        syncers.restore(saved)
    if first == 0:  # the untrained baseline ("hold the previous frame"), so the log shows what training bought
        loop.log(syncers.validate(0))
    elif first < config.steps and loop.clock() > loop.end:
        log.warning("motion training stopped at step %d of %d before: its time limit of %.0f s is spent", first,
                    config.steps, config.time_limit_s)
        return first, syncers.val
    return loop.run(syncers, first, loop.end), syncers.val


class _Syncers:
    """Both syncers' craft for the training loop: a step of rollouts (and of the statistics loss once it has
    begun), validation, and what the state keeps beyond weights, AdamW and random states."""

    name = "motion"
    validates_when_stopped = True  # the model written at a stop carries the validation of its own weights

    def __init__(self, loop: TrainingLoop, pose: AudioPoseSyncer, emotion: AudioEmotionSyncer, tensors: Tensors,
                 config: SyncerTraining, candidates: tuple[torch.Tensor, torch.Tensor], train_frames: np.ndarray,
                 validate: Callable[[], dict[str, float]], generator: torch.Generator) -> None:
        self.loop, self.pose, self.emotion, self.tensors, self.config = loop, pose, emotion, tensors, config
        self.candidates, self.stats_candidates = candidates
        self.train_frames, self.measure, self.generator = train_frames, validate, generator
        self.params = list(pose.parameters()) + list(emotion.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.total = config.steps
        self.val: dict[str, float] = {}
        """The last validation losses."""
        self.running: dict[str, float] = {}
        """Training losses summed since the last log record, over `since` steps."""
        self.since = 0
        self.stats_rho: torch.Tensor | None = None
        """The pose latents' AR(1) coefficients, once the statistics loss has started (refreshed at validations)."""

    def step(self, step: int) -> dict[str, str]:
        config, tensors, generator = self.config, self.tensors, self.generator
        device = tensors.features.device
        p_own = config.scheduled_sampling * min(1.0, step / max(1.0, 0.5 * config.steps))
        starts = _starts(self.candidates, config.batch_size, generator, device)
        zero_shot = (torch.rand(config.batch_size, generator=generator) < config.zero_shot_fraction).to(device)
        versions = torch.randint(0, tensors.versions, (config.batch_size,), generator=generator).to(device)
        losses = rollout(self.pose, self.emotion, tensors, starts, config.sequence_frames, p_own, zero_shot, config,
                         versions)
        stats_due = step >= config.motion_stats_from * config.steps and config.motion_stats_weight > 0
        if stats_due and len(self.stats_candidates) and (self.stats_rho is None or step % config.val_every == 0):
            self.stats_rho = _pose_rho(self.pose, self.emotion, tensors, self.train_frames, device)
        if self.stats_rho is not None:
            n = config.motion_stats_batch
            losses["pose_stats"] = motion_statistics(
                self.pose, tensors, _starts(self.stats_candidates, n, generator, device),
                torch.randint(0, tensors.versions, (n,), generator=generator).to(device),
                (torch.rand(n, generator=generator) < config.zero_shot_fraction).to(device),
                config.motion_stats_frames, self.stats_rho)
            losses["total"] = losses["total"] + config.motion_stats_weight * losses["pose_stats"]
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.since += 1
        for key, value in losses.items():
            self.running[key] = self.running.get(key, 0.0) + value.item()
        return {"pose": f"{losses['pose_l1'].item():.3f}", "expr": f"{losses['expr_l1'].item():.3f}"}

    def validate(self, done: int) -> dict:
        """One log record: training losses averaged since the previous record, validation losses, seconds so far
        (0 for the untrained baseline)."""
        self.val = self.measure()
        train = {key: value / self.since for key, value in self.running.items()}
        self.running, self.since = {}, 0
        log.info("motion step %d: train %s, val %s", done, train.get("total"), self.val.get("total"))
        return {"step": done, "elapsed_s": round(self.loop.clock(), 2) if done else 0.0, "train": train,
                "val": self.val}

    def state(self, stopped: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {} if self.stats_rho is None else {"stats_rho": self.stats_rho}
        return tensors, {"val": self.val, "running": self.running, "since": self.since}

    def restore(self, saved: Saved) -> None:
        """The validation, running sums and statistics coefficients of a resumed state (where it kept them)."""
        if "stats_rho" in saved.tensors:
            self.stats_rho = saved.tensors["stats_rho"].to(self.tensors.features.device)
        self.val = dict(saved.meta.get("val", {}))
        self.running, self.since = dict(saved.meta.get("running", {})), int(saved.meta.get("since", 0))


def _pose_rho(pose, emotion, tensors: Tensors, frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """The pose latents' AR(1) coefficients the run time would draw with, for the current weights."""
    rho = torch.tensor(latent_autocorrelation(pose, emotion, tensors, None, pose_only=True, frames=frames)["pose"],
                       dtype=torch.float32)
    pose.train(), emotion.train()
    return rho.to(device)


def latent_autocorrelation(pose: AudioPoseSyncer, emotion: AudioEmotionSyncer, data: Tensors,
                           motion: MotionData | None, chunk: int = 512, pose_only: bool = False,
                           frames: np.ndarray | None = None) -> dict[str, list[float]]:
    """Lag-1 autocorrelation [latent] of each syncer's posterior means over the training frames (fed the truth):
    `frames` [N] (each at least 2 frames into its own recording), default motion's frames 2 .. val_start; only the
    pose syncer's with pose_only (what the statistics loss refreshes during training).

    A smooth motion's per-frame innovations are correlated in time, so the latents that encode them are too; the
    run time draws z as an AR(1) process with these coefficients (still N(0, I) per frame, what the KL asks for)
    instead of white noise, which would shake the head frame to frame.
    """
    pose.eval(), emotion.eval()
    means: dict[str, list[torch.Tensor]] = {"pose": []} if pose_only else {"pose": [], "expr": []}
    with torch.no_grad():
        frames = torch.from_numpy(np.arange(2, motion.val_start) if frames is None else np.asarray(frames))
        for first in range(0, len(frames), chunk):
            t = frames[first: first + chunk].to(data.pose.device)
            windows = data.window(t)
            p_state = torch.cat([data.pose[t - 1], data.pose[t - 1] - data.pose[t - 2]], -1)
            means["pose"].append(pose.posterior(data.pose[t], p_state, pose.encode_audio(windows))[0])
            if pose_only:
                continue
            e_state = torch.cat([data.expr[t - 1], data.expr[t - 1] - data.expr[t - 2]], -1)
            _, a_seq = emotion.encode_audio(windows)
            time = emotion.encode_time(data.time[t])
            means["expr"].append(emotion.posterior(data.expr[t], e_state, time, a_seq)[0])
    rho = {}
    for name, parts in means.items():
        mu = torch.cat(parts).double().cpu()
        mu = mu - mu.mean(0)
        r = (mu[1:] * mu[:-1]).sum(0) / mu.square().sum(0).clamp(min=1e-12)
        rho[name] = r.clamp(0.0, 0.98).tolist()
    return rho
