"""The plane hash encoder against a float64 torch reference: values, table gradients, input gradients, a fit."""
import pytest
import torch

import nerf_refs
from engine.nerf.kernels import hash_encode
from engine.nerf.kernels.hash_encode import HEAD_PLANES, PlaneHashEncoder, level_layout, plane_hash_encode

pytestmark = pytest.mark.usefixtures("taichi_cpu")


def test_level_layout_dense_coarse_hashed_fine():
    layout = level_layout(levels=6, log2_table=10, base_res=4, max_res=128)
    assert [res for _, res, _, _ in layout] == [4, 8, 16, 32, 64, 128]
    for offset, res, dense, rows in layout:
        assert dense == int((res + 1) ** 2 <= 1024)
        assert rows == ((res + 1) ** 2 if dense else 1024)
    assert [lv[2] for lv in layout] == [1, 1, 1, 0, 0, 0]
    offsets = [lv[0] for lv in layout]
    assert offsets == [0] + list(torch.tensor([lv[3] for lv in layout]).cumsum(0)[:-1].tolist())


def _encoder(features=2):
    torch.manual_seed(0)
    enc = PlaneHashEncoder(n_planes=3, levels=5, features=features, log2_table=8, base_res=3, max_res=40, init_scale=1.0)
    return enc


def _points(n=300, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g) * 1.2 - 0.1  # some outside [0, 1]: clamped
    x[:4] = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 1.0, 0.0], [-0.3, 1.4, 0.25]])
    return x


def test_forward_matches_reference():
    enc = _encoder()
    assert [lv[2] for lv in enc.levels.tolist()] == [1, 1, 1, 0, 0]  # both kinds of level are exercised
    x = _points()
    got = enc(x)
    layout = [tuple(lv) for lv in enc.levels.tolist()]
    want = nerf_refs.hash_encode(x.double(), enc.table.double(), layout, HEAD_PLANES)
    assert got.shape == (300, 3 * 5 * 2)
    # float32 coordinates times res=40 put about 3e-6 of error into the bilinear weights
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_functional_form_with_custom_axes():
    torch.manual_seed(1)
    layout = level_layout(levels=3, log2_table=6, base_res=2, max_res=20)
    rows = layout[-1][0] + layout[-1][3]
    table = torch.randn(2, rows, 3)
    axes = ((2, 0), (1, 1))  # any pairs of columns, even a degenerate diagonal plane
    x = _points(100, seed=6)
    got = plane_hash_encode(x, table, torch.tensor(layout, dtype=torch.int32), axes)
    want = nerf_refs.hash_encode(x.double(), table.double(), layout, axes)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("features", [1, 2])
@pytest.mark.parametrize("parts", [None, 0, 3], ids=["per-thread", "atomic", "3-parts"])
def test_gradients_match_reference(features, parts, monkeypatch):
    if parts is not None:  # the CUDA path (atomic scatter) and an uneven split, both run here on the CPU
        monkeypatch.setattr(hash_encode, "backward_parts", lambda device: parts)
    enc = _encoder(features)
    x = _points(seed=2)
    x = x.clamp(0.02, 0.98)  # inside the unit cube: the input gradient is defined everywhere
    x.requires_grad_(True)
    g_out = torch.randn(x.shape[0], enc.out_dim, generator=torch.Generator().manual_seed(3))
    (enc(x) * g_out).sum().backward()

    x64 = x.detach().double().requires_grad_(True)
    t64 = enc.table.detach().double().requires_grad_(True)
    layout = [tuple(lv) for lv in enc.levels.tolist()]
    (nerf_refs.hash_encode(x64, t64, layout, HEAD_PLANES) * g_out.double()).sum().backward()
    torch.testing.assert_close(enc.table.grad.double(), t64.grad, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(x.grad.double(), x64.grad, atol=2e-3, rtol=1e-4)
    assert enc.table.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_table_gradient_only_and_outside_points_have_zero_input_gradient():
    enc = _encoder()
    x = torch.tensor([[-0.5, 1.5, 2.0], [0.3, 0.4, 0.6]], requires_grad=True)
    enc(x).sum().backward()
    assert torch.all(x.grad[0] == 0)
    assert torch.all(x.grad[1] != 0)

    enc.table.grad = None
    x2 = _points(50)
    enc(x2).sum().backward()  # x2 needs no gradient: only the table gets one
    assert enc.table.grad is not None and x2.grad is None


def test_input_gradient_alone_equals_the_joint_one():
    enc = _encoder()
    x = _points(80, seed=7).clamp(0.01, 0.99).requires_grad_(True)
    enc(x).square().sum().backward()
    joint = x.grad.clone()
    x.grad = None
    enc.table.requires_grad_(False)
    enc(x).square().sum().backward()
    torch.testing.assert_close(x.grad, joint, atol=1e-5, rtol=1e-5)


def test_no_points():
    enc = _encoder()
    x = torch.zeros(0, 3, requires_grad=True)
    y = enc(x)
    y.sum().backward()
    assert y.shape == (0, enc.out_dim) and torch.all(enc.table.grad == 0)


def test_inference_out_buffer_reused_and_equal():
    enc = _encoder()
    x = _points(200, seed=4)
    ref = enc(x).detach()
    buf = torch.full((200, enc.out_dim), float("nan"))
    with torch.no_grad():
        got = enc(x, out=buf)
    assert got.data_ptr() == buf.data_ptr()
    torch.testing.assert_close(got, ref, atol=0, rtol=0)
    with pytest.raises(ValueError, match="out= is for inference"):
        enc(x, out=buf)
    wide = torch.full((200, enc.out_dim + 10), -7.0)
    with torch.no_grad():
        enc(x, out=wide, out_column=4)  # an MLP input row: 4 other columns, the encoding, 6 more
    torch.testing.assert_close(wide[:, 4 : 4 + enc.out_dim], ref, atol=0, rtol=0)
    assert torch.all(wide[:, :4] == -7) and torch.all(wide[:, 4 + enc.out_dim :] == -7)
    with pytest.raises(ValueError, match="at least"), torch.no_grad():
        enc(x, out=wide, out_column=11)


def test_specialized_inference_kernel_equals_the_generic_one():
    torch.manual_seed(3)
    generic = PlaneHashEncoder(n_planes=3, levels=3, features=1, log2_table=8, base_res=4, max_res=40, init_scale=1.0)
    special = PlaneHashEncoder(
        n_planes=3, levels=3, features=1, log2_table=8, base_res=4, max_res=40, specialize=True
    )
    special.load_state_dict(generic.state_dict())
    assert [lv[2] for lv in special.layout] == [1, 1, 0]  # dense and hashed levels both compiled in
    x = _points(300, seed=8)
    wide = torch.zeros(300, special.out_dim + 2)
    with torch.no_grad():
        want = generic(x)
        special(x, out=wide, out_column=2)
    torch.testing.assert_close(wide[:, 2:], want, atol=0, rtol=0)
    x = x.clamp(0.02, 0.98).requires_grad_(True)
    grad = torch.randn(300, special.out_dim, generator=torch.Generator().manual_seed(9))
    special(x).backward(grad)
    x_special, table_special = x.grad.clone(), special.table.grad.clone()
    x.grad = None
    generic(x).backward(grad)
    torch.testing.assert_close(x_special, x.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(table_special, generic.table.grad, atol=1e-5, rtol=1e-5)


def test_weights_round_trip_through_safetensors(tmp_path):
    from safetensors.torch import load_file, save_file

    enc = _encoder()
    save_file(enc.state_dict(), tmp_path / "enc.safetensors")
    assert set(load_file(tmp_path / "enc.safetensors")) == {"table"}  # the layout is rebuilt from the config
    other = PlaneHashEncoder(n_planes=3, levels=5, features=2, log2_table=8, base_res=3, max_res=40)
    other.load_state_dict(load_file(tmp_path / "enc.safetensors"))
    x = _points(20)
    torch.testing.assert_close(other(x), enc(x), atol=0, rtol=0)


def test_bad_arguments_name_the_fix():
    enc = _encoder()
    with pytest.raises(TypeError, match="dtype"):
        enc(_points(10).double())
    with pytest.raises(ValueError, match="axis 2"):
        enc(torch.rand(10, 2))
    with pytest.raises(ValueError, match="contiguous"):
        enc(torch.rand(3, 10).t())


@pytest.fixture
def one_torch_thread():
    """Tiny matmuls gain nothing from threads, and torch's OpenMP workers spinning between Taichi launches
    slowed this loop 10-20x on a loaded 2-core machine (GOMP_SPINCOUNT must be set before torch loads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # about 1.1 s on 2 cores: 300 steps of fitting
@pytest.mark.usefixtures("one_torch_thread")
def test_image_plane_encoder_overfits_an_image():
    """A tiny scene: a 48x48 image fitted by a one-plane encoder and a small MLP in a few hundred steps."""
    torch.manual_seed(0)
    side = 48
    v, u = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    image = torch.stack(
        [0.5 + 0.5 * torch.sin(7 * u + 3 * v), (((u - 0.5) ** 2 + (v - 0.4) ** 2) < 0.08).float(), u * v], dim=-1
    )
    coords = torch.stack([u, v], -1).reshape(-1, 2).contiguous()
    target = image.reshape(-1, 3)
    enc = PlaneHashEncoder(n_planes=1, levels=6, features=2, log2_table=10, base_res=4, max_res=48)
    mlp = torch.nn.Sequential(torch.nn.Linear(enc.out_dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    opt = torch.optim.Adam([{"params": enc.parameters(), "lr": 3e-2}, {"params": mlp.parameters(), "lr": 1e-2}])
    for _ in range(300):
        idx = torch.randint(0, coords.shape[0], (1024,))
        loss = torch.mean((torch.sigmoid(mlp(enc(coords[idx]))) - target[idx]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        fit = torch.sigmoid(mlp(enc(coords)))
    assert nerf_refs.psnr(fit, target) > 28.0
