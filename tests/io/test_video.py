"""The mp4 writer: its own ffmpeg process (a process group of its own), odd sizes, and a dead encoder's error."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from engine.io.video import Mp4Writer, probe


def frame(color, size=(33, 17)) -> np.ndarray:
    width, height = size
    return np.broadcast_to(np.asarray(color, np.uint8), (height, width, 3)).copy()


def test_odd_sizes_are_padded_and_the_colours_and_audio_survive(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    with Mp4Writer(out, 25.0) as writer:
        for _ in range(10):
            writer.write(frame((200, 40, 90)))
        writer.close(audio=np.full(16000 * 10 // 25, 0.25, np.float32), sample_rate=16000)
    info = probe(out)
    assert (info.frames, info.width, info.height) == (10, 34, 18)
    assert info.audio_duration_s == pytest.approx(0.4, abs=0.065)  # AAC frames are 64 ms at 16 kHz
    first = iio.imread(out, index=0, plugin="pyav")
    assert np.abs(first[:16, :32].astype(int).mean(axis=(0, 1)) - (200, 40, 90)).max() < 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_the_encoder_has_a_process_group_of_its_own(tmp_path: Path) -> None:
    """A Ctrl-C at the terminal goes to the engine's group; the engine then finishes the file, not ffmpeg."""
    writer = Mp4Writer(tmp_path / "take.mp4", 25.0)
    writer.write(frame((0, 0, 0)))
    pid = writer._encoder._process.pid
    try:
        assert os.getpgid(pid) == pid != os.getpgrp()
    finally:
        writer.abort()
    assert not any(tmp_path.iterdir())


def test_a_dead_encoder_is_an_error_naming_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "take.mp4"
    out.write_bytes(b"the previous take")
    writer = Mp4Writer(out, 25.0)
    big = frame((9, 9, 9), (640, 480))
    writer.write(big)
    os.kill(writer._encoder._process.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match=r"take\.mp4.*: the h264 encoder \(ffmpeg\) stopped"):
        for _ in range(50):  # the pipe takes what fits in its buffer first
            writer.write(big)
    writer.abort()
    assert out.read_bytes() == b"the previous take"
    assert [p.name for p in tmp_path.iterdir()] == ["take.mp4"]
