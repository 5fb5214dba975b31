"""The optional tiny-cuda-nn backend of the NeRF's MLPs: the packed weights and inputs compute each MLP's function
in FullyFusedMLP's documented layout (CPU), the backend is chosen or refused with reasons, and where tinycudann and
CUDA exist, its kernel gives the torch layers' outputs and gradients (gpu marker)."""
import pytest
import torch
from torch import nn

from engine.cli import main
from engine.nerf.head import MLP, HeadField, _mlp
from engine.nerf.tcnn import (
    TcnnUnavailable, fuse_mlps, fused_param_count, linears, pack_inputs, pack_params, resolve_backend,
    unavailable_reason, unfusable_reason, unfuse_mlps, zero_hidden_biases,
)
from engine.nerf.train_config import nerf_preset
from engine.nerf.upper_body import UpperBodyField

PRESETS = ("test", "cpu", "gpu")


def preset_fields(preset: str) -> list[nn.Module]:
    dims = nerf_preset(preset, ".", ".").dims
    return [HeadField(dims, n_expression=7, feature_dim=80, window_frames=16, group=2), UpperBodyField(dims)]


def preset_mlps(preset: str) -> dict[str, MLP]:
    """'head.sigma_net', 'body.colour_net', ... of the preset's fields."""
    return {f"{part}.{name}": module for part, field in zip(("head", "body"), preset_fields(preset))
            for name, module in field.named_modules() if isinstance(module, MLP)}


def fully_fused_reference(flat: torch.Tensor, x: torch.Tensor, width: int, hidden_layers: int, outputs: int):
    """FullyFusedMLP from its layout alone: row-major [width, inputs], (hidden_layers - 1) x [width, width],
    [outputs rounded up to 16, width]; ReLU between; no biases."""
    offset = 0

    def matrix(rows, cols):
        nonlocal offset
        block = flat[offset:offset + rows * cols].reshape(rows, cols)
        offset += rows * cols
        return block

    h = torch.relu(x @ matrix(width, x.shape[1]).T)
    for _ in range(hidden_layers - 1):
        h = torch.relu(h @ matrix(width, width).T)
    out = h @ matrix(-(-outputs // 16) * 16, width).T
    assert offset == flat.numel(), "the packed parameters are longer than the layout"
    return out[:, :outputs]


def fused_by_reference(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    layers = linears(mlp)
    out = fully_fused_reference(pack_params(mlp), pack_inputs(mlp, x), layers[0].out_features, len(layers) - 1,
                                layers[-1].out_features)
    return out if layers[-1].bias is None else out + layers[-1].bias


@pytest.mark.parametrize("preset", PRESETS)
def test_every_mlp_of_each_preset_fits_the_fused_kernel(preset):
    mlps = preset_mlps(preset)
    assert len(mlps) == 6  # head: two attentions, sigma, colour; body: deform, colour
    assert {name: unfusable_reason(mlp) for name, mlp in mlps.items()} == dict.fromkeys(mlps)


@pytest.mark.parametrize("name", ["head.sigma_net", "head.colour_net", "head.audio_attention", "body.deform_net"])
def test_packed_weights_compute_the_mlp_in_the_fused_layout(name):
    torch.manual_seed(0)
    mlp = preset_mlps("gpu")[name].double()
    with torch.no_grad():
        for layer in linears(mlp):  # nonzero biases everywhere, so a bias dropped or misplaced shows
            if layer.bias is not None:
                layer.bias.uniform_(-0.5, 0.5)
    zero_hidden_biases(mlp)
    x = torch.randn(40, linears(mlp)[0].in_features, dtype=torch.float64)
    assert pack_params(mlp).numel() == fused_param_count(mlp)
    assert pack_inputs(mlp, x).shape[1] % 16 == 0
    torch.testing.assert_close(fused_by_reference(mlp, x), mlp(x), rtol=1e-12, atol=1e-12)


def test_gradients_of_the_packed_weights_reach_the_layers():
    torch.manual_seed(1)
    mlp = _mlp([21, 16, 16, 5]).double()
    zero_hidden_biases(mlp)
    x = torch.randn(30, 21, dtype=torch.float64)
    weights = torch.randn(30, 5, dtype=torch.float64)
    grads = []
    for run in (lambda: mlp(x), lambda: fused_by_reference(mlp, x)):
        mlp.zero_grad()
        (run() * weights).sum().backward()
        grads.append([p.grad.clone() for layer in (linears(mlp)[0], linears(mlp)[-1]) for p in layer.parameters()])
    for torch_grad, packed_grad in zip(*grads):
        torch.testing.assert_close(packed_grad, torch_grad)


def test_shapes_the_kernel_cannot_take_are_named():
    assert "16, 32, 64, 128" in unfusable_reason(_mlp([10, 48, 48, 3]))
    assert "hidden widths [16, 32]" in unfusable_reason(_mlp([10, 32, 16, 3]))
    assert "Tanh" in unfusable_reason(nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)))
    assert "with a hidden layer" in unfusable_reason(_mlp([4, 2]))


def test_mlps_compute_with_torch_on_the_cpu_even_when_fused():
    mlp = _mlp([6, 16, 2])

    def refuse(*_):
        raise AssertionError("the fused kernel ran on CPU tensors")

    mlp.fused = refuse
    x = torch.randn(5, 6)
    torch.testing.assert_close(mlp(x), nn.Sequential.forward(mlp, x))
    assert list(mlp.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # saved avatars load unchanged


def test_backend_choice_on_a_machine_without_tiny_cuda_nn():
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == "torch" and resolve_backend("torch", cpu) == "torch"
    with pytest.raises(TcnnUnavailable, match="CPU"):
        resolve_backend("tcnn", cpu)


@pytest.mark.skipif(unavailable_reason() is None, reason="tiny-cuda-nn runs here")
def test_asking_for_tcnn_where_it_cannot_run_fails_before_training(tmp_path, capsys):
    code = main(["train", str(tmp_path / "data"), "-o", str(tmp_path / "avatar"), "--preset", "test",
                 "--nerf-mlps", "tcnn"])
    assert code == 2
    assert f"--nerf-mlps tcnn: {unavailable_reason()}" in capsys.readouterr().err
    assert not (tmp_path / "avatar").exists()  # refused before the motion stage wrote anything


@pytest.mark.gpu
@pytest.mark.skipif(unavailable_reason() is not None, reason=f"tiny-cuda-nn cannot run here: {unavailable_reason()}")
@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_tiny_cuda_nn_gives_the_same_function(preset):
    torch.manual_seed(0)
    fields = [field.cuda() for field in preset_fields(preset)]
    for field in fields:
        fused = fuse_mlps(field)  # checks outputs and first-layer gradients on random inputs itself
        assert len(fused) == sum(isinstance(m, MLP) for m in field.modules())
    mlp = fields[0].sigma_net
    x = torch.randn(3000, linears(mlp)[0].in_features, device="cuda", requires_grad=True)  # not a multiple of 128
    weights = torch.randn(3000, linears(mlp)[-1].out_features, device="cuda")
    results = []
    for run in (lambda: nn.Sequential.forward(mlp, x), lambda: mlp(x)):
        mlp.zero_grad(set_to_none=True)
        x.grad = None
        out = run()
        (out * weights).sum().backward()
        layers = linears(mlp)
        trained = [layer.weight for layer in layers] + [layers[0].bias, layers[-1].bias]  # hidden biases stay 0
        results.append([out.detach(), x.grad.clone(), *(p.grad.clone() for p in trained)])
    for reference, got in zip(*results):
        scale = reference.abs().max()
        assert float((got - reference).abs().max()) <= 0.02 * float(scale)
    unfuse_mlps(fields[0])
    assert mlp.fused is None
