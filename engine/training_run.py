"""TrainingRun: how any training run is driven, the settings the motion and NeRF trainers share (a light module:
their configs import it, and `syncanim train` in engine/training.py imports them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class TrainingRun:
    """How a training run is driven, shared by every trainer: cadence, resume, limits, seed and device."""

    val_every: int = 1000
    """Steps between validation passes (logged to AVATAR_DIR/<part>_log.jsonl)."""
    checkpoint_every: int = 1000
    """Steps between resumable checkpoints (AVATAR_DIR/.<part>-train/state.safetensors)."""
    resume: bool = True
    """Continue from the resumable state when it exists and matches the data and network sizes."""
    time_limit_s: float = 0.0
    """Stop early (and still write the model) after this many seconds of training; 0 = no limit."""
    seed: int = 0
    """Seeds parameter init and sampling."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'auto' uses CUDA when torch sees it."""
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""
    progress: bool = True
    """Show progress bars."""
