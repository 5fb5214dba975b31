"""TrainingRun: how any training run is driven, the settings the motion and NeRF trainers share (a light module:
their configs import it, and `syncanim train` in engine/training.py imports them); engine/training_loop.py drives
a run by them."""
from __future__ import annotations

import time
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
    """Continue from the resumable state when it exists and matches the data and network sizes. The state holds the
    random states, the clock and the log's history too, so a resumed run ends where an uninterrupted one would."""
    time_limit_s: float = 0.0
    """Stop early (and still write the model) after this many seconds of training, counted across resumes: a run
    the limit stopped, started again under the same limit, trains no further (a larger limit lets it go on);
    0 = no limit."""
    seed: int = 0
    """Seeds parameter init and sampling."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'auto' uses CUDA when torch sees it."""
    threads: int = 0
    """torch CPU threads, and Taichi's where the run starts Taichi (0 = their defaults). With 1 a CPU run repeats
    bit for bit."""
    progress: bool = True
    """Show progress bars."""


class RunClock:
    """Seconds of training a run has had, counted across resumes (`spent`: what its resumable state recorded): what
    a killed run did after its last checkpoint and the time it lay dead do not count, so time limits, stage
    deadlines and learning rates go on where the state left them."""

    def __init__(self, spent: float = 0.0) -> None:
        self.origin = time.monotonic() - spent

    def __call__(self) -> float:
        return time.monotonic() - self.origin
