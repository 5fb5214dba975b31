"""The rendering API: RGBA [H, W, 4] on the render device, equal to the training renderer, framing by camera."""
import numpy as np
import pytest
import torch

from engine.audio.settings import AudioSettings
from engine.data.dataset import Dataset
from engine.nerf.avatar import render_rays, sample_background
from engine.nerf.render import AvatarRenderer
from engine.nerf.train import dataset_feature_windows

pytestmark = pytest.mark.usefixtures("taichi_cpu")


@pytest.fixture(scope="module")
def setup(trained_avatar, scene_data):
    data = Dataset(scene_data)
    windows = dataset_feature_windows(data, AudioSettings(), data.meta.frames)[0][0]
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


@pytest.fixture(scope="module")
def expression_setup(expression_avatar, tiny_data):
    data = Dataset(tiny_data)  # the recording it learnt
    windows = dataset_feature_windows(data, AudioSettings(), data.meta.frames)[0][0]
    return AvatarRenderer.load(expression_avatar, specialize=False), data, windows


@pytest.mark.slow
@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.02, -0.03)])
@pytest.mark.parametrize("which", ["setup", "expression_setup"])
def test_inference_path_equals_the_training_renderer(which, shift, request):
    renderer, data, windows = request.getfixturevalue(which)
    renderer.max_rounds, renderer.t_thresh = 64, 1e-4  # march to the end, as the training renderer does
    try:
        rgba = renderer.render(*frame_args(data, windows, 3), size=(32, 32), zoom="max", torso_shift=shift).clone()
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
                          max_samples=1024, torso_shift=torch.tensor(shift))
    torch.testing.assert_close(rgba[..., :3].reshape(-1, 3), out["rgb"].clamp(0, 1), atol=1e-4, rtol=0)
    if not any(shift):
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


def test_a_head_without_audio_input_follows_the_expression_and_ignores_the_window(expression_setup):
    renderer, data, windows = expression_setup
    assert not renderer.model.head.hears and renderer.model.head.audio_net is None
    euler, trans, shapes, names, window = frame_args(data, windows, 0)
    heard = renderer.render(euler, trans, shapes, names, window, size=(16, 16)).clone()
    torch.testing.assert_close(heard, renderer.render(euler, trans, shapes, names, None, size=(16, 16)))
    torch.testing.assert_close(heard, renderer.render(euler, trans, shapes, names, np.zeros((3, 3)), size=(16, 16)))
    other = renderer.render(euler, trans, 1.0 - np.asarray(shapes), names, window, size=(16, 16))
    assert float((other - heard).abs().max()) > 1e-3


def test_channels_not_given_take_the_training_mean(expression_setup):
    renderer, *_ = expression_setup
    mean = renderer.model.head.expression_mean
    torch.testing.assert_close(renderer.expression_vector({}, None), mean)
    given = renderer.expression_vector({"jawOpen": 0.9}, None)
    jaw = renderer.expression_names.index("jawOpen")
    assert float(given[jaw]) == pytest.approx(0.9) and torch.equal(given[:jaw], mean[:jaw])


def test_a_torso_shift_moves_the_shoulders_and_leaves_the_head_alone(setup):
    renderer, data, windows = setup
    args = frame_args(data, windows, 2)
    plain = renderer.render(*args, size=(32, 32), zoom=1.0).clone()
    # (the head's march may sum in another order from call to call: equal up to float rounding)
    torch.testing.assert_close(plain, renderer.render(*args, size=(32, 32), zoom=1.0, torso_shift=(0.0, 0.0)),
                               atol=1e-5, rtol=0)
    chin = int(32 * _chin_row(renderer, args) - 0.5)  # the last row whose centre is above the chin
    for shift in ((0.0, 0.03), (0.03, 0.0)):  # a breath in; a turn of the torso
        moved = renderer.render(*args, size=(32, 32), zoom=1.0, torso_shift=shift).clone()
        rows = (moved - plain).abs().amax(dim=(1, 2))
        assert float(rows[:chin].max()) < 1e-5  # the head and the neck under the chin are untouched
        assert float(rows[chin:].max()) > 0.005  # the upper body moved (the untouched rows: below 1e-5)
    for bad in ((float("nan"), 0.0), (0.01,)):
        with pytest.raises(ValueError, match="torso_shift"):
            renderer.render(*args, size=(8, 8), torso_shift=bad)


def _chin_row(renderer, args):
    """The chin anchor's image row, a fraction of the frame's height, at this frame's pose."""
    from engine.nerf.camera import euler_to_matrix, project

    with torch.no_grad():
        rotation = euler_to_matrix(torch.tensor(np.asarray(args[0], np.float32)))
        anchor = renderer.model.body.anchors[0] @ rotation.T + torch.tensor(np.asarray(args[1], np.float32))
        return float(project(anchor, renderer.spec.intrinsics)[1])


def test_bfloat16_mlps_stay_close_to_float32(trained_avatar, setup):
    _, data, windows = setup
    args = frame_args(data, windows, 2)
    exact = AvatarRenderer.load(trained_avatar, specialize=False).render(*args, size=(24, 24), zoom="med")
    fast = AvatarRenderer.load(trained_avatar, specialize=False, precision="bfloat16").render(*args, size=(24, 24),
                                                                                              zoom="med")
    assert float((exact - fast).abs().mean()) < 0.01
    with pytest.raises(ValueError, match="precision"):
        AvatarRenderer.load(trained_avatar, specialize=False, precision="int4")


def test_head_scale_one_is_the_exact_path_and_half_is_close(trained_avatar, setup):
    _, data, windows = setup
    args = frame_args(data, windows, 3)
    exact = AvatarRenderer.load(trained_avatar, specialize=False)
    one = AvatarRenderer.load(trained_avatar, specialize=False, head_scale=1.0)
    half = AvatarRenderer.load(trained_avatar, specialize=False, head_scale=0.5)
    reference = exact.render(*args, size=(32, 32), zoom="med").clone()
    # the same path: the head's rays are the output's (ray packing order may vary between launches on several
    # threads, so the equality is to float rounding)
    torch.testing.assert_close(one.render(*args, size=(32, 32), zoom="med"), reference, atol=1e-6, rtol=0)
    full = one.buffers(32, 32, 0.5)
    assert one.head_size(32, 32) == (32, 32) and full.head_up is None and full.head_dirs is full.dirs
    coarse = half.render(*args, size=(32, 32), zoom="med").clone()
    assert half.head_size(32, 32) == (16, 16) and half.buffers(32, 32, 0.5).volume.accum.shape[0] == 16 * 16
    difference = (coarse - reference).abs()
    assert 0.0 < float(difference.mean()) < 0.02  # a blurrier head, the same picture
    assert bool((coarse[..., 3] == 1.0).all())
    # the upper body is not resampled: where the head is absent, the frames agree exactly
    no_head = half.buffers(32, 32, 0.5).head_up[:, 4].view(32, 32) == 0
    assert bool(no_head.any()) and float(difference[no_head].max()) < 1e-6
    # odd sizes and aspect ratios round the head's grid; transparent mode keeps the coverage in [0, 1]
    clear = half.render(*args, size=(25, 17), zoom="default", background=False)
    assert half.head_size(25, 17) == (12, 8) and clear.shape == (17, 25, 4)
    assert float(clear[..., 3].min()) >= 0.0 and float(clear[..., 3].max()) <= 1.0


def test_head_upsampling_aligns_pixel_centres():
    from engine.nerf.render import FrameBuffers

    buf = FrameBuffers.__new__(FrameBuffers)
    buf.width, buf.height, buf.head_width, buf.head_height = 10, 6, 5, 3
    buf.head_up = torch.empty(60, 5)
    coarse = torch.rand(15, 5)
    fine = AvatarRenderer._upsample_head(buf, coarse)
    want = torch.nn.functional.interpolate(coarse.view(1, 3, 5, 5).permute(0, 3, 1, 2), size=(6, 10),
                                           mode="bilinear", align_corners=False)
    torch.testing.assert_close(fine.view(6, 10, 5), want[0].permute(1, 2, 0))
    assert fine.data_ptr() == buf.head_up.data_ptr()
    # both grids tile the same crop: a value linear in the crop's x (each coarse pixel holding its centre's x)
    # comes back as each fine pixel's own centre x, inside the half-pixel border where it is held constant
    ramp = ((torch.arange(5) + 0.5) / 5).repeat(3)[:, None].expand(15, 5).contiguous()
    fine = AvatarRenderer._upsample_head(buf, ramp).view(6, 10, 5)
    torch.testing.assert_close(fine[:, 1:-1, 0], ((torch.arange(1, 9) + 0.5) / 10).expand(6, 8))


def test_auto_settings_pick_the_fast_path_per_device(trained_avatar):
    from engine.nerf.render import AUTO_HEAD_PIXELS, resolve_head_scale, resolve_precision

    assert resolve_head_scale("auto", 128, 128, "cpu") == 1.0 and AUTO_HEAD_PIXELS == 128 * 128
    assert resolve_head_scale("auto", 256, 256, "cpu") == 0.5
    assert resolve_head_scale("auto", 512, 512, "cuda") == 1.0 and resolve_head_scale(0.75, 8, 8, "cpu") == 0.75
    assert resolve_precision("auto", "cuda") == "float32" and resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("auto", "cpu") == ("bfloat16" if torch.ops.mkldnn._is_mkldnn_bf16_supported()
                                                else "float32")
    renderer = AvatarRenderer.load(trained_avatar, specialize=False, precision="auto", head_scale="auto")
    assert renderer.head_size(256, 256) == (128, 128) and renderer.precision == resolve_precision("auto", "cpu")
    for bad in (0.0, 1.5, "half"):
        with pytest.raises(ValueError, match="head_scale"):
            AvatarRenderer.load(trained_avatar, specialize=False, head_scale=bad)


def test_low_precision_rounds_are_padded_to_recurring_sizes():
    from engine.nerf.render import padded_rows

    sizes = {padded_rows(m, 10**6) for m in range(1, 200_000, 7)}
    assert len(sizes) < 150  # a few per octave, so oneDNN's per-shape primitives are reused frame to frame
    for m in (1, 255, 256, 257, 4095, 4097, 50_000, 199_999):
        assert m <= padded_rows(m, 10**6) <= max(m + 255, m * 1.125)
    assert padded_rows(5000, 5001) == 5001 and padded_rows(300, 300) == 300  # never past the buffers
