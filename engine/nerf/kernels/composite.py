"""Volume compositing of packed ray samples: Taichi forward/backward kernels and a torch autograd Function.

Per ray, samples k = 0..n-1 (ordered by t) give alpha_k = 1 - exp(-sigma_k dt_k), weight w_k = T_k alpha_k with
transmittance T_k = prod_{j<k} (1 - alpha_j); the ray's result is [R, 5] = (sum w c, sum w t, sum w): RGB
(premultiplied; add (1 - opacity) * background), depth, opacity. A sample is skipped once T < t_thresh (early
termination); the backward pass applies the same rule, so it is the exact gradient of what the forward computed.

The inference path accumulates into a caller-owned [R, 5] buffer, so several march/evaluate/composite rounds
(rays that are still transparent march on) add up without allocations.
"""
import taichi as ti
import torch

from engine.nerf.kernels import runtime
from engine.nerf.kernels.common import F32, I32, F32x2, check_tensor
from engine.nerf.kernels.launch import fast_launch

WHERE = "engine/nerf/kernels/composite.py"

ACCUM_WIDTH = 5
"""Columns of the per-ray result: r, g, b, depth, opacity."""


@fast_launch
@ti.kernel
def _forward_kernel(sigma: F32, rgb: F32x2, t_dt: F32x2, ray_offset: I32, ray_count: I32, accum: F32x2, t_thresh: ti.f32):
    for r in range(ray_offset.shape[0]):
        n = ray_count[r]
        if n > 0:
            base = ray_offset[r]
            color = ti.math.vec3(accum[r, 0], accum[r, 1], accum[r, 2])
            depth = accum[r, 3]
            opacity = accum[r, 4]
            trans = 1.0 - opacity
            k = 0
            while k < n and trans >= t_thresh:
                i = base + k
                alpha = 1.0 - ti.exp(-sigma[i] * t_dt[i, 1])
                w = alpha * trans
                color += w * ti.math.vec3(rgb[i, 0], rgb[i, 1], rgb[i, 2])
                depth += w * t_dt[i, 0]
                opacity += w
                trans *= 1.0 - alpha
                k += 1
            accum[r, 0], accum[r, 1], accum[r, 2] = color[0], color[1], color[2]
            accum[r, 3] = depth
            accum[r, 4] = opacity


@fast_launch
@ti.kernel
def _backward_kernel(
    sigma: F32,
    rgb: F32x2,
    t_dt: F32x2,
    ray_offset: I32,
    ray_count: I32,
    result: F32x2,
    grad_result: F32x2,
    t_thresh: ti.f32,
    grad_sigma: F32,
    grad_rgb: F32x2,
):
    # dL/dsigma_k = dt_k (T_{k+1} S_k - sum_{j>k} w_j S_j) with S_j = g_rgb.c_j + g_depth t_j + g_opacity;
    # the suffix sum is the ray total (from the forward result) minus the running prefix.
    for r in range(ray_offset.shape[0]):
        n = ray_count[r]
        if n > 0:
            base = ray_offset[r]
            g_rgb = ti.math.vec3(grad_result[r, 0], grad_result[r, 1], grad_result[r, 2])
            g_depth = grad_result[r, 3]
            g_opacity = grad_result[r, 4]
            total = (
                g_rgb.dot(ti.math.vec3(result[r, 0], result[r, 1], result[r, 2]))
                + g_depth * result[r, 3]
                + g_opacity * result[r, 4]
            )
            prefix = 0.0
            trans = 1.0
            k = 0
            while k < n and trans >= t_thresh:
                i = base + k
                dt = t_dt[i, 1]
                alpha = 1.0 - ti.exp(-sigma[i] * dt)
                w = alpha * trans
                s = g_rgb.dot(ti.math.vec3(rgb[i, 0], rgb[i, 1], rgb[i, 2])) + g_depth * t_dt[i, 0] + g_opacity
                prefix += w * s
                trans *= 1.0 - alpha
                grad_sigma[i] = dt * (trans * s - (total - prefix))
                for c in ti.static(range(3)):
                    grad_rgb[i, c] = w * g_rgb[c]
                k += 1


def _check(sigma, rgb, t_dt, ray_offset, ray_count):
    runtime.require_device(sigma, rgb, t_dt, ray_offset, ray_count)
    m = sigma.shape[0]
    check_tensor(sigma, "sigma", torch.float32, (-1,), WHERE)
    check_tensor(rgb, "rgb", torch.float32, (m, 3), WHERE)
    check_tensor(t_dt, "t_dt", torch.float32, (m, 2), WHERE)
    check_tensor(ray_offset, "ray_offset", torch.int32, (-1,), WHERE)
    check_tensor(ray_count, "ray_count", torch.int32, (ray_offset.shape[0],), WHERE)


class CompositeFunction(torch.autograd.Function):
    """Autograd wrapper: [R, 5] per-ray result from packed samples; gradients to sigma and rgb."""

    @staticmethod
    def forward(ctx, sigma, rgb, t_dt, ray_offset, ray_count, t_thresh: float):
        result = torch.zeros(ray_offset.shape[0], ACCUM_WIDTH, device=sigma.device)
        if sigma.shape[0] > 0 and ray_offset.shape[0] > 0:  # no zero-size launches (CUDA external arrays)
            _forward_kernel(sigma.detach(), rgb.detach(), t_dt, ray_offset, ray_count, result, float(t_thresh))
        ctx.save_for_backward(sigma, rgb, t_dt, ray_offset, ray_count, result)
        ctx.t_thresh = float(t_thresh)
        return result

    @staticmethod
    def backward(ctx, grad_result):
        sigma, rgb, t_dt, ray_offset, ray_count, result = ctx.saved_tensors
        # Samples past early termination get no gradient, so start from zeros.
        grad_sigma = torch.zeros_like(sigma)
        grad_rgb = torch.zeros_like(rgb)
        if sigma.shape[0] == 0 or ray_offset.shape[0] == 0:
            return grad_sigma, grad_rgb, None, None, None, None
        _backward_kernel(
            sigma.detach(), rgb.detach(), t_dt, ray_offset, ray_count, result.detach(),
            grad_result.detach().contiguous(), ctx.t_thresh, grad_sigma, grad_rgb,
        )  # fmt: skip
        return grad_sigma, grad_rgb, None, None, None, None


def composite(
    sigma: torch.Tensor,
    rgb: torch.Tensor,
    t_dt: torch.Tensor,
    ray_offset: torch.Tensor,
    ray_count: torch.Tensor,
    t_thresh: float = 1e-4,
) -> torch.Tensor:
    """Differentiable compositing (training): sigma [M] >= 0, rgb [M, 3], t_dt [M, 2] (t, dt), ray_offset/ray_count
    [R] i32 (each ray's samples are rows offset..offset+count-1, ordered by t) -> [R, 5] (rgb, depth, opacity)."""
    _check(sigma, rgb, t_dt, ray_offset, ray_count)
    return CompositeFunction.apply(sigma, rgb, t_dt.detach(), ray_offset, ray_count, t_thresh)


def composite_into(
    sigma: torch.Tensor,
    rgb: torch.Tensor,
    t_dt: torch.Tensor,
    ray_offset: torch.Tensor,
    ray_count: torch.Tensor,
    accum: torch.Tensor,
    t_thresh: float = 1e-4,
) -> torch.Tensor:
    """Inference compositing: adds this round's samples into accum [R, 5] in place (zero it per frame); no autograd.

    A ray whose accumulated opacity already left transmittance below t_thresh takes no more samples.
    """
    _check(sigma, rgb, t_dt, ray_offset, ray_count)
    runtime.require_device(accum)
    check_tensor(accum, "accum", torch.float32, (ray_offset.shape[0], ACCUM_WIDTH), WHERE)
    if sigma.shape[0] == 0 or ray_offset.shape[0] == 0:
        return accum
    _forward_kernel(sigma.detach(), rgb.detach(), t_dt.detach(), ray_offset, ray_count, accum.detach(), float(t_thresh))
    return accum
