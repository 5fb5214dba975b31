"""The kiosk latency bench's arithmetic on sounds it knows: when a sound starts, when it falls silent, and which
question was spoken over an answer (the whole measurement runs engines for minutes: `syncanim bench`)."""
import numpy as np
import pytest

from engine.eval.conversation import (
    RATE, Frame, Probe, Session, answer_latencies, first_sound_after, last_sound_before_silence, summary,
)


def track(*spans: tuple[float, float], seconds: float = 10.0) -> np.ndarray:
    played = np.zeros(int(seconds * RATE), np.float32)
    for start, end in spans:
        played[int(start * RATE):int(end * RATE)] = 0.3
    return played


def test_sounds_start_and_fall_silent_where_they_do():
    played = track((1.0, 2.0), (2.1, 3.0))
    assert first_sound_after(played, 0) == RATE and first_sound_after(played, int(3.5 * RATE)) is None
    assert last_sound_before_silence(played, int(1.5 * RATE)) == 3 * RATE  # a 0.1 s gap is not the end


def test_answers_are_timed_from_each_question_end_and_a_question_over_an_answer_is_a_barge_in():
    spans = [(1.0, 2.0), (4.0, 5.0)]
    played = track((2.8, 4.2), (5.9, 7.0))  # answer 1 cut 0.2 s into question 2, then answer 2
    session = Session(Probe([Frame(0.0, 0.0, 0.0, 0.0, 0)]), played, {})
    measured = answer_latencies(session, spans)
    assert measured["answer"] == pytest.approx([0.8, 0.9], abs=1e-3)
    assert measured["barge_in"] == pytest.approx([0.2], abs=1e-3)


def test_a_summary_counts_what_was_missed():
    assert summary([0.1, float("nan"), 0.3]) == {"n": 2, "missed": 1, "median_ms": 200.0, "min_ms": 100.0,
                                                 "max_ms": 300.0, "all_ms": [100.0, 300.0]}
