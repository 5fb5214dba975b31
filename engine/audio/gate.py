"""A noise gate on the samples the speech features are computed from (not on what is played).

Room noise that a clean training recording never had reads as speech to the audio networks: white noise at
-40 dBFS put the NeRF audio code of a pause 17 units from silence's (speech sits 19 away) and opened the lips.
The gate tracks the noise floor (minimum statistics: the lowest 30 ms level of the last `history_s`) and lowers
every 10 ms block near it until it lands at `target_dbfs`, where the log-mel features sit at their floor as
in a quiet recording; blocks `open_db` above the floor pass. The gate itself never amplifies, and digital silence
passes untouched.

Before it, a level control: blocks well above the floor are speech, and their running mean level is brought to
`speech_dbfs` by a slowly moving gain (the gate's target applies after it), so a microphone 12 dB too quiet does
not read as halfway to silence.

It runs on whole blocks and carries its state from call to call, so a recording pushed in pieces of any size
gives the same samples as the whole recording at once (the remainder short of a block waits for the next call).
Training and the live engine gate alike (FeatureStream, offline_windows), and the feature spec names the gate.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from engine.audio.settings import GateParams

BLOCK = 160
"""Samples per gate decision (10 ms at 16 kHz)."""
SMOOTH_BLOCKS = 3
"""Blocks averaged (causally) into the level the noise floor is read from."""
SILENT_DB = -120.0
"""Level given to digital silence (the log of zero)."""


class NoiseGate:
    """Stateful gate over a 16 kHz stream: `process(samples)` returns the gated samples of every whole block."""

    def __init__(self, params: GateParams) -> None:
        self.params = params
        self._pending = np.zeros(0, np.float32)
        self._recent: deque[float] = deque(maxlen=SMOOTH_BLOCKS)
        self._smoothed: deque[float] = deque(maxlen=max(1, round(params.history_s * 100)))
        self._gate_db = 0.0
        self._level_db = 0.0
        self._floor_dbfs = SILENT_DB
        self._speech_dbfs: float | None = None
        self._speech_blocks = 0

    @property
    def floor_dbfs(self) -> float:
        """The noise floor the gate tracks now (dBFS)."""
        return self._floor_dbfs

    @property
    def gate_db(self) -> float:
        """The gate's part of the last block's gain (0: open; negative: closing or closed)."""
        return self._gate_db

    @property
    def level_db(self) -> float:
        """The level control's part of the gain (0 before any speech, or with it off)."""
        return self._level_db

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Gate `samples` [n] f32; returns the whole blocks now complete (the rest is kept for the next call)."""
        audio = np.concatenate([self._pending, np.asarray(samples, np.float32)])
        whole = len(audio) // BLOCK * BLOCK
        self._pending = audio[whole:]
        blocks = audio[:whole].reshape(-1, BLOCK)
        if not len(blocks):
            return np.zeros(0, np.float32)
        power = np.mean(blocks.astype(np.float64) ** 2, axis=1)
        levels = np.where(power > 0, 10.0 * np.log10(np.maximum(power, 1e-30)), SILENT_DB)
        gains = np.array([self._gain(level) for level in levels.tolist()], np.float32)
        return (blocks * (10.0 ** (gains / 20.0))[:, None]).reshape(-1)

    def _gain(self, level: float) -> float:
        """Gain in dB of the next block of `level` dBFS, updating the floor tracker."""
        p = self.params
        self._recent.append(level)
        self._smoothed.append(sum(self._recent) / len(self._recent))
        floor = self._floor_dbfs = min(min(self._smoothed), p.max_floor_dbfs)
        low, high = floor + p.open_db[0], floor + p.open_db[1]
        self._level_db = self._level_gain(level, high)
        closed = min(0.0, p.target_dbfs - (floor + self._level_db))  # the gain that takes the floor to the target
        opening = min(1.0, max(0.0, (level - low) / (high - low)))
        wanted = closed * (1.0 - opening)
        # opens at once (speech onsets are never cut), closes at a limited rate (word endings are not clipped)
        self._gate_db = max(wanted, self._gate_db - p.close_db_per_block)
        return self._level_db + self._gate_db

    def _level_gain(self, level: float, speech_above: float) -> float:
        """The level control's gain in dB, updating the speech level with this block if it is speech."""
        p = self.params
        if p.speech_dbfs is None:
            return 0.0
        if level > speech_above:
            self._speech_blocks += 1
            rate = max(1.0 / (p.speech_time_s * 100.0), 1.0 / self._speech_blocks)
            last = level if self._speech_dbfs is None else self._speech_dbfs
            self._speech_dbfs = last + rate * (level - last)
        if self._speech_dbfs is None:
            return 0.0
        return min(p.speech_gain_db[1], max(p.speech_gain_db[0], p.speech_dbfs - self._speech_dbfs))


def make_gate(params: GateParams | None) -> NoiseGate | None:
    """A fresh gate for one stream, or None when there are no settings or they turn it off."""
    return NoiseGate(params) if params is not None and params.enabled else None
