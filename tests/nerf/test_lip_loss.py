"""The lips stage's term of Eq. 15: LPIPS where its weights are installed, SSIM otherwise (said why), the choice
recorded in the avatar."""
import logging

import pytest
import torch
from scipy.ndimage import gaussian_filter

from engine import perceptual
from engine.io.checkpoint import read_metadata
from engine.nerf.losses import LIP_WEIGHTS, lip_term, ssim
from engine.nerf.train import train_nerf
from engine.nerf.train_config import NERF_FILE, nerf_preset


def patches(size=32, blur=0.0):
    """A textured patch [P, P, 3] in [0, 1] and a copy blurred by `blur` px."""
    gen = torch.Generator().manual_seed(0)
    sharp = torch.rand(size, size, 3, generator=gen)
    soft = torch.from_numpy(gaussian_filter(sharp.numpy(), (blur, blur, 0))) if blur else sharp.clone()
    return sharp, soft.float()


def test_auto_takes_lpips_where_its_weights_are(eval_weights, monkeypatch):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(eval_weights))
    name, term = lip_term("auto", 32, "cpu")
    assert name == "lpips"
    sharp, same = patches()
    assert float(term(sharp, same)) == pytest.approx(0.0, abs=1e-6)
    _, slight = patches(blur=0.7)
    _, strong = patches(blur=2.0)
    assert 0 < float(term(sharp, slight)) < float(term(sharp, strong))
    expected = perceptual.LPIPSLoss()(sharp.permute(2, 0, 1)[None], strong.permute(2, 0, 1)[None])
    assert float(term(sharp, strong)) == pytest.approx(float(expected), rel=1e-5)


def test_the_lpips_term_trains_the_patch(eval_weights, monkeypatch):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(eval_weights))
    _, term = lip_term("lpips", 32, "cpu")
    target, start = patches(blur=2.0)
    rendered = start.clone().requires_grad_(True)
    loss = term(rendered, target)
    loss.backward()
    assert rendered.grad is not None and torch.isfinite(rendered.grad).all() and rendered.grad.abs().sum() > 0
    with torch.no_grad():
        rendered -= 0.5 * rendered.grad / rendered.grad.abs().max()
    assert float(term(rendered.detach(), target)) < float(loss.detach())


def test_without_weights_auto_falls_back_to_ssim_and_says_why(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path))
    with caplog.at_level(logging.INFO, logger="engine.nerf.losses"):
        name, term = lip_term("auto", 32, "cpu")
    assert name == "ssim" and "fetch_eval_weights" in caplog.text and str(tmp_path) in caplog.text
    sharp, blurred = patches(blur=2.0)
    assert float(term(sharp, blurred)) == pytest.approx(1.0 - float(ssim(sharp, blurred)))
    with pytest.raises(perceptual.WeightsUnavailable, match="fetch_eval_weights"):
        lip_term("lpips", 32, "cpu")


def test_a_patch_too_small_for_lpips_is_ssim_or_an_error_that_says_so(eval_weights, monkeypatch):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(eval_weights))
    assert lip_term("auto", 16, "cpu")[0] == "ssim"
    assert lip_term("ssim", 64, "cpu")[0] == "ssim"
    with pytest.raises(ValueError, match="16 px .* at least 31"):
        lip_term("lpips", 16, "cpu")
    with pytest.raises(ValueError, match="'auto', 'lpips' or 'ssim'"):
        lip_term("vgg", 32, "cpu")


@pytest.mark.usefixtures("taichi_cpu")
def test_the_avatar_records_the_lip_term_it_was_trained_with(scene_data, tmp_path, eval_weights, monkeypatch):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(eval_weights))
    config = nerf_preset("test", scene_data, tmp_path / "avatar", device="cpu", progress=False, lip_patch=32,
                         lip_loss="lpips", body_steps=20, head_steps=20, lip_steps=6)
    meta = read_metadata(train_nerf(config))
    assert meta["lip_loss"] == {"term": "lpips", "weight": LIP_WEIGHTS["lpips"]}
    assert (tmp_path / "avatar" / NERF_FILE).is_file()
