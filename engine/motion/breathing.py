"""Procedural breathing: a slightly irregular resting rhythm that lifts the shoulders (the renderer's torso shift).

Training measures how far a breath moved the recorded person's shoulders (engine/nerf/torso_motion.py), not when
the next breath comes, and an avatar that only moves with its head looks frozen in its pauses. This gives it a
breath every 3.5-5 s (12-17 a minute, an adult at rest), each one drawn anew, breathing in over the first 40% of it
and out over the rest; the renderer scales it to the avatar's measured rise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BREATH_S = (3.5, 5.0)
"""Range each breath's length is drawn from, seconds."""
INHALE = 0.4
"""Share of a breath spent breathing in (breathing out is the slower part)."""


def lung_fill(phase: float) -> float:
    """0 (breathed out) .. 1 (breathed in) at `phase` in [0, 1) of a breath: a smooth rise, then a slower fall."""
    if phase < INHALE:
        return 0.5 - 0.5 * math.cos(math.pi * phase / INHALE)
    return 0.5 + 0.5 * math.cos(math.pi * (phase - INHALE) / (1.0 - INHALE))


@dataclass
class Breathing:
    """One avatar's breathing rhythm (advanced by `step`, once per motion frame)."""

    rng: np.random.Generator
    fps: float
    phase: float = 0.0
    """Position in the current breath, 0..1."""
    length: float = 0.0
    """Frames the current breath lasts."""

    @classmethod
    def start(cls, rng: np.random.Generator, fps: float) -> Breathing:
        """A rhythm at a random point of its first breath."""
        breathing = cls(rng, fps)
        breathing.length = breathing._draw()
        breathing.phase = float(rng.uniform())
        return breathing

    def _draw(self) -> float:
        return float(self.rng.uniform(*BREATH_S)) * self.fps

    def step(self) -> float:
        """Advance one frame; the breath now: -1 (breathed out) .. 1 (breathed in), 0 on average over a breath."""
        self.phase += 1.0 / self.length
        if self.phase >= 1.0:
            self.phase -= 1.0
            self.length = self._draw()
        return 2.0 * lung_fill(self.phase) - 1.0
