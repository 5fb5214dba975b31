"""The rendering API: RGBA [H, W, 4] on the render device, equal to the training renderer, framing by camera."""
import numpy as np
import pytest
import torch

from engine.data.dataset import Dataset
from engine.nerf.avatar import render_rays, sample_background
from engine.nerf.render import AvatarRenderer
from engine.nerf.train import dataset_feature_windows

pytestmark = pytest.mark.usefixtures("taichi_cpu")


@pytest.fixture(scope="module")
def setup(trained_avatar, scene_data):
    data = Dataset(scene_data)
    windows = dataset_feature_windows(data, data.meta.frames)[0]
    return AvatarRenderer.load(trained_avatar, specialize=False), data, windows


def frame_args(data, windows, i):
    tracks = data.tracks
    return tracks.euler_deg[i], tracks.trans[i], tracks.blendshapes[i], tracks.blendshape_names, windows[i]


def test_render_returns_rgba_on_the_device(setup):
    renderer, data, windows = setup
    rgba = renderer.render(*frame_args(data, windows, 2), size=(24, 16))
    assert rgba.shape == (16, 24, 4) and rgba.dtype == torch.float32 and rgba.device.type == "cpu"
    assert float(rgba.min()) >= 0.0 and float(rgba.max()) <= 1.0
    assert bool((rgba[..., 3] == 1.0).all())  # composited over the plate


def test_inference_path_equals_the_training_renderer(setup):
    renderer, data, windows = setup
    renderer.max_rounds, renderer.t_thresh = 64, 1e-4  # march to the end, as the training renderer does
    try:
        rgba = renderer.render(*frame_args(data, windows, 3), size=(32, 32), zoom="max").clone()
    finally:
        renderer.max_rounds, renderer.t_thresh = 4, 1e-2
    model, size = renderer.model, 32
    v, u = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pixels = torch.stack([u.reshape(-1), v.reshape(-1)], -1).float() + 0.5
    euler, trans, shapes, names, window = frame_args(data, windows, 3)
    with torch.no_grad():
        audio = model.audio_code(torch.tensor(window)[None])[0]
        out = render_rays(model, pixels, torch.tensor(euler).float(), torch.tensor(trans).float(), audio,
                          renderer.expression_vector(shapes, names), sample_background(model.background, pixels),
                          max_samples=1024)
    torch.testing.assert_close(rgba[..., :3].reshape(-1, 3), out["rgb"].clamp(0, 1), atol=1e-4, rtol=0)
    gt = torch.tensor(data.frames([3])[0]).float() / 255
    assert float(((rgba[..., :3] - gt) ** 2).mean()) < 0.01  # and it is the trained avatar


def test_framing_moves_the_camera_not_the_resolution(setup):
    renderer, data, windows = setup
    args = frame_args(data, windows, 1)
    default = renderer.render(*args, size=(20, 20), zoom="default").clone()
    med = renderer.render(*args, size=(20, 20), zoom="med").clone()
    full = renderer.render(*args, size=(20, 20), zoom=1.0).clone()
    assert default.shape == med.shape == full.shape == (20, 20, 4)
    assert float((default - full).abs().mean()) > 0.01 and float((med - full).abs().mean()) > 0.005
    # MaxScale shows the whole dataset frame: it is the dataset frame rendered at 20 x 20 rays
    crop = renderer.buffers(20, 20, 1.0).pixels
    assert float(crop[:, 0].min()) == pytest.approx(0.8) and float(crop[:, 0].max()) == pytest.approx(31.2)


def test_buffers_are_reused_and_transparent_mode_keeps_coverage(setup):
    renderer, data, windows = setup
    args = frame_args(data, windows, 0)
    first = renderer.render(*args, size=(16, 16))
    again = renderer.render(*args, size=(16, 16))
    assert first.data_ptr() == again.data_ptr()
    clear = renderer.render(*args, size=(16, 16), zoom="max", background=False)
    assert float(clear[..., 3].min()) < 0.5 and float(clear[..., 3].max()) > 0.9  # background out, person in


def test_missing_audio_and_named_blendshapes_are_accepted(setup):
    renderer, data, windows = setup
    euler, trans, *_ = frame_args(data, windows, 0)
    rgba = renderer.render(euler, trans, {"eyeBlinkLeft": 1.0}, audio_window=None, size=(8, 8))
    assert bool(torch.isfinite(rgba).all())
    with pytest.raises(ValueError, match="audio window"):
        renderer.render(euler, trans, {}, audio_window=np.zeros((3, 3), np.float32), size=(8, 8))
    with pytest.raises(ValueError, match="framing"):
        renderer.render(euler, trans, {}, size=(8, 8), zoom="huge")


def test_bfloat16_mlps_stay_close_to_float32(trained_avatar, setup):
    _, data, windows = setup
    args = frame_args(data, windows, 2)
    exact = AvatarRenderer.load(trained_avatar, specialize=False).render(*args, size=(24, 24), zoom="med")
    fast = AvatarRenderer.load(trained_avatar, specialize=False, precision="bfloat16").render(*args, size=(24, 24),
                                                                                              zoom="med")
    assert float((exact - fast).abs().mean()) < 0.01
    with pytest.raises(ValueError, match="precision"):
        AvatarRenderer.load(trained_avatar, specialize=False, precision="int4")
