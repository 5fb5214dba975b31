"""MotionRuntime: a trained avatar's two syncers stepped one video frame at a time for a batch of avatars, with each
avatar's memory (own previous outputs, blink phase, RNG) kept in a MotionMemory; plus loading and saving them."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from engine.audio.features import FeatureSpec
from engine.io.checkpoint import load_checkpoint, save_checkpoint
from engine.motion.breathing import Breathing
from engine.motion.config import BLINK_CHANNELS, BLINK_PROFILE, MOTION_FILE, SyncerDims
from engine.motion.emotion_syncer import AudioEmotionSyncer, time_inputs
from engine.motion.pose_syncer import POSE_DIM, POSE_NAMES, AudioPoseSyncer

KIND = "syncanim-motion"
VERSION = 1
POSE_CLAMP = 5.0  # z-score bound of what is fed back: a runaway rollout cannot leave the training range
EXPR_CLAMP = 10.0
MEL_SPEECH_LEVEL = 0.5
"""The speech-level cut of mel models trained before it was calibrated (pauses sit at 0, speech at 1.7-1.9)."""
SETTLE_S = 2.0  # seconds of silence a zero-shot avatar settles through before it is first shown
Mode = Literal["one_shot", "zero_shot"]
BLINK_TIMES, BLINK_SHARES = (np.array(column) for column in zip(*BLINK_PROFILE, strict=True))


@dataclass
class MotionMemory:
    """One avatar's state between frames (data only; MotionRuntime.step advances it)."""

    pose: np.ndarray
    """[2, 6] own previous two pose outputs, z-scored, newest first."""
    expr: np.ndarray
    """[2, K] own previous two expression outputs, z-scored, newest first."""
    blink_elapsed: float
    """Frames since the last blink onset seen in the own output."""
    blink_interval: float
    """Frames the current blink interval lasts (drawn from the training intervals)."""
    blink_value: float
    """Previous frame's blink signal (0..1), to see the next onset."""
    rng: np.random.Generator
    """Draws the latents and blink intervals: the same seed gives the same motion."""
    z_pose: np.ndarray | None = None
    """[latent] the pose latent last drawn (the next one is correlated with it)."""
    z_expr: np.ndarray | None = None
    """[latent] the expression latent last drawn."""
    smoothed_pose: np.ndarray | None = None
    """[6] first stage of the causal pose low-pass, original units."""
    shown_pose: np.ndarray | None = None
    """[6] second stage: the published pose."""
    frames: int = 0
    """Frames stepped so far."""
    breathing: Breathing | None = None
    """The avatar's breathing rhythm (its own random stream, so the motion drawn from `rng` is unchanged)."""
    blink_shown: float | None = None
    """Seconds since the blink being shown began (None: none is), see MotionRuntime.show_blink."""


def motion_path(avatar: str | os.PathLike) -> Path:
    """AVATAR_DIR/motion.safetensors, or the file itself when given one."""
    path = Path(avatar)
    return path if path.suffix == ".safetensors" else path / MOTION_FILE


def shown_blink(peak, gain: float = 1.0) -> np.ndarray:
    """[2] how far each eyelid shuts at a blink the engine shows: the avatar's blink peak [2] times its blink gain
    (engine/eval/blink_gain.py), never past 1."""
    return np.minimum(np.asarray(peak, np.float32) * np.float32(gain), np.float32(1.0))


def focus_positions(spec: FeatureSpec) -> tuple[int, ...]:
    """Indices in the window [W] of the current video frame's own feature frames."""
    per_video = round(50.0 / spec.video_fps)
    end = spec.window_frames - spec.lookahead_frames
    return tuple(i for i in range(end - per_video, end) if 0 <= i < spec.window_frames) or (spec.window_frames - 1,)


def build_syncers(spec: FeatureSpec, dims: SyncerDims, names: tuple[str, ...],
                  state_dropout: float = 0.0) -> tuple[AudioPoseSyncer, AudioEmotionSyncer]:
    focus = focus_positions(spec)
    pose = AudioPoseSyncer(spec.dim, spec.window_frames, focus, dims, state_dropout)
    emotion = AudioEmotionSyncer(spec.dim, spec.window_frames, focus, dims, names, BLINK_CHANNELS, state_dropout)
    return pose, emotion


class MotionRuntime:
    """Both syncers of one avatar, in eval mode, stepped for any number of avatars in one batch."""

    def __init__(self, pose: AudioPoseSyncer, emotion: AudioEmotionSyncer, metadata: dict[str, Any],
                 path: Path | None = None) -> None:
        self.pose = pose.eval()
        self.emotion = emotion.eval()
        self.metadata = metadata
        self.path = path
        self.spec = FeatureSpec.from_dict(metadata["features"])
        self.names: tuple[str, ...] = tuple(metadata["blendshape_names"])
        self.fps = float(self.spec.video_fps)
        blink = metadata["blink"]
        self.blink_threshold = float(blink["threshold"])
        self.intervals = np.asarray(blink["intervals_frames"], np.float64)
        self._blink_channels = [self.names.index(c) for c in BLINK_CHANNELS]
        peak = blink.get("peak")
        self.blink_peak = None if peak is None else shown_blink(peak, blink.get("gain", 1.0))
        """[2] the blink shown per eyelid: the avatar's own full blink (its tracks' blink peaks) times the blink gain
        its renderer needs to show it shut (engine/eval/blink_gain.py; 1 where it was not measured); None (models
        trained before the peak was kept): blinks are shown as the syncer gives them."""
        self.smoothing = float(metadata.get("pose_smoothing", 0.0))
        rho = metadata.get("latent_rho", {})
        self.rho_pose = np.asarray(rho.get("pose", np.zeros(pose.latent)), np.float32)
        self.rho_expr = np.asarray(rho.get("expr", np.zeros(emotion.latent)), np.float32)
        self.forwards = 0
        """Batched forward passes run so far (one per step call)."""
        self._traced: torch.jit.ScriptModule | None = None
        self.threads = 1
        """torch threads a step runs on (0: leave the process setting alone)."""
        self._silence = pose.features.silence.numpy().astype(np.float32)
        self._focus = list(focus_positions(self.spec))
        self.speech_threshold: float | None = metadata.get("speech_level", {}).get(
            "threshold", MEL_SPEECH_LEVEL if self.spec.extractor == "mel" else None)
        """`speech_level` above which a frame is speech, so the avatar breathes out (None: it breathes at rest)."""
        self.settle_frames = round(SETTLE_S * self.fps)
        """Silent frames a zero-shot memory is run through before its first frame (see _settle)."""

    # loading ------------------------------------------------------------------------------------
    @classmethod
    def load(cls, avatar: str | os.PathLike, spec: FeatureSpec | None = None,
             blendshapes: tuple[str, ...] | None = None) -> MotionRuntime:
        """Load AVATAR_DIR/motion.safetensors; refuse it when its features differ from `spec` (the engine's) or its
        blendshapes from `blendshapes` (what the renderer expects)."""
        path = motion_path(avatar)
        expect = {"kind": KIND}
        if blendshapes is not None:
            expect["blendshape_names"] = list(blendshapes)
        tensors, metadata = load_checkpoint(
            path, expect=expect, fix="Re-train the motion stage (`syncanim train DATA -o AVATAR --stage motion`) "
                                     "for this renderer, or load the avatar it was trained for; a universal model "
                                     "(`syncanim universal`) runs once calibrate_universal has mapped it onto an "
                                     "avatar (engine/motion/universal.py).")
        if spec is not None:
            spec.check(metadata["features"], str(path))
        feature_spec = FeatureSpec.from_dict(metadata["features"])
        pose, emotion = build_syncers(feature_spec, SyncerDims(**metadata["dims"]), tuple(metadata["blendshape_names"]))
        pose.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("pose.")})
        emotion.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("emotion.")})
        return cls(pose, emotion, metadata, path)

    def save(self, avatar: str | os.PathLike) -> Path:
        tensors = {f"pose.{k}": v for k, v in self.pose.state_dict().items()}
        tensors.update({f"emotion.{k}": v for k, v in self.emotion.state_dict().items()})
        return save_checkpoint(motion_path(avatar), tensors, self.metadata)

    # memory -------------------------------------------------------------------------------------
    def reference(self, frame: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A one-shot reference as z-scored (pose [6], expression [K]): from `frame` (euler_deg [3], trans [3],
        blendshapes [K] in this model's order) or the model's stored default (its first training frame)."""
        frame = frame or self.metadata["reference"]
        pose = np.concatenate([np.asarray(frame["euler_deg"], np.float32), np.asarray(frame["trans"], np.float32)])
        expr = np.asarray(frame["blendshapes"], np.float32)
        if expr.shape != (len(self.names),) or pose.shape != (POSE_DIM,):
            raise ValueError(f"a one-shot reference needs euler_deg [3], trans [3] and blendshapes [{len(self.names)}] "
                             f"({', '.join(self.names)}); got shapes {pose.shape[0] - 3}+3 and {expr.shape}")
        with torch.no_grad():
            pose_z = self.pose.pose_norm(torch.from_numpy(pose)).numpy()
            expr_z = self.emotion.expr_norm(torch.from_numpy(expr)).numpy()
        return pose_z, expr_z

    def new_memory(self, mode: Mode = "one_shot", seed: int = 0,
                   reference: dict[str, np.ndarray] | None = None) -> MotionMemory:
        """A fresh avatar state: one-shot starts from `reference` (default: the first training frame), zero-shot
        from Gaussian noise of the same dimension, settled on silence (see _settle)."""
        rng = np.random.default_rng(seed)
        if mode == "one_shot":
            pose, expr = self.reference(reference)
        elif mode == "zero_shot":
            pose = rng.standard_normal(POSE_DIM).astype(np.float32)
            expr = rng.standard_normal(len(self.names)).astype(np.float32)
        else:
            raise ValueError(f"motion mode must be 'one_shot' or 'zero_shot', got {mode!r}")
        interval = self._draw_interval(rng)
        memory = MotionMemory(
            pose=np.stack([pose, pose]), expr=np.stack([expr, expr]),
            blink_elapsed=float(rng.uniform(0.0, interval)), blink_interval=interval, blink_value=0.0, rng=rng,
            breathing=Breathing.start(rng.spawn(1)[0], self.fps),
        )
        if mode == "zero_shot":
            self._settle(memory)
        return memory

    def _settle(self, memory: MotionMemory) -> None:
        """Run a zero-shot memory through `settle_frames` frames of silence before its first shown frame.

        Started from noise, the syncers need about a second to leave a random pose (on held-out clips zero-shot's
        first 0.8 s sat 2 degrees from one-shot's, then 0.3); an avatar that waits this long before it is shown
        starts from where the model itself rests. Blink timing and the frame count start afresh afterwards.
        """
        if self.settle_frames <= 0:
            return
        blink = (memory.blink_elapsed, memory.blink_interval)
        silence = np.broadcast_to(self._silence, (1, self.spec.window_frames, self.spec.dim))
        for _ in range(self.settle_frames):
            self._step_on_threads(silence, [memory])
        memory.blink_elapsed, memory.blink_interval = blink
        memory.blink_value, memory.frames, memory.blink_shown = 0.0, 0, None

    def _draw_interval(self, rng: np.random.Generator) -> float:
        return float(rng.choice(self.intervals) * rng.uniform(0.8, 1.2))

    # stepping -----------------------------------------------------------------------------------
    def _net(self) -> torch.jit.ScriptModule:
        """Both syncers' run-time forward as one traced graph: Python dispatch of ~100 small modules, not the maths,
        is what a single frame costs on a CPU."""
        if self._traced is None:
            n, k, latent = 1, len(self.names), (self.pose.latent, self.emotion.latent)
            example = (torch.zeros(n, self.spec.window_frames, self.spec.dim), torch.zeros(n, 2 * POSE_DIM),
                       torch.zeros(n, 2 * k), torch.zeros(n, latent[0]), torch.zeros(n, latent[1]), torch.zeros(n, 2))
            with torch.inference_mode(), warnings.catch_warnings():
                # Deprecated in favour of torch.compile/export, which need a compiler toolchain and seconds to build;
                # tracing these fixed-shape graphs is exact (tests compare it with the eager modules) and instant.
                warnings.simplefilter("ignore")
                self._traced = torch.jit.trace(_StepNet(self.pose, self.emotion), example, check_trace=False)
        return self._traced

    def step(self, windows: np.ndarray, memories: list[MotionMemory]) -> dict[str, np.ndarray]:
        """One video frame for N avatars: windows [N, W, D] raw features (NaN allowed) -> euler_deg [N, 3],
        trans [N, 3], blendshapes [N, K] in original units, breath [N] (-1 breathed out .. 1 in); advances every
        memory.

        Runs on `self.threads` torch threads: these ops are far too small to split, and on a busy CPU waiting for a
        second worker thread cost 5-10x the work itself (measured on the 2-core machine).
        """
        self.forwards += 1
        return self._step_on_threads(windows, memories)

    def _step_on_threads(self, windows: np.ndarray, memories: list[MotionMemory]) -> dict[str, np.ndarray]:
        previous = torch.get_num_threads()
        if self.threads and previous != self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return self._step(windows, memories)
        finally:
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)

    def _step(self, windows: np.ndarray, memories: list[MotionMemory]) -> dict[str, np.ndarray]:
        n = len(memories)
        windows = np.asarray(windows, np.float32).reshape(n, self.spec.window_frames, self.spec.dim)
        x = torch.from_numpy(np.where(np.isfinite(windows), windows, self._silence))
        pose_state = torch.from_numpy(np.stack([_state(m.pose) for m in memories]))
        expr_state = torch.from_numpy(np.stack([_state(m.expr) for m in memories]))
        for m in memories:
            m.z_pose = _ar1(m.z_pose, self.rho_pose, m.rng)
            m.z_expr = _ar1(m.z_expr, self.rho_expr, m.rng)
        z_pose = torch.from_numpy(np.stack([m.z_pose for m in memories]))
        z_expr = torch.from_numpy(np.stack([m.z_expr for m in memories]))
        elapsed = torch.tensor([m.blink_elapsed for m in memories], dtype=torch.float32)
        interval = torch.tensor([m.blink_interval for m in memories], dtype=torch.float32)
        time_raw = time_inputs(elapsed, interval, self.fps)
        pose_z, expr_z, pose, expr = self._net()(x, pose_state, expr_state, z_pose, z_expr, time_raw)
        pose, expr, pose_z, expr_z = pose.numpy(), expr.numpy(), pose_z.numpy(), expr_z.numpy()
        shown = np.empty_like(pose)
        breath = np.zeros(n, np.float32)
        speaking = self.speaking(x)
        for i, memory in enumerate(memories):
            shown[i] = self._advance(memory, pose_z[i], expr_z[i], pose[i], expr[i])
            self.show_blink(memory, expr[i])
            if memory.breathing is not None:
                breath[i] = memory.breathing.step(bool(speaking[i]))
        return {"euler_deg": shown[:, :3].copy(), "trans": shown[:, 3:].copy(), "blendshapes": expr, "breath": breath}

    def show_blink(self, memory: MotionMemory, expr: np.ndarray) -> None:
        """Shut the eyelids of `expr` [K] (in place) as far as the avatar's own blinks do, along BLINK_PROFILE from
        each onset the syncer signals. A syncer hears when a blink is likely, not how deep it is: its blink peaks
        spread over half to all of the avatar's range, and the head renders half a blink as an open eye. What is fed
        back to the syncers stays their own output."""
        if memory.blink_shown is None or self.blink_peak is None:
            return
        share = float(np.interp(memory.blink_shown, BLINK_TIMES, BLINK_SHARES, right=0.0))
        expr[self._blink_channels] = np.maximum(expr[self._blink_channels], share * self.blink_peak)
        memory.blink_shown = memory.blink_shown + 1.0 / self.fps if memory.blink_shown < BLINK_TIMES[-1] else None

    def speaking(self, windows: torch.Tensor) -> np.ndarray:
        """[N] bool: the current frame of each window [N, W, D] (finite) holds speech, by the calibrated cut."""
        if self.speech_threshold is None:
            return np.zeros(windows.shape[0], bool)
        level = self.pose.features.speech_level(windows[:, self._focus].mean(1))
        return level.numpy() > self.speech_threshold

    def _advance(self, memory: MotionMemory, pose_z: np.ndarray, expr_z: np.ndarray, pose: np.ndarray,
                 expr: np.ndarray) -> np.ndarray:
        memory.pose = np.stack([pose_z, memory.pose[0]])
        memory.expr = np.stack([expr_z, memory.expr[0]])
        value = float(expr[self._blink_channels].mean())
        onset = value >= self.blink_threshold > memory.blink_value and memory.frames > 0
        overdue = memory.blink_elapsed > 1.5 * memory.blink_interval
        if onset:
            memory.blink_shown = 0.0
        if onset or overdue:
            memory.blink_elapsed, memory.blink_interval = 1.0, self._draw_interval(memory.rng)
        else:
            memory.blink_elapsed += 1.0
        memory.blink_value = value
        memory.frames += 1
        if memory.shown_pose is None or self.smoothing <= 0.0:
            memory.smoothed_pose, memory.shown_pose = pose.copy(), pose.copy()
        else:
            gain = 1.0 - self.smoothing
            memory.smoothed_pose = memory.smoothed_pose + gain * (pose - memory.smoothed_pose)
            memory.shown_pose = memory.shown_pose + gain * (memory.smoothed_pose - memory.shown_pose)
        return memory.shown_pose


class _StepNet(torch.nn.Module):
    """Run-time forward of both syncers for one frame (z drawn from the prior; outputs clamped before feedback)."""

    def __init__(self, pose: AudioPoseSyncer, emotion: AudioEmotionSyncer) -> None:
        super().__init__()
        self.pose = pose
        self.emotion = emotion

    def forward(self, x: torch.Tensor, pose_state: torch.Tensor, expr_state: torch.Tensor, z_pose: torch.Tensor,
                z_expr: torch.Tensor, time_raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x [N, W, D], states [N, 12] / [N, 2K], latents [N, L], time_raw [N, 2] -> pose_z [N, 6], expr_z [N, K],
        pose [N, 6] and blendshapes [N, K] in original units."""
        pose_z = self.pose(self.pose.encode_audio(x), pose_state, z_pose).clamp(-POSE_CLAMP, POSE_CLAMP)
        g_a, a_seq = self.emotion.encode_audio(x)
        time = self.emotion.encode_time(time_raw)
        expr_z = self.emotion(g_a, a_seq, time, expr_state, z_expr).clamp(-EXPR_CLAMP, EXPR_CLAMP)
        pose = self.pose.pose_norm.inverse(pose_z)
        expr = self.emotion.expr_norm.inverse(expr_z).clamp(0.0, 1.0)
        return pose_z, expr_z, pose, expr


def _ar1(previous: np.ndarray | None, rho: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The next latent [L] of an AR(1) process with N(0, I) marginals: rho * previous + sqrt(1 - rho^2) * noise."""
    noise = rng.standard_normal(len(rho)).astype(np.float32)
    if previous is None:
        return noise
    return (rho * previous + np.sqrt(1.0 - rho * rho) * noise).astype(np.float32)


def _state(history: np.ndarray) -> np.ndarray:
    """[2, C] newest-first history -> state [2C]: previous output and its velocity."""
    return np.concatenate([history[0], history[0] - history[1]]).astype(np.float32)


__all__ = ["KIND", "MotionMemory", "MotionRuntime", "POSE_NAMES", "build_syncers", "focus_positions", "motion_path"]
