"""Fixtures for the audio tests."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# The test modules import audio_helpers by name; the folder has no __init__.py, so put it on the path here.
sys.path.insert(0, str(Path(__file__).parent))
from audio_helpers import write_audio  # noqa: E402


@pytest.fixture
def audio_file(tmp_path: Path):
    def make(name: str, samples: np.ndarray, rate: int) -> Path:
        return write_audio(tmp_path / name, samples, rate)

    return make
