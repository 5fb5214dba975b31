"""SampleRing and FeatureRing: nothing lost or duplicated without being counted; timestamps; lookups."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.audio.ring import FeatureRing, SampleRing

# An operation is ("w", n): the producer writes the next n samples; ("r", n): read(n); ("a", n): read_available.
operations = st.lists(
    st.tuples(st.sampled_from(["w", "r", "a"]), st.integers(min_value=0, max_value=40)), min_size=1, max_size=60,
)


def _run(capacity: int, ops: list[tuple[str, int]]) -> tuple[SampleRing, list[np.ndarray], int]:
    ring = SampleRing(capacity, sample_rate=10)
    produced = 0
    outputs = []
    for op, n in ops:
        if op == "w":
            # Sample values are their 1-based index in the produced stream, so 0 can only be inserted silence.
            ring.write(np.arange(produced + 1, produced + n + 1, dtype=np.float32))
            produced += n
        elif op == "r":
            before = ring.time
            out = ring.read(n)
            assert len(out) == n
            assert ring.time == pytest.approx(before + n / 10)
            outputs.append(out)
        else:
            outputs.append(ring.read_available(limit=n if n else None))
    return ring, outputs, produced


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(min_value=1, max_value=50), ops=operations)
def test_every_sample_arrives_once_in_order_or_is_counted(capacity: int, ops: list[tuple[str, int]]) -> None:
    ring, outputs, produced = _run(capacity, ops)
    got = np.concatenate(outputs) if outputs else np.zeros(0, np.float32)
    real = got[got > 0].astype(int)
    assert np.all(np.diff(real) > 0), "a sample came twice or out of order"
    assert int(np.sum(got == 0)) == ring.inserted
    assert len(real) == ring.consumed
    assert ring.written == produced == ring.consumed + ring.dropped + ring.available
    # What is still waiting is exactly the newest `available` samples, and the lost ones are exactly those missing.
    tail = ring.read_available()
    assert np.array_equal(tail, np.arange(produced - len(tail) + 1, produced + 1))
    missing = set(range(1, produced + 1)) - set(real.tolist()) - set(tail.astype(int).tolist())
    assert len(missing) == ring.dropped
    assert (ring.overruns > 0) == (ring.dropped > 0)
    assert (ring.underruns > 0) == (ring.inserted > 0)


@settings(max_examples=100, deadline=None)
@given(capacity=st.integers(min_value=1, max_value=30), sizes=st.lists(st.integers(0, 70), min_size=1, max_size=10))
def test_overrun_keeps_the_newest_samples(capacity: int, sizes: list[int]) -> None:
    ring = SampleRing(capacity)
    total = 0
    for n in sizes:
        ring.write(np.arange(total + 1, total + n + 1, dtype=np.float32))
        total += n
    kept = ring.read_available()
    assert np.array_equal(kept, np.arange(max(0, total - capacity) + 1, total + 1))
    assert ring.dropped == max(0, total - capacity)


def test_threaded_producer_loses_nothing_uncounted() -> None:
    ring = SampleRing(257)
    total = 200_000
    chunk = 61

    def produce() -> None:
        for start in range(0, total, chunk):
            ring.write(np.arange(start + 1, min(start + chunk, total) + 1, dtype=np.float32))

    producer = threading.Thread(target=produce)
    producer.start()
    got = []
    while producer.is_alive() or ring.available:
        got.append(ring.read_available(limit=97))
    producer.join()
    got.append(ring.read_available())
    real = np.concatenate(got).astype(np.int64)
    assert np.all(np.diff(real) > 0)
    assert len(real) + ring.dropped == total == ring.written


def test_underrun_inserts_silence_and_keeps_time() -> None:
    ring = SampleRing(100, sample_rate=100, t0=5.0)
    ring.write(np.ones(30, np.float32))
    out = ring.read(50)
    assert np.all(out[:30] == 1) and np.all(out[30:] == 0)
    assert ring.underruns == 1 and ring.inserted == 20
    assert ring.time == pytest.approx(5.5)


def test_ring_rejects_zero_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SampleRing(0)


def test_feature_ring_keeps_the_last_frames_with_their_times() -> None:
    ring = FeatureRing(capacity=4, window_frames=3, dim=2, fps=25.0)
    assert ring.latest() is None and ring.at(1.0) is None
    for k in range(6):
        ring.push(0.12 + k / 25, np.full((3, 2), k, np.float32))
    k, time_s, window = ring.latest()
    assert k == 5 and time_s == pytest.approx(0.12 + 5 / 25) and np.all(window == 5)
    assert ring.at(0.12 + 3 / 25)[0] == 3
    assert ring.at(0.12 + 3.4 / 25)[0] == 3
    assert ring.at(10.0)[0] == 5  # not computed yet: the newest there is
    assert ring.at(0.0) is None  # before every frame kept: nothing belongs to that time
    with pytest.raises(IndexError, match="holds frames 2..5"):
        ring.get(1)
