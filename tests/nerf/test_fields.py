"""Head and upper-body fields: shapes, gradients to every trained part, the per-frame folds the renderer uses,
and an upper body that moves with the head pose."""
import pytest
import torch

from engine.nerf.camera import Intrinsics, euler_to_matrix
from engine.nerf.head import HeadField
from engine.nerf.train_config import NerfDims
from engine.nerf.upper_body import UpperBodyField

pytestmark = pytest.mark.usefixtures("taichi_cpu")

DIMS = NerfDims(head_levels=4, head_log2_table=8, head_base_res=4, head_max_res=32, head_hidden=16, geo_features=4,
                color_hidden=16, audio_dim=6, body_levels=4, body_log2_table=8, body_base_res=4, body_max_res=32,
                body_hidden=16, pixel_freqs=2, anchor_freqs=2)
CAMERA = Intrinsics(focal_px=40.0, cx=24.0, cy=24.0, size=48)


def head_field():
    torch.manual_seed(0)
    return HeadField(DIMS, n_expression=3, feature_dim=5, window_frames=8, group=2)


def test_head_field_shapes_and_gradients():
    field = head_field()
    with torch.no_grad():
        field.encoder.table.uniform_(-0.5, 0.5)  # the default near-zero init would make encoder gradients tiny
    window = torch.randn(1, 8, 5)
    audio = field.audio_net(window)[0]
    assert audio.shape == (DIMS.audio_dim,)
    x = torch.rand(50, 3)
    sigma, rgb, v_aud = field(x, audio, torch.rand(3))
    assert sigma.shape == (50,) and rgb.shape == (50, 3) and v_aud.shape == (50, DIMS.audio_dim)
    assert bool((sigma > 0).all()) and bool((rgb >= -0.001).all() and (rgb <= 1.001).all())
    (sigma.sum() + rgb.sum()).backward()
    for name in ("encoder.table", "audio_attention.0.weight", "expression_attention.0.weight", "sigma_net.0.weight",
                 "colour_net.0.weight", "audio_net.frame_net.0.weight", "audio_net.mix.weight"):
        grad = dict(field.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name


def test_region_attention_folds_into_the_first_sigma_layer():
    field = head_field()
    x, audio, expression = torch.rand(20, 3), torch.randn(DIMS.audio_dim), torch.rand(3)
    with torch.no_grad():
        enc = field.encoder(x)
        v_aud, v_exp = field.attention(enc)
        layer = field.sigma_net[0]
        expected = layer(torch.cat([enc, audio * v_aud, expression * v_exp], -1))
        folded = torch.cat([enc, v_aud, v_exp], -1) @ field.frame_weights(audio, expression).T + layer.bias
    torch.testing.assert_close(folded, expected, atol=1e-5, rtol=1e-5)


def test_expression_and_audio_change_the_head():
    field = head_field()
    x = torch.rand(30, 3)
    with torch.no_grad():
        field.encoder.table.uniform_(-1, 1)
        base = field(x, torch.zeros(DIMS.audio_dim), torch.zeros(3))[0]
        moved_audio = field(x, torch.ones(DIMS.audio_dim), torch.zeros(3))[0]
        moved_expr = field(x, torch.zeros(DIMS.audio_dim), torch.ones(3))[0]
    assert not torch.allclose(base, moved_audio) and not torch.allclose(base, moved_expr)


def body_field():
    torch.manual_seed(0)
    field = UpperBodyField(DIMS)
    with torch.no_grad():
        field.encoder.table.uniform_(-1, 1)
        field.deform_net[-1].weight.normal_(0, 0.1)  # a warp as after training (it starts as the identity)
    return field


def condition(field, trans_x=0.0, yaw=0.0):
    rotation = euler_to_matrix(torch.tensor([0.0, 0.0, yaw]))
    return field.condition(rotation, torch.tensor([trans_x, 0.0, -45.0]), CAMERA)


def test_upper_body_shapes_and_gradients_reach_grid_nets_and_anchors():
    field = body_field()
    pixels = torch.rand(64, 2)
    alpha, rgb = field(pixels, condition(field, 1.0))
    assert alpha.shape == (64,) and rgb.shape == (64, 3)
    (alpha.sum() + rgb.sum()).backward()
    for name in ("anchors", "encoder.table", "deform_net.0.weight", "colour_net.0.weight"):
        grad = dict(field.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name


def test_head_pose_moves_the_projected_anchors_and_the_upper_body_pixels():
    field = body_field()
    anchors_u = {}
    for x in (-3.0, 3.0):
        code = condition(field, x)
        anchors_u[x] = code[0:6:2]  # the code starts with the raw (u, v) of the three anchors in [-1, 1]
    assert bool((anchors_u[3.0] > anchors_u[-3.0] + 0.05).all())  # moving the head right moves every anchor right
    pixels = torch.rand(100, 2)
    with torch.no_grad():
        left, _ = field.warp(pixels, condition(field, -3.0))
        right, _ = field.warp(pixels, condition(field, 3.0))
        same, _ = field.warp(pixels, condition(field, 3.0))
        image_left = field(pixels, condition(field, -3.0, yaw=-10))[1]
        image_right = field(pixels, condition(field, 3.0, yaw=10))[1]
    assert float((left - right).abs().max()) > 1e-3
    torch.testing.assert_close(same, right)
    assert float((image_left - image_right).abs().max()) > 1e-3


def test_pose_condition_folds_into_first_biases():
    field = body_field()
    pixels, code = torch.rand(10, 2), condition(field, 2.0)
    deform_bias, colour_bias = field.frame_biases(code)
    pixel_code = field.warp(pixels, code)[1]
    with torch.no_grad():
        layer = field.deform_net[0]
        expected = layer(torch.cat([pixel_code, code.expand(10, -1)], -1))
        folded = pixel_code @ layer.weight[:, : field.pixel_dim].T + deform_bias
    torch.testing.assert_close(folded, expected, atol=1e-5, rtol=1e-5)


def test_tighten_grid_keeps_dense_cells_and_their_neighbours_only():
    import math

    from engine.nerf.avatar import AvatarModel, AvatarSpec, tighten_grid
    from engine.nerf.camera import FramingRange

    spec = AvatarSpec(dims=DIMS, expression=("a",), feature_dim=5, window_frames=8, group=2, extractor="mel",
                      intrinsics=CAMERA, framing=FramingRange((0.5, 0.5), 0.5), head_box=(-8, -8, -8, 8, 8, 8),
                      grid_resolution=8, steps_per_diagonal=64)
    model = AvatarModel(spec)
    g = model.grid.resolution
    model.grid.density.fill_(0.01)
    centre = 3 + g * (3 + g * 3)
    model.grid.density[centre] = 10 * -math.log(1 - 0.2) / spec.dt
    model.grid.density[0] = 0.5 * -math.log(1 - 0.2) / spec.dt  # below the threshold
    fraction = tighten_grid(model, 0.2)
    assert fraction == pytest.approx(27 / g**3)  # the dense cell and its 26 neighbours
    assert model.grid.occupied[centre] == 1 and model.grid.occupied[0] == 0
