"""Eval fixtures: a tiny avatar with both motion syncers and a NeRF renderer, trained once per session on the
renderer tests' procedural presenter (tests/nerf/scenes.py)."""
import sys
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path; the procedural dataset lives with the renderer's tests.
sys.path.insert(0, str(Path(__file__).parents[1] / "nerf"))


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory) -> Path:
    """48 frames (6 validation frames) of 32x32 presenter with noise speech and the seven upper-face blendshapes."""
    from scenes import write_scene_dataset

    return write_scene_dataset(tmp_path_factory.mktemp("eval") / "data", frames=48, size=32)


@pytest.fixture(scope="session")
def eval_universal(eval_data, tmp_path_factory) -> Path:
    """A universal motion model of the 'test' preset, trained on eval_data alone (seconds)."""
    from engine.motion.config import universal_preset
    from engine.motion.universal import train_universal

    out = tmp_path_factory.mktemp("eval") / "universal"
    train_universal(universal_preset("test", (eval_data,), out, progress=False))
    return out


@pytest.fixture(scope="session")
def eval_avatar(eval_data, eval_universal, tmp_path_factory) -> Path:
    """AVATAR_DIR with motion.safetensors and nerf.safetensors of the 'test' preset (about 25 s on 2 cores): the
    avatar's own syncers, started from the universal model, as `syncanim train` makes them."""
    from engine.nerf.kernels.runtime import init_taichi
    from engine.training import TrainOptions, run_training

    init_taichi("cpu")
    avatar = tmp_path_factory.mktemp("eval") / "avatar"
    run_training(TrainOptions(eval_data, avatar, preset="test", universal=eval_universal))
    return avatar
