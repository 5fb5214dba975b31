"""LPIPS and FID from registry weights: zero for equal images, distortions kept in order, the heads of both packages
equal and loaded exactly, LPIPS equal to published values on TID2013 pairs, and a clear error without the weights."""
from __future__ import annotations

import csv
import io
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg
from scipy.ndimage import gaussian_filter
from skimage import data

from engine import perceptual
from engine.perceptual import (
    ALEXNET, INCEPTION, LPIPS_HEADS, LPIPSLoss, WeightsUnavailable, fid, frechet_distance, inception_features,
    lpips_distance, weights_status,
)

SCRIPT = Path(__file__).parents[1] / "scripts" / "fetch_eval_weights.py"
# pyiqa's sdist ships five TID2013 pairs and the LPIPS (alex, v0.1) values the original package gives them.
CALIBRATION = "pyiqa==0.1.16"


def _crops(size: int = 64, count: int = 4) -> np.ndarray:
    """`count` different face and background crops [count, size, size, 3] uint8 of skimage's astronaut."""
    image = data.astronaut()
    return np.stack([image[40 + 70 * i:40 + 70 * i + size, 120 + 50 * i:120 + 50 * i + size] for i in range(count)])


def _noisy(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, frames.shape)
    return np.clip(frames + noise, 0, 255).astype(np.uint8)


def _blurred(frames: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([gaussian_filter(f.astype(np.float64), (sigma, sigma, 0)) for f in frames]).round().astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------- LPIPS

def test_identical_images_give_zero(eval_weights):
    frames = _crops()
    assert np.all(np.abs(lpips_distance(frames, frames.copy())) < 1e-7)


def test_lpips_keeps_the_order_of_distortions(eval_weights):
    frames = _crops()
    unrelated = data.coffee()[100:164, 200:264][None].repeat(len(frames), 0)
    light, heavy, other = (lpips_distance(frames, b) for b in (_noisy(frames, 6), _noisy(frames, 16), unrelated))
    assert np.all(0 < light) and np.all(light < heavy) and np.all(heavy < other), (light, heavy, other)
    small, large = (lpips_distance(frames, _blurred(frames, s)) for s in (0.7, 2.5))
    assert np.all(0 < small) and np.all(small < large), (small, large)


def test_lpips_is_symmetric_and_batch_independent(eval_weights):
    frames, noisy = _crops(), _noisy(_crops(), 20)
    forward, backward = lpips_distance(frames, noisy, batch=4), lpips_distance(noisy, frames, batch=1)
    np.testing.assert_allclose(forward, backward, rtol=1e-5)


def test_loss_is_differentiable_with_frozen_weights(eval_weights):
    loss = LPIPSLoss()
    x = torch.from_numpy(_crops(count=2)).permute(0, 3, 1, 2).float().div(255).requires_grad_(True)
    y = torch.from_numpy(_noisy(_crops(count=2), 30)).permute(0, 3, 1, 2).float().div(255)
    value = loss(x, y)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())
    per_image = LPIPSLoss(reduction="none")(x.detach(), y)
    np.testing.assert_allclose(per_image.numpy(), lpips_distance(_crops(count=2), _noisy(_crops(count=2), 30)),
                               rtol=1e-5)
    assert torch.isclose(value, per_image.mean())


def test_unit_channels_has_a_finite_gradient_at_dead_pixels():
    h = torch.rand(1, 8, 2, 2)
    h[0, :, 1, 1] = 0  # every relu of one pixel off
    h.requires_grad_(True)
    unit = perceptual.unit_channels(h)
    unit.sum().backward()
    assert torch.isfinite(h.grad).all()
    np.testing.assert_allclose(torch.linalg.vector_norm(unit, dim=1).detach().numpy(), [[[1, 1], [1, 0]]], atol=1e-6)


def test_small_images_are_refused_with_the_minimum(eval_weights):
    with pytest.raises(ValueError, match="at least 31 px"):
        lpips_distance(_crops(size=24), _crops(size=24))


def test_both_packages_heads_are_equal_and_load_exactly(eval_weights):
    from_jax = perceptual.load_alexnet_params(eval_weights / ALEXNET.name)
    from_lpips = perceptual.load_lpips_heads(eval_weights / LPIPS_HEADS.name)
    loss = LPIPSLoss()
    for i, (head, weight) in enumerate(zip(loss.heads, from_lpips)):
        kernel = from_jax[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]  # [1, 1, C, 1], HWIO
        assert np.array_equal(kernel.reshape(-1), weight.numpy().reshape(-1)), f"head {i} differs between packages"
        assert torch.equal(head.weight, weight)
    for i, conv in enumerate(loss.convs):
        layer = from_jax["AlexNet_0"][f"Conv_{i}"]
        assert np.array_equal(conv.weight.numpy(), layer["kernel"].transpose(3, 2, 0, 1))
        assert np.array_equal(conv.bias.numpy(), layer["bias"])


@pytest.fixture(scope="module")
def tid2013(tmp_path_factory) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, float]]:
    """pyiqa's five TID2013 (reference, distorted) pairs [384, 512, 3] and the original LPIPS's published values."""
    from PIL import Image

    scratch = tmp_path_factory.mktemp("pyiqa")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                           "-d", str(scratch), CALIBRATION], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"{CALIBRATION} (reference images and values) could not be fetched: {done.stderr.strip()[-300:]}")
    root = f"{CALIBRATION.replace('==', '-')}/ResultsCalibra"
    with tarfile.open(next(scratch.glob("*.tar.gz"))) as archive:
        def read(member: str) -> bytes:
            return archive.extractfile(f"{root}/{member}").read()

        rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(read("results_official.csv").decode()))}
        names = rows["Method"]
        pairs = {name: tuple(np.asarray(Image.open(io.BytesIO(read(f"{folder}/{name}"))).convert("RGB"))
                             for folder in ("ref_dir", "dist_dir")) for name in names}
    return pairs, dict(zip(names, map(float, rows["lpips"])))


def test_lpips_matches_published_values(eval_weights, tid2013):
    pairs, published = tid2013
    names = sorted(pairs)
    got = lpips_distance(np.stack([pairs[n][0] for n in names]), np.stack([pairs[n][1] for n in names]), batch=1)
    # published to 4 significant digits (0.7237 ... 0.05079)
    np.testing.assert_allclose(got, [published[n] for n in names], atol=1e-4)


# ------------------------------------------------------------------------------------------------------------- FID

def test_frechet_distance_equals_the_sqrtm_formula():
    rng = np.random.default_rng(1)
    for na, nb in ((40, 30), (5, 7)):  # more samples than dimensions, and fewer (rank-deficient covariances)
        a, b = rng.normal(size=(na, 16)), rng.normal(0.3, 1.5, size=(nb, 16))
        sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa + sb - 2 * linalg.sqrtm(sa @ sb).real)
        assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(a[:1], b)


FID_SETS = {"clean": lambda f: f, "light": lambda f: _noisy(f, 8), "heavy": lambda f: _noisy(f, 48)}


@pytest.fixture(scope="module")
def fid_features(eval_weights) -> dict[str, np.ndarray]:
    """Inception features of 2 crops, clean and with light and heavy noise (6 frames at 299 px: seconds)."""
    frames = _crops(count=2)
    features = inception_features(np.concatenate([make(frames) for make in FID_SETS.values()]))
    return dict(zip(FID_SETS, np.split(features, len(FID_SETS))))


def test_fid_is_zero_for_a_set_with_itself_and_grows_with_distortion(fid_features):
    clean, light, heavy = fid_features["clean"], fid_features["light"], fid_features["heavy"]
    assert clean.shape == (2, 2048) and np.all(clean >= 0)  # pooled relu features
    assert frechet_distance(clean, clean) == pytest.approx(0.0, abs=1e-6)
    assert 0 < frechet_distance(clean, light) < frechet_distance(clean, heavy)


def test_fid_of_frames_is_the_distance_of_their_features(fid_features):
    frames = _crops(count=2)
    expected = frechet_distance(fid_features["clean"], fid_features["light"])
    assert fid(frames, FID_SETS["light"](frames), batch=1) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="at least 2 frames"):
        fid(frames[:1], frames)


# ---------------------------------------------------------------------------------------------------- the weights

def test_missing_weights_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path))
    frames = _crops(count=2)
    with pytest.raises(WeightsUnavailable, match=ALEXNET.name) as missing:
        lpips_distance(frames, frames)
    assert "scripts/fetch_eval_weights.py" in str(missing.value) and ALEXNET.package in str(missing.value)
    with pytest.raises(WeightsUnavailable, match=INCEPTION.name):
        fid(frames, frames)
    with pytest.raises(WeightsUnavailable, match="fetch_eval_weights"):
        LPIPSLoss()
    status = weights_status()
    assert set(status) == {"LPIPS", "FID"} and all("fetch_eval_weights.py" in reason for reason in status.values())


def test_weights_status_is_none_when_present(eval_weights):
    assert weights_status() == {"LPIPS": None, "FID": None}


def test_fetching_again_keeps_the_files(eval_weights):
    before = {p.name: p.stat().st_mtime_ns for p in eval_weights.iterdir()}
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True)
    assert done.stdout.count("(present)") == 3
    assert {p.name: p.stat().st_mtime_ns for p in eval_weights.iterdir()} == before


def test_a_pickle_with_code_is_refused(tmp_path):
    bad = tmp_path / "alexnet.ckpt"
    bad.write_bytes(pickle.dumps({"AlexNet_0": print}))  # any callable outside numpy
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        perceptual.load_alexnet_params(bad)
