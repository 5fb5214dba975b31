"""Procedural breathing: a smooth, slightly irregular resting rhythm."""
import numpy as np
import pytest

from engine.motion.breathing import BREATH_S, INHALE, Breathing, lung_fill


def test_a_breath_rises_to_full_and_falls_back_smoothly():
    assert lung_fill(0.0) == pytest.approx(0.0) and lung_fill(INHALE) == pytest.approx(1.0)
    assert lung_fill(1.0 - 1e-9) == pytest.approx(0.0, abs=1e-9)
    phases = np.linspace(0.0, 1.0, 2001)[:-1]
    fill = np.array([lung_fill(p) for p in phases])
    assert np.abs(np.diff(fill)).max() < 0.01  # no jumps
    assert np.all(np.diff(fill[phases < INHALE]) >= 0) and np.all(np.diff(fill[phases > INHALE]) <= 0)


def test_the_rhythm_keeps_a_resting_rate_and_averages_to_the_trained_torso():
    fps, minutes = 25.0, 4
    breathing = Breathing.start(np.random.default_rng(0), fps)
    breath = np.array([breathing.step() for _ in range(int(minutes * 60 * fps))])
    assert breath.min() >= -1.0 and breath.max() <= 1.0
    starts = np.flatnonzero((breath[1:] >= 0.0) & (breath[:-1] < 0.0))  # half-way in, once a breath
    rate = len(starts) / minutes
    assert 60 / BREATH_S[1] - 1 <= rate <= 60 / BREATH_S[0] + 1
    assert abs(breath.mean()) < 0.05  # shoulders around where the upper body was trained
    lengths = np.diff(starts) / fps
    assert lengths.std() > 0.1  # each breath drawn anew, not a metronome


def test_the_same_seed_breathes_the_same():
    a, b = (Breathing.start(np.random.default_rng(4), 25.0) for _ in range(2))
    assert [a.step() for _ in range(300)] == [b.step() for _ in range(300)]
