"""Procedural breathing: a smooth, slightly irregular resting rhythm that speech takes over (out while talking, in
at the pauses)."""
import numpy as np
import pytest

from engine.motion.breathing import (
    BREATH_S, CATCH_BREATH_S, INHALE, PAUSE_S, SPEECH_EXHALE_S, Breathing, lung_fill,
)


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


def breathe(breathing, speech):
    return np.array([breathing.step(bool(s)) for s in speech])


def test_speech_breathes_out_and_each_pause_breathes_in():
    fps = 25.0
    phrase, pause = np.ones(int(4 * fps), bool), np.zeros(int(1.5 * fps), bool)
    breathing = Breathing.start(np.random.default_rng(1), fps)
    breath = breathe(breathing, np.concatenate([phrase, pause, phrase, pause]))
    first, gap = breath[: len(phrase)], breath[len(phrase): len(phrase) + len(pause)]
    assert np.all(np.diff(first[int(CATCH_BREATH_S * fps) + 1:]) < 0)  # out through the phrase
    drop = (first.max() - first[-1]) / 2  # as lungs, 0..1
    assert drop == pytest.approx((4 - CATCH_BREATH_S) / SPEECH_EXHALE_S, abs=0.1)
    assert gap.max() == pytest.approx(1.0)  # the pause fills the lungs ...
    assert np.argmax(gap) / fps <= PAUSE_S + CATCH_BREATH_S + 0.05  # ... quickly
    assert np.abs(np.diff(breath)).max() <= 2.0 / (CATCH_BREATH_S * fps) + 1e-6  # never a jump


def test_a_gap_between_words_holds_the_breath():
    fps = 25.0
    breathing = Breathing.start(np.random.default_rng(2), fps)
    talk = breathe(breathing, np.ones(50, bool))
    gap = breathe(breathing, np.zeros(int(PAUSE_S * fps) - 1, bool))
    assert np.all(gap == talk[-1])


def test_speech_that_starts_on_empty_lungs_takes_a_breath_first():
    fps = 25.0
    breathing = Breathing.start(np.random.default_rng(3), fps)
    while not (breathing.lungs < 0.2 and breathing.phase > INHALE):  # rest until nearly breathed out
        breathing.step(False)
    breath = breathe(breathing, np.ones(int(2 * fps), bool))
    assert breath.max() == pytest.approx(1.0) and np.argmax(breath) / fps <= CATCH_BREATH_S + 0.05


def test_a_long_pause_returns_to_the_resting_rhythm():
    fps = 25.0
    breathing = Breathing.start(np.random.default_rng(5), fps)
    breathe(breathing, np.ones(100, bool))
    rest = breathe(breathing, np.zeros(int(20 * fps), bool))
    assert breathing.mode == "rest"
    starts = np.flatnonzero((rest[1:] >= 0.0) & (rest[:-1] < 0.0))
    assert 60 / BREATH_S[1] - 2 <= len(starts) * 3 <= 60 / BREATH_S[0] + 2  # breaths a minute, from 20 s
