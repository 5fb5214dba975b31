"""Motion components and resources: MotionController (what drives an avatar), MotionState (what it does now)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np


@dataclass
class MotionController:
    """Component: drive this avatar's head pose and upper face from its voice with a trained motion model."""

    avatar: Path
    """AVATAR_DIR holding motion.safetensors (or the file itself)."""
    mode: Literal["one_shot", "zero_shot"] = "one_shot"
    """one_shot: start from a reference pose and expression; zero_shot: from Gaussian noise (the paper's Table 1)."""
    reference: dict[str, np.ndarray] | None = None
    """One-shot reference: euler_deg [3], trans [3], blendshapes [K] (the model's names); None: its first training
    frame."""
    seed: int = 0
    """Seeds the latents and blink intervals of this avatar."""
    voice: str | None = None
    """Which voice's FeatureRing to read; None: the entity's Voice component, else the first voice."""
    memory: Any = None
    """MotionMemory: own previous outputs, blink phase and RNG (made and advanced by drive_motion)."""


@dataclass
class MotionState:
    """Component: the avatar's pose and upper-face blendshapes for the current fixed step (read by the renderer)."""

    euler_deg: np.ndarray
    """[3] roll, pitch, yaw in degrees (the paper's Eq. 1 order)."""
    trans: np.ndarray
    """[3] head translation in the camera frame (cm)."""
    blendshapes: np.ndarray
    """[K] ARKit blendshape values in [0, 1], named by blendshape_names."""
    blendshape_names: tuple[str, ...]
    breath: float = 0.0
    """-1 (breathed out) .. 1 (breathed in): the renderer lifts the shoulders by it (engine/motion/breathing.py)."""
    frame: int = -1
    """Feature frame the step read (-1: none yet, silence was used)."""
    time_s: float = 0.0
    """Engine time of the fixed step."""
    stale: bool = False
    """True when the step's features had not arrived and an older window (or silence) stood in."""


@dataclass
class MotionModels:
    """Resource: loaded motion models by file, shared by every avatar that uses the same one."""

    runtimes: dict[Path, Any] = field(default_factory=dict)


@dataclass
class MotionClock:
    """Resource: fixed steps the motion system has run (the n-th is at (n + FixedTime.skipped_steps) x step seconds:
    steps a stall skipped are skipped on the clock too)."""

    steps: int = 0
