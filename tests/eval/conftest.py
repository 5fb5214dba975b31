"""Eval fixtures: a tiny avatar with both motion syncers and a NeRF renderer, trained once per session on
eval_data (tests/conftest.py) from eval_universal."""
from pathlib import Path

import pytest


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
