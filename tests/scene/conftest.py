"""Fixtures for the scene tests: an engine stepped by hand (stepped clock, virtual audio, no GL needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from scene_helpers import make_app  # noqa: E402


@pytest.fixture
def app():
    made = make_app()
    yield made
    made.shutdown()


@pytest.fixture(scope="session")
def tiny_avatar(tmp_path_factory) -> Path:
    """AVATAR_DIR of a tiny avatar trained in seconds (both stages, as `syncanim train --preset test` does) on the
    NeRF tests' procedural 16-frame 32x32 presenter: real motion model, real renderer, only small."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "nerf"))  # the NeRF tests' dataset maker
    from scenes import write_scene_dataset

    from engine.motion.config import motion_preset
    from engine.motion.train import train_motion
    from engine.nerf.train import train_nerf
    from engine.nerf.train_config import nerf_preset

    root = tmp_path_factory.mktemp("scene_avatar")
    data = write_scene_dataset(root / "data", frames=16, size=32)
    train_motion(motion_preset("test", data, root / "avatar", progress=False))
    train_nerf(nerf_preset("test", data, root / "avatar", device="cpu", progress=False))
    return root / "avatar"
