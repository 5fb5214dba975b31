"""Shared fixtures of the NeRF tests: Taichi on the CPU backend, started once per session."""
import sys
from pathlib import Path

import pytest

# The suite runs with --import-mode=importlib, which puts no test folder on sys.path; the kernel tests share
# their pure-torch references through this one helper module.
sys.path.insert(0, str(Path(__file__).parent / "kernels"))


@pytest.fixture(scope="session")
def taichi_cpu():
    from engine.nerf.kernels.runtime import init_taichi

    return init_taichi("cpu")
