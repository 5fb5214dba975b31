"""Optional tiny-cuda-nn backend for the renderer's MLPs while training on CUDA (`tinycudann` installed).
A light module (torch only): `syncanim train` checks for tiny-cuda-nn before anything loads Taichi.

The torch layers (`engine.nerf.head.MLP`) keep the weights, so the optimiser, the checkpoints and the renderer see
the same parameters whichever backend trained them. On each call the fused path packs those weights into
tiny-cuda-nn's parameter layout and runs its FullyFusedMLP kernel with them; gradients flow back to the layers.

That kernel's layout: one row-major matrix per layer, [width, inputs padded to 16], [width, width] per further
hidden layer, [outputs padded to 16, width]; no biases; half precision. So the first layer's bias rides on a
constant-1 input column, the output layer's bias is added after the kernel, and biases of the layers in between
cannot be represented: a fused MLP trains with them held at zero.
"""
from __future__ import annotations

import copy
import logging
from typing import Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

ALIGN = 16
"""FullyFusedMLP's input and output widths are multiples of this (16x16x16 tensor-core tiles)."""
WIDTHS = (16, 32, 64, 128)
"""Hidden widths FullyFusedMLP is compiled for."""
INSTALL = ("install tiny-cuda-nn's torch bindings on a CUDA machine: "
           "pip install git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch")

Backend = Literal["auto", "torch", "tcnn"]


class TcnnUnavailable(RuntimeError):
    """tiny-cuda-nn cannot run these MLPs here (not installed, no CUDA, or a shape its kernel does not take)."""


def _padded(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def unavailable_reason() -> str | None:
    """None when tiny-cuda-nn can run here, else why not."""
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        import tinycudann  # noqa: F401
    except (ImportError, OSError) as error:  # its import raises OSError where no compiled extension fits the GPU
        return f"tinycudann does not import ({error}); {INSTALL}"
    return None


def linears(mlp: nn.Sequential) -> list[nn.Linear]:
    """The Linear layers of an MLP (Linear, ReLU, Linear, ... , Linear)."""
    return [layer for layer in mlp if isinstance(layer, nn.Linear)]


def unfusable_reason(mlp: nn.Sequential) -> str | None:
    """None when FullyFusedMLP computes this MLP's function (biases between hidden layers zeroed), else why not."""
    layers = list(mlp)
    kinds = [type(layer) for layer in layers]
    expected = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(len(layers))]
    if kinds != expected or len(layers) < 3:
        return f"layers {[k.__name__ for k in kinds]} are not Linear, ReLU, ..., Linear with a hidden layer"
    widths = {layer.out_features for layer in linears(mlp)[:-1]}
    if len(widths) != 1 or next(iter(widths)) not in WIDTHS:
        return f"hidden widths {sorted(widths)}: FullyFusedMLP needs one width among {WIDTHS}"
    return None


def fused_input_width(mlp: nn.Sequential) -> int:
    """Columns of `pack_inputs`: the inputs, the bias column, zeros up to a multiple of 16."""
    first = linears(mlp)[0]
    return _padded(first.in_features + (first.bias is not None))


def fused_param_count(mlp: nn.Sequential) -> int:
    """Length of `pack_params(mlp)`, from the shapes alone."""
    layers = linears(mlp)
    width = layers[0].out_features
    return width * fused_input_width(mlp) + width * width * (len(layers) - 2) + _padded(layers[-1].out_features) * width


def _with_bias_column(mlp: nn.Sequential, matrix: torch.Tensor, bias_column: torch.Tensor) -> torch.Tensor:
    # [R, I] -> [R, fused_input_width]: the bias column when the first layer has a bias, then zeros.
    columns = [matrix, bias_column] if linears(mlp)[0].bias is not None else [matrix]
    used = sum(c.shape[1] for c in columns)
    return torch.cat([*columns, matrix.new_zeros(matrix.shape[0], fused_input_width(mlp) - used)], 1)


def pack_inputs(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """x [N, I] -> [N, fused_input_width]: a constant-1 column for the first layer's bias, then zeros."""
    return _with_bias_column(mlp, x, x.new_ones(x.shape[0], 1))


def pack_params(mlp: nn.Sequential) -> torch.Tensor:
    """The MLP's weights in FullyFusedMLP's flat layout (float32, differentiable); biases of the layers between the
    first and the last are not part of it."""
    layers = linears(mlp)
    first, last = layers[0], layers[-1]
    bias = first.bias[:, None] if first.bias is not None else None
    blocks = [_with_bias_column(mlp, first.weight, bias), *(layer.weight for layer in layers[1:-1])]
    rows = _padded(last.out_features) - last.out_features
    blocks.append(torch.cat([last.weight, last.weight.new_zeros(rows, last.in_features)]))
    return torch.cat([block.reshape(-1) for block in blocks])


class FusedMLP:
    """tiny-cuda-nn's FullyFusedMLP for one MLP's shape, called with that MLP's current weights.

    Deliberately not an nn.Module: set as `MLP.fused`, it adds no parameters and no state-dict entries."""

    def __init__(self, mlp: nn.Sequential) -> None:
        import tinycudann

        reason = unfusable_reason(mlp)
        if reason is not None:
            raise TcnnUnavailable(f"FullyFusedMLP cannot run this MLP: {reason}")
        layers = linears(mlp)
        self.network = tinycudann.Network(
            n_input_dims=fused_input_width(mlp),
            n_output_dims=layers[-1].out_features,
            network_config={"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
                            "n_neurons": layers[0].out_features, "n_hidden_layers": len(layers) - 1},
        )
        expected = fused_param_count(mlp)
        if self.network.params.numel() != expected:  # a tiny-cuda-nn whose layout differs from the one packed here
            raise TcnnUnavailable(f"tinycudann's FullyFusedMLP holds {self.network.params.numel()} parameters for "
                                  f"this shape, the packed layout {expected}; use --nerf-mlps torch")

    def __call__(self, mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        params = {"params": pack_params(mlp)}
        out = torch.func.functional_call(self.network, params, (pack_inputs(mlp, x),)).float()
        bias = linears(mlp)[-1].bias
        return out if bias is None else out + bias


def zero_hidden_biases(mlp: nn.Sequential) -> None:
    """Set the biases of the layers between the first and the last to zero (FullyFusedMLP has none)."""
    with torch.no_grad():
        for layer in linears(mlp)[1:-1]:
            if layer.bias is not None:
                layer.bias.zero_()


def mismatch(mlp: nn.Sequential, fused: FusedMLP, rows: int = 512, tolerance: float = 0.02) -> str | None:
    """None when the fused kernel gives the torch layers' outputs and weight gradients (within half precision) on
    random inputs, for `mlp` with its hidden biases at zero; else what differs. Checked on the machine itself,
    so a tiny-cuda-nn whose layout or conventions differ from the ones packed here is never trained with."""
    reference = copy.deepcopy(mlp).requires_grad_(True)
    reference.fused = None
    zero_hidden_biases(reference)
    device = next(reference.parameters()).device
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(rows, linears(reference)[0].in_features, device=device, generator=generator)
    weights = torch.randn(rows, linears(reference)[-1].out_features, device=device, generator=generator)
    results = []
    for run in (lambda: nn.Sequential.forward(reference, x), lambda: fused(reference, x)):
        reference.zero_grad(set_to_none=True)
        out = run()
        (out * weights).sum().backward()
        results.append((out.detach(), linears(reference)[0].weight.grad.clone()))
    for what, ref, got in zip(("outputs", "first-layer weight gradients"), *results):
        error = float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-6))
        if not error <= tolerance:  # also catches NaN
            return f"{what} differ from torch's by {error:.3g} of their largest value (at most {tolerance})"
    return None


def fuse_mlps(model: nn.Module) -> list[str]:
    """Hand every MLP of `model` that FullyFusedMLP can compute to it, after checking on this machine that it
    computes the same function; returns their names. Raises TcnnUnavailable (and changes nothing) when a check
    fails. Biases between hidden layers are set to zero. Undo with `unfuse_mlps`."""
    from engine.nerf.head import MLP

    kernels = {}
    for name, module in model.named_modules():
        if not isinstance(module, MLP):
            continue
        reason = unfusable_reason(module)
        if reason is not None:
            log.warning("MLP %s stays on torch: %s", name, reason)
            continue
        try:
            kernel = FusedMLP(module)
            reason = mismatch(module, kernel)
        except RuntimeError as error:  # tiny-cuda-nn's own refusals (e.g. a GPU its kernels were not built for)
            raise TcnnUnavailable(f"tiny-cuda-nn cannot run MLP {name}: {error}") from error
        if reason is not None:
            raise TcnnUnavailable(f"tiny-cuda-nn's FullyFusedMLP does not compute MLP {name}'s function: {reason}")
        kernels[name] = (module, kernel)
    for name, (module, kernel) in kernels.items():
        if any(layer.bias is not None and layer.bias.abs().max() > 0 for layer in linears(module)[1:-1]):
            log.warning("MLP %s: biases between hidden layers set to zero (tiny-cuda-nn's kernel has none)", name)
        zero_hidden_biases(module)
        module.fused = kernel
    return list(kernels)


def unfuse_mlps(model: nn.Module) -> None:
    """Every MLP of `model` computes with torch again."""
    from engine.nerf.head import MLP

    for module in model.modules():
        if isinstance(module, MLP):
            module.fused = None


def require_tcnn() -> None:
    """Raise TcnnUnavailable (naming why and the fix) unless tiny-cuda-nn can run here."""
    reason = unavailable_reason()
    if reason is not None:
        raise TcnnUnavailable(f"--nerf-mlps tcnn: {reason}")


def resolve_backend(requested: Backend, device: torch.device) -> Literal["torch", "tcnn"]:
    """'auto' -> 'tcnn' when training on CUDA and tinycudann imports, else 'torch'; 'tcnn' where it cannot run is
    an error naming why."""
    if requested == "torch":
        return "torch"
    reason = "training runs on the CPU" if device.type != "cuda" else unavailable_reason()
    if reason is None:
        return "tcnn"
    if requested == "tcnn":
        raise TcnnUnavailable(f"--nerf-mlps tcnn: {reason}")
    return "torch"
