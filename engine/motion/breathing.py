"""Procedural breathing, locked to speech: the avatar breathes out while it talks and in at its pauses.

Training measures how far a breath moved the recorded person's shoulders (engine/nerf/torso_motion.py), not when
the next breath comes, and an avatar that only moves with its head looks frozen in its pauses. At rest it breathes
every 3.5-5 s (12-17 a minute, an adult at rest), each breath drawn anew, in over the first 40% and out over the
rest. Speech takes over the rhythm, as it does in people: the lungs empty slowly through a phrase and fill quickly
at the pause after it; a pause that goes on returns to the resting rhythm from the top of that breath. The
renderer scales the breath to the avatar's measured rise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BREATH_S = (3.5, 5.0)
"""Range each resting breath's length is drawn from, seconds."""
INHALE = 0.4
"""Share of a resting breath spent breathing in (breathing out is the slower part)."""
SPEECH_EXHALE_S = 8.0
"""Seconds of speech that empty full lungs (a long phrase; they stay empty until the next pause)."""
PAUSE_S = 0.2
"""Silence after speech this long is a pause to breathe in (shorter gaps are between words)."""
CATCH_BREATH_S = 0.6
"""Seconds a pause's breath takes to fill empty lungs (quicker than a resting breath, as between phrases)."""


def lung_fill(phase: float) -> float:
    """0 (breathed out) .. 1 (breathed in) at `phase` in [0, 1) of a breath: a smooth rise, then a slower fall."""
    if phase < INHALE:
        return 0.5 - 0.5 * math.cos(math.pi * phase / INHALE)
    return 0.5 + 0.5 * math.cos(math.pi * (phase - INHALE) / (1.0 - INHALE))


@dataclass
class Breathing:
    """One avatar's breathing (advanced by `step`, once per motion frame)."""

    rng: np.random.Generator
    fps: float
    phase: float = 0.0
    """Position in the current resting breath, 0..1."""
    length: float = 0.0
    """Frames the current resting breath lasts."""
    lungs: float = 0.0
    """0 (breathed out) .. 1 (breathed in), now."""
    mode: str = "rest"
    """'rest' (the resting rhythm), 'out' (breathing out through speech) or 'in' (catching breath)."""
    quiet_frames: int = 0
    """Silent frames in a row."""

    @classmethod
    def start(cls, rng: np.random.Generator, fps: float) -> Breathing:
        """A resting rhythm at a random point of its first breath."""
        breathing = cls(rng, fps)
        breathing.length = breathing._draw()
        breathing.phase = float(rng.uniform())
        breathing.lungs = lung_fill(breathing.phase)
        return breathing

    def _draw(self) -> float:
        return float(self.rng.uniform(*BREATH_S)) * self.fps

    def step(self, speaking: bool = False) -> float:
        """Advance one frame that holds speech or not; the breath now: -1 (breathed out) .. 1 (breathed in), 0 on
        average over a resting breath."""
        self.quiet_frames = 0 if speaking else self.quiet_frames + 1
        if speaking and self.mode == "rest":  # speech starts: on half-empty lungs, a breath first
            self.mode = "in" if self.lungs < 0.5 else "out"
        elif self.mode == "out" and self.quiet_frames >= PAUSE_S * self.fps:
            self.mode = "in"  # a pause after speech
        if self.mode == "out":
            if speaking:  # between words the breath holds
                self.lungs = max(0.0, self.lungs - 1.0 / (SPEECH_EXHALE_S * self.fps))
        elif self.mode == "in":
            self.lungs = min(1.0, self.lungs + 1.0 / (CATCH_BREATH_S * self.fps))
            if self.lungs >= 1.0:  # full: talk on, or rest from the top of this breath
                self.mode = "out" if speaking else "rest"
                self.phase, self.length = INHALE, self._draw()
        else:
            self.phase += 1.0 / self.length
            if self.phase >= 1.0:
                self.phase -= 1.0
                self.length = self._draw()
            self.lungs = lung_fill(self.phase)
        return 2.0 * self.lungs - 1.0
