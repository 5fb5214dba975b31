"""Shared fixtures of the NeRF tests: Taichi on the CPU backend, started once per session."""
import sys
from pathlib import Path

import pytest

# The suite runs with --import-mode=importlib, which puts no test folder on sys.path; the kernel tests share
# their pure-torch references through one helper module, the renderer's tests their procedural dataset.
sys.path.insert(0, str(Path(__file__).parent / "kernels"))
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def taichi_cpu():
    from engine.nerf.kernels.runtime import init_taichi

    return init_taichi("cpu")


@pytest.fixture(scope="session")
def scene_data(tmp_path_factory):
    """A 16-frame 32x32 procedural presenter dataset (tests/nerf/scenes.py)."""
    from scenes import write_scene_dataset

    return write_scene_dataset(tmp_path_factory.mktemp("nerf") / "data", frames=16, size=32)


@pytest.fixture(scope="session")
def trained_avatar(scene_data, taichi_cpu, tmp_path_factory):
    """AVATAR_DIR of the 'test' preset trained on scene_data (seconds of training), its head hearing the speech as
    well as reading the expression: its own, as the shared tiny avatar's head hears none and test_train checks this
    training's log and resume."""
    from engine.nerf.train import train_nerf
    from engine.nerf.train_config import nerf_preset

    avatar = tmp_path_factory.mktemp("nerf") / "avatar"
    train_nerf(nerf_preset("test", scene_data, avatar, device="cpu", progress=False, head_audio=True))
    return avatar


@pytest.fixture(scope="session")
def expression_avatar(tiny_avatar, taichi_cpu):
    """An avatar with the default head (expression only, no audio input): the suite's shared tiny avatar, trained on
    tiny_data (not scene_data)."""
    return tiny_avatar
