"""SampleRing (audio between the device thread and the frame loop) and FeatureRing (feature windows per video frame)."""
from __future__ import annotations

import time

import numpy as np


class SampleRing:
    """Resource: a preallocated single-producer / single-consumer ring of mono float32 samples.

    The producer (a device callback, or the mixer on the frame loop) only copies in with `write`; it never waits and
    never moves the consumer's cursor. When it laps the consumer, the oldest samples are overwritten; the consumer
    notices on its next read, skips them and counts an overrun. A consumer that asks `read(n)` for more than is there
    gets silence for the rest and counts an underrun, so its stream time keeps pace with the clock.

    Counters hold `written == consumed + dropped + available`. `time` is the stream time of the next sample the
    consumer gets: `t0 + (consumed + inserted) / sample_rate` (dropped samples take no stream time).
    """

    def __init__(self, capacity: int, sample_rate: int = 16000, t0: float = 0.0) -> None:
        if capacity <= 0:
            raise ValueError(f"SampleRing capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.sample_rate = sample_rate
        self.t0 = t0
        self._buffer = np.zeros(self.capacity, np.float32)
        # Producer-owned. _claimed runs ahead of _written while a copy is in progress.
        self._written = 0
        self._claimed = 0
        self.last_write_wall = 0.0
        """time.perf_counter() of the latest write (for latency diagnostics)."""
        # Consumer-owned.
        self._read = 0
        self.consumed = 0
        self._dropped = 0
        self._overruns = 0
        self.inserted = 0
        self.underruns = 0
        self._filled = 0  # dropped samples read_continuous has already replaced with silence

    # producer -----------------------------------------------------------------------------------
    def write(self, block: np.ndarray) -> None:
        """Copy `block` [n] in; never blocks. Only the last `capacity` samples of an oversized block fit."""
        n = len(block)
        if n == 0:
            return
        start = self._written
        # Announce the overwrite before doing it, so a consumer copying meanwhile can tell its copy is stale.
        self._claimed = start + n
        if n > self.capacity:
            block = block[n - self.capacity:]
            start += n - self.capacity
        self._copy_in(start % self.capacity, block)
        # Publish after the copy, so the consumer never sees a count ahead of the data.
        self._written += n
        self.last_write_wall = time.perf_counter()

    def _copy_in(self, at: int, block: np.ndarray) -> None:
        first = min(len(block), self.capacity - at)
        self._buffer[at:at + first] = block[:first]
        if first < len(block):
            self._buffer[:len(block) - first] = block[first:]

    # consumer -----------------------------------------------------------------------------------
    @property
    def written(self) -> int:
        return self._written

    @property
    def dropped(self) -> int:
        """Samples overwritten before the consumer got them (including ones it has not noticed yet)."""
        return self._dropped + max(0, self._written - self._read - self.capacity)

    @property
    def overruns(self) -> int:
        """Times the producer lapped the consumer (a lap not yet noticed counts once)."""
        return self._overruns + (1 if self._written - self._read > self.capacity else 0)

    @property
    def available(self) -> int:
        """Samples the consumer can read now (at most `capacity`)."""
        return min(self._written - self._read, self.capacity)

    @property
    def time(self) -> float:
        return self.t0 + (self.consumed + self.inserted) / self.sample_rate

    def read_available(self, limit: int | None = None) -> np.ndarray:
        """Everything waiting (or at most `limit`), oldest first: [k] float32; inserts no silence."""
        written = self._written  # one snapshot: the producer may write while we copy
        self._skip_overwritten(written)
        k = written - self._read
        if limit is not None:
            k = min(k, limit)
        start = self._read
        out = self._copy_out(start % self.capacity, k)
        # The producer may have lapped us while we copied: drop what it overwrote or is overwriting.
        lost = min(max(0, self._claimed - self.capacity - start), k)
        if lost:
            out = out[lost:]
            self._dropped += lost
            self._overruns += 1
        self._read = start + k
        self.consumed += len(out)
        return out

    def read_continuous(self) -> np.ndarray:
        """Everything waiting, with silence standing in for what the producer overwrote before it was read: [k]
        float32. The stream keeps its length across an overrun, so what is timed by counting samples (a recording's
        audio track, feature timestamps) stays on the producer's clock after a stall. The silence counts as inserted.
        """
        out = self.read_available()
        lost = self._dropped - self._filled
        self._filled = self._dropped
        if lost > 0:
            self.inserted += lost
            out = np.concatenate([np.zeros(lost, np.float32), out])  # what was lost is older than what is left
        return out

    def read(self, n: int) -> np.ndarray:
        """Exactly `n` samples [n]: what is waiting, then silence for the rest (an underrun)."""
        out = self.read_available(limit=n)
        missing = n - len(out)
        if missing > 0:
            self.inserted += missing
            self.underruns += 1
            out = np.concatenate([out, np.zeros(missing, np.float32)])
        return out

    def _skip_overwritten(self, written: int) -> None:
        behind = written - self._read - self.capacity
        if behind > 0:
            self._read += behind
            self._dropped += behind
            self._overruns += 1

    def _copy_out(self, at: int, k: int) -> np.ndarray:
        first = min(k, self.capacity - at)
        if first == k:
            return self._buffer[at:at + k].copy()
        return np.concatenate([self._buffer[at:], self._buffer[:k - first]])

    def counters(self) -> dict[str, int]:
        return {
            "written": self._written, "consumed": self.consumed, "dropped": self.dropped, "overruns": self.overruns,
            "inserted": self.inserted, "underruns": self.underruns, "available": self.available,
        }


class FeatureRing:
    """Resource: the last `capacity` feature windows, one per video frame, each stamped with its frame's time.

    Entry k holds the window for video frame k: `window` [W, D] float32, the features of the W 20 ms frames ending
    `lookahead` frames after the video frame's own two (see engine/audio/streaming.py). `time` is when frame k's sound
    is heard (k / fps + the stream's origin). Written and read on the frame loop only.
    """

    def __init__(self, capacity: int, window_frames: int, dim: int, fps: float = 25.0) -> None:
        self.capacity = capacity
        self.fps = fps
        self._windows = np.zeros((capacity, window_frames, dim), np.float32)
        self._times = np.zeros(capacity, np.float64)
        self._count = 0  # frames pushed so far; entry k lives at k % capacity

    @property
    def window_frames(self) -> int:
        return self._windows.shape[1]

    @property
    def dim(self) -> int:
        return self._windows.shape[2]

    def __len__(self) -> int:
        """Video frames pushed so far (the next frame index)."""
        return self._count

    def push(self, time_s: float, window: np.ndarray) -> int:
        """Store the next frame's window [W, D]; return its frame index."""
        k = self._count
        self._windows[k % self.capacity] = window
        self._times[k % self.capacity] = time_s
        self._count += 1
        return k

    def oldest(self) -> int:
        return max(0, self._count - self.capacity)

    def get(self, k: int) -> tuple[float, np.ndarray]:
        """(time, window [W, D]) of frame k; an IndexError names the frames still kept."""
        if not self.oldest() <= k < self._count:
            kept = f"{self.oldest()}..{self._count - 1}"
            raise IndexError(f"feature frame {k} is not in the ring (it holds frames {kept})")
        return float(self._times[k % self.capacity]), self._windows[k % self.capacity]

    def latest(self) -> tuple[int, float, np.ndarray] | None:
        if self._count == 0:
            return None
        k = self._count - 1
        time_s, window = self.get(k)
        return k, time_s, window

    def at(self, time_s: float) -> tuple[int, float, np.ndarray] | None:
        """The newest frame whose time is <= `time_s` (+ half a frame of rounding slack); None if there is none yet.

        When the features for `time_s` are not computed yet (mic input: the look-ahead has not arrived), this is the
        newest one there is; compare the returned time to see how stale it is.
        """
        if self._count == 0:
            return None
        first_time = self._times[self.oldest() % self.capacity]
        offset = int(np.floor((time_s - first_time) * self.fps + 0.5))
        k = min(self.oldest() + max(offset, 0), self._count - 1)
        if self._times[k % self.capacity] > time_s + 0.5 / self.fps:
            return None
        return k, *self.get(k)
