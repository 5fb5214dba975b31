"""AudioTap: a copy of everything the engine sent to its speakers, for recording with sound."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.io.video import WavSpool


class AudioTap:
    """Resource: the output mix in order, mono float32 at `sample_rate`.

    Playback writes every block it outputs, silence included, so a recording's audio track lines up sample for
    sample with the frames presented on the same clock. Nothing is kept unless someone asks:

    - a recording (the mp4 sink) calls `record_to(path)`: from then on every block is streamed to a 16-bit wav
      file as it comes, so memory stays flat however long a kiosk records;
    - `enabled` keeps the samples in memory for `samples()` (tests and short probes; an hour of 16 kHz float32
      is 230 MB).
    """

    def __init__(self, sample_rate: int = 16000, enabled: bool = False) -> None:
        self.sample_rate = sample_rate
        self.enabled = enabled
        self.spool: WavSpool | None = None
        """The wav file a recording streams into (None when nothing records)."""
        self._chunks: list[np.ndarray] = []
        self._count = 0

    def write(self, block: np.ndarray) -> None:
        if not len(block):
            return
        self._count += len(block)
        if self.enabled:
            self._chunks.append(np.asarray(block, dtype=np.float32).copy())
        if self.spool is not None:
            self.spool.write(block)

    def record_to(self, path: Path) -> WavSpool:
        """Stream every block from now on into a wav file at `path` (replacing a recording already running)."""
        if self.spool is not None:
            self.spool.discard()
        self.spool = WavSpool(path, self.sample_rate)
        return self.spool

    def stop_recording(self) -> WavSpool | None:
        """Detach the recording's spool (still open: the recorder finishes or discards it)."""
        spool, self.spool = self.spool, None
        return spool

    def samples(self) -> np.ndarray:
        """What was kept in memory while `enabled`: [N] float32."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, np.float32)

    def __len__(self) -> int:
        """Samples played since the engine started."""
        return self._count

    @property
    def duration_s(self) -> float:
        return self._count / self.sample_rate
