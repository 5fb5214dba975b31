"""TrainMotionConfig, TrainUniversalConfig and their presets: how the AudioPose and AudioEmotion Syncers are trained,
for one avatar or as the universal model (light: no torch here)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Literal

import tyro

from engine.audio.settings import AudioSettings
from engine.training_run import TrainingRun

UPPER_FACE = (
    "eyeBlinkLeft", "eyeBlinkRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight",
)
"""The upper-face ARKit blendshapes the AudioEmotion Syncer predicts by default (the paper's seven)."""

MOUTH = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthShrugLower", "mouthRollLower", "mouthRollUpper",
)
"""MediaPipe's mouth and jaw blendshapes: what the head field reads for the lips, and what the universal
audio-to-expression model predicts for them."""

EXPRESSION = UPPER_FACE + MOUTH
"""Every expression channel an avatar's head is conditioned on and its motion model drives: upper face, then mouth."""

BLINK_CHANNELS = ("eyeBlinkLeft", "eyeBlinkRight")
BLINK_PROFILE = ((0.0, 0.7), (0.04, 1.0), (0.08, 1.0), (0.16, 0.45), (0.28, 0.0))
"""A blink as shown: (seconds since the onset the syncer signalled, share of the avatar's own blink peak). The onset
is seen half-way shut; the eye closes within a frame, stays shut two and opens over the next 200 ms."""
MOTION_FILE = "motion.safetensors"


@dataclass(frozen=True)
class SyncerDims:
    """Sizes of both syncers' networks (stored in the checkpoint, so a model rebuilds itself at load)."""

    hidden: int = 128
    """Width of the MLPs (S, D, fusion and heads)."""
    latent: int = 8
    """Dimension of the (C)VAE latents D_pose and D_exp."""
    audio_channels: int = 32
    """Channels of the U-Net's first level (doubled per level) and of the A_seq conv stack."""
    audio_dim: int = 64
    """Size of the audio embedding the U-Net hands to the fusion MLP."""
    unet_depth: int = 2
    """Down-sampling levels of the temporal U-Net over the feature window."""


@dataclass(frozen=True, kw_only=True)
class SyncerTraining(TrainingRun):
    """How both syncers are optimised, shared by one avatar's training and the universal model's."""

    audio: AudioSettings = field(default_factory=AudioSettings)
    """Speech features the syncers read (extractor, window_frames, lookahead_frames); the engine must run with the
    same ones. Look-ahead is lookahead_frames x 20 ms past the current video frame (default 2 = 40 ms)."""
    dims: SyncerDims = field(default_factory=SyncerDims)
    """Network sizes."""
    steps: int = 2500
    """Optimiser steps."""
    batch_size: int = 32
    """Sequences per step."""
    sequence_frames: int = 32
    """Frames each training sequence is rolled out over (the syncers feed their own outputs back inside it)."""
    lr: float = 1e-3
    """AdamW learning rate (the paper's 1e-3)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    kl_weight: float = 0.02
    """lambda_KL of Eqs. 7 and 12 (the KL is summed over latent dimensions)."""
    kl_free_bits: float = 0.25
    """Nats per latent dimension the KL term leaves unpenalised, so the (C)VAE latents stay in use (at run time
    they are sampled, and a collapsed latent would leave a deterministic regressor that averages blinks away)."""
    reg_weight: float = 1.0
    """lambda_reg of Eqs. 7 and 12 (L1 on z-scored offsets)."""
    state_noise: float = 0.05
    """Std of the Gaussian noise added to the previous frame before S (Eq. 4), in z-score units."""
    state_dropout: float = 0.1
    """Dropout inside the S MLPs."""
    scheduled_sampling: float = 0.5
    """Final probability that a step is fed the model's own previous output instead of the truth (ramped up from 0
    over the first half of training), so run time, where S is always the model's own output, is not a surprise."""
    zero_shot_fraction: float = 0.3
    """Fraction of sequences started from Gaussian noise instead of the true previous frames (zero-shot mode)."""
    reference_frame: int = 0
    """Dataset frame whose pose and expression one-shot mode starts from by default."""
    audio_copies: int = 4
    """Augmented versions of the dataset's audio trained on beside the recording (random gain -18..+6 dB, white,
    pink or brown noise at 5-40 dB SNR in three of four; engine/audio/augment.py), so a live microphone's level and
    room noise do not read as speech. Each training sequence hears one version; validation hears the recording."""
    motion_stats_weight: float = 1.0
    """Weight of the motion-statistics loss: free-running pose rollouts (own feedback, latents from the run-time
    prior) must match the truth's std, mean speed and mean level over each rollout. L1 on each frame alone is met
    best by the conditional median, i.e. by moving less than the person (the syncers moved half as much as the
    tracked head in speech); this term asks for the amount of motion per stretch of audio (more in speech, little in
    pauses). On six held-out clips it raised the speech/silence pose-std ratio from 1.3 to 2.3."""
    motion_stats_frames: int = 75
    """Frames of each statistics rollout (3 s at 25 fps: long enough to hold speech and a pause)."""
    motion_stats_batch: int = 8
    """Rollouts per step for the statistics loss."""
    motion_stats_from: float = 0.3
    """Fraction of the steps trained on the per-frame losses alone before the statistics loss joins."""
    pose_smoothing: float = 0.5
    """Causal low-pass of the published pose at run time: two cascaded one-pole stages y += (1 - a) (x - y)
    (critically damped; group delay 2a / (1 - a) frames, 80 ms at 0.5). It takes out the frame-to-frame shake the
    speech features put into the raw output (on held-out synthetic speech: mean |acceleration| 0.32 -> 0.07
    deg/frame^2, the truth's is 0.05); 0 = off. The syncers are fed their raw outputs, never the smoothed ones."""


@dataclass(frozen=True)
class TrainMotionConfig(SyncerTraining):
    """Train the AudioPose and AudioEmotion Syncers of one avatar from a dataset made by `syncanim preprocess`."""

    data: Path
    """Dataset folder (meta.json, audio.wav, tracks.npz)."""
    avatar_dir: Path
    """Avatar folder: motion.safetensors is written here; resumable state goes to AVATAR_DIR/.motion-train/."""
    blendshapes: tuple[str, ...] = UPPER_FACE
    """Upper-face blendshapes to predict; must include eyeBlinkLeft and eyeBlinkRight."""
    init_from: Path | None = None
    """A universal model folder (`syncanim universal`): start from its weights, calibrated to this avatar's ranges,
    instead of from scratch. Its network sizes and blendshape names replace `dims` and `blendshapes`."""


@dataclass(frozen=True)
class TrainUniversalConfig(SyncerTraining):
    """Train one universal audio-to-expression model on many presenters' datasets, each normalised by its own
    ranges, so any avatar can later be driven by it after `calibrate_universal` maps it onto the avatar's ranges."""

    data: tuple[Path, ...]
    """Dataset folders (each made by `syncanim preprocess`, with speech)."""
    universal_dir: Path
    """Output folder: motion.safetensors is written here; resumable state goes to UNIVERSAL_DIR/.motion-train/."""
    blendshapes: tuple[str, ...] = EXPRESSION
    """Blendshapes to predict, in this order (an avatar's renderer is conditioned on EXPRESSION)."""
    pose_spread_floor: float = 0.1
    """Least robust spread (1.4826 x MAD) of a pose channel, degrees or cm, so a still head is not blown up."""
    blendshape_width_floor: float = 0.05
    """Least [5th, 99.5th] percentile width of a blendshape, so a channel a presenter never moves is not blown up."""


def motion_preset(name: Literal["test", "cpu", "gpu"], data: Path, avatar_dir: Path, **overrides) -> TrainMotionConfig:
    """The named preset: 'test' trains tiny nets for seconds, 'cpu' a few minutes on 2 cores, 'gpu' the full run."""
    base = TrainMotionConfig(data=Path(data), avatar_dir=Path(avatar_dir))
    if name == "test":
        base = replace(base, dims=SyncerDims(hidden=32, latent=4, audio_channels=8, audio_dim=16, unet_depth=1),
                       steps=40, batch_size=8, sequence_frames=12, val_every=20, checkpoint_every=20, threads=1,
                       audio_copies=1, motion_stats_frames=16, motion_stats_batch=4)
    elif name == "cpu":
        # One torch thread: the rollout's ops are tiny, and on a busy 2-core machine a second worker thread made a
        # step 3-4x slower (4.5-8 s vs 1.3-1.8 s per step, measured back to back at load average 9-13).
        base = replace(base, dims=SyncerDims(hidden=96, latent=8, audio_channels=16, audio_dim=48, unet_depth=1),
                       steps=1500, batch_size=16, sequence_frames=24, val_every=250, checkpoint_every=250,
                       time_limit_s=600.0, threads=1)
    elif name == "gpu":
        base = replace(base, dims=SyncerDims(hidden=256, latent=16, audio_channels=64, audio_dim=128),
                       steps=20000, batch_size=128, sequence_frames=64)
    else:
        raise ValueError(f"unknown motion preset {name!r}; use 'test', 'cpu' or 'gpu'")
    return replace(base, **overrides)


def universal_preset(name: Literal["test", "cpu", "gpu"], data: tuple[Path, ...], universal_dir: Path,
                     **overrides) -> TrainUniversalConfig:
    """The motion preset's optimisation settings for a universal model over datasets `data`; 'cpu' is sized for
    10-15 minutes of pooled audio in at most 15 minutes on 2 cores."""
    ref = motion_preset(name, Path(), Path())
    shared = {f.name: getattr(ref, f.name) for f in fields(SyncerTraining)}
    if name == "cpu":
        # Two audio copies, not four: each copy's windows are computed before the first step (about 20 s a minute
        # of audio on one core), and many voices already vary the input more than one voice's augmentations.
        shared.update(audio_copies=2, time_limit_s=660.0)
    base = TrainUniversalConfig(data=tuple(Path(d) for d in data), universal_dir=Path(universal_dir), **shared)
    return replace(base, **overrides)


@dataclass(frozen=True)
class UniversalOptions:
    """Train the universal audio-to-expression model on several datasets (then `calibrate_universal` per avatar)."""

    data: Annotated[tuple[Path, ...], tyro.conf.Positional, tyro.conf.arg(metavar="DATA_DIR")]
    """Dataset folders written by `syncanim preprocess` (with speech)."""
    universal_dir: Annotated[Path, tyro.conf.arg(aliases=("-o",), metavar="UNIVERSAL_DIR")]
    """Where motion.safetensors goes."""
    preset: Literal["test", "cpu", "gpu"] = "cpu"
    """Training preset (network sizes, steps, time limit)."""
    minutes: float | None = None
    """Stop after this many minutes (it still writes the model); default: the preset's own limit."""
