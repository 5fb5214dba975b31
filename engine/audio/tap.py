"""AudioTap: a copy of everything the engine sent to its speakers, for recording with sound."""
from __future__ import annotations

import numpy as np


class AudioTap:
    """Resource: the output mix in order, mono float32 at `sample_rate`.

    Playback writes every block it outputs, silence included, so a recording's audio track lines up
    sample for sample with the frames presented on the same clock. Nothing is kept unless a sink
    turned it on (an hour of 16 kHz float32 is 230 MB).
    """

    def __init__(self, sample_rate: int = 16000, enabled: bool = False) -> None:
        self.sample_rate = sample_rate
        self.enabled = enabled
        self._chunks: list[np.ndarray] = []
        self._count = 0

    def write(self, block: np.ndarray) -> None:
        if self.enabled and len(block):
            self._chunks.append(np.asarray(block, dtype=np.float32).copy())
            self._count += len(block)

    def samples(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, np.float32)

    def __len__(self) -> int:
        return self._count

    @property
    def duration_s(self) -> float:
        return self._count / self.sample_rate
