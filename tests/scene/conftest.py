"""Fixtures for the scene tests: an engine stepped by hand (stepped clock, virtual audio, no GL needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from scene_helpers import make_app, train_tiny_avatar  # noqa: E402


@pytest.fixture
def app():
    made = make_app()
    yield made
    made.shutdown()


@pytest.fixture(scope="session")
def tiny_avatar(tmp_path_factory) -> Path:
    return train_tiny_avatar(tmp_path_factory.mktemp("scene_avatar"))
