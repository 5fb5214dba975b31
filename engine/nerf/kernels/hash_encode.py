"""Multiresolution hash encoding on 2-D planes: Taichi forward/backward kernels, torch autograd, nn.Module.

A point x in [0, 1]^D is projected onto P planes (pairs of its axes: xy, yz, xz for the head tri-plane; the
image plane for the upper body). Each plane has L levels of resolution growing geometrically from `base_res`
to `max_res` cells per side; a level stores its (res+1)^2 vertices directly when they fit in the table
(T = 2^log2_table rows) and hashes them into T rows otherwise. Features are bilinearly interpolated.

Output layout: [N, P * L * F], plane-major, then level, then feature (the head's 3 x 14 x 1 = 42-d code).
Gradients flow to the table and, when asked, to the input coordinates (the upper body's deformed pixel
coordinates). Tensors given to the kernels are detached: Taichi would otherwise allocate `.grad` on them.

Backward on the CPU splits the points into one contiguous part per thread, each adding into its own copy of
the table gradient with plain stores, then sums the copies: float atomics (compare-and-swap loops on x86) made
the scatter about 2x slower. On CUDA, with thousands of threads, one atomic scatter is the right shape.
"""

import math

import taichi as ti
import torch

from engine.nerf.kernels import runtime
from engine.nerf.kernels.common import F32x2, F32x3, F32x4, I32x2, axis_cell, check_tensor, plane_slot
from engine.nerf.kernels.launch import fast_launch

WHERE = "engine/nerf/kernels/hash_encode.py"

HEAD_PLANES = ((0, 1), (1, 2), (0, 2))
"""Axis pairs of the head tri-plane: xy, yz, xz."""
IMAGE_PLANE = ((0, 1),)
"""The single image plane of the upper body."""


@ti.func
def _encode_one(
    x: ti.template(), table: ti.template(), out: ti.template(), n, p: ti.template(), axes: ti.template(),
    n_feat: ti.template(), offset, res, dense, size, col,
):  # fmt: skip
    """Features of point n on plane p at one level into out[n, col:col + n_feat] (bilinear over 4 vertices).

    """
    i, fu = axis_cell(x[n, axes[p][0]], res)
    j, fv = axis_cell(x[n, axes[p][1]], res)
    s00 = offset + plane_slot(i, j, res, dense, size)
    s10 = offset + plane_slot(i + 1, j, res, dense, size)
    s01 = offset + plane_slot(i, j + 1, res, dense, size)
    s11 = offset + plane_slot(i + 1, j + 1, res, dense, size)
    w00, w10 = (1.0 - fu) * (1.0 - fv), fu * (1.0 - fv)
    w01, w11 = (1.0 - fu) * fv, fu * fv
    for f in ti.static(range(n_feat)):
        out[n, col + f] = (
            w00 * table[p, s00, f] + w10 * table[p, s10, f] + w01 * table[p, s01, f] + w11 * table[p, s11, f]
        )


@ti.func
def _corners(x: ti.template(), n, a0: ti.template(), a1: ti.template(), offset, res, dense, size):
    """Table rows of the 4 vertices around point n on the plane of columns (a0, a1), and the fractions."""
    i, fu = axis_cell(x[n, a0], res)
    j, fv = axis_cell(x[n, a1], res)
    rows = ti.math.ivec4(
        plane_slot(i, j, res, dense, size),
        plane_slot(i + 1, j, res, dense, size),
        plane_slot(i, j + 1, res, dense, size),
        plane_slot(i + 1, j + 1, res, dense, size),
    )
    return rows + offset, fu, fv


@ti.func
def _bilinear_weights(fu, fv):
    """Weights of the four corners (u0v0, u1v0, u0v1, u1v1) at fractional position (fu, fv)."""
    return ti.math.vec4((1.0 - fu) * (1.0 - fv), fu * (1.0 - fv), (1.0 - fu) * fv, fu * fv)


@ti.func
def _corner_slopes(table: ti.template(), p: ti.template(), rows, f: ti.template(), fu, fv):
    """d(bilinear value)/d(fu, fv) of feature f on plane p: the gradient the encoder hands back to the inputs."""
    e00, e10 = table[p, rows[0], f], table[p, rows[1], f]
    e01, e11 = table[p, rows[2], f], table[p, rows[3], f]
    return ti.math.vec2((1.0 - fv) * (e10 - e00) + fv * (e11 - e01), (1.0 - fu) * (e01 - e00) + fu * (e11 - e10))


@ti.func
def _backward_one(
    x: ti.template(), table: ti.template(), grad_out: ti.template(), grad_parts: ti.template(),
    grad_x: ti.template(), n, part, p: ti.template(), axes: ti.template(), n_feat: ti.template(),
    offset, res, dense, size, col, want_table, want_x,
):  # fmt: skip
    """Backward of one (point, level, plane) into the caller's own gradient copy `part`: plain stores."""
    rows, fu, fv = _corners(x, n, axes[p][0], axes[p][1], offset, res, dense, size)
    w = _bilinear_weights(fu, fv)
    slope = ti.math.vec2(0.0, 0.0)
    for f in ti.static(range(n_feat)):
        g = grad_out[n, col + f]
        if want_table != 0:
            for c in ti.static(range(4)):
                grad_parts[part, p, rows[c], f] = grad_parts[part, p, rows[c], f] + g * w[c]
        if want_x != 0:
            slope += g * _corner_slopes(table, p, rows, f, fu, fv)
    if want_x != 0:
        # The clamp to [0, 1] has zero slope outside the unit square.
        xu, xv = x[n, axes[p][0]], x[n, axes[p][1]]
        if xu >= 0.0 and xu <= 1.0:
            grad_x[n, axes[p][0]] = grad_x[n, axes[p][0]] + slope[0] * res
        if xv >= 0.0 and xv <= 1.0:
            grad_x[n, axes[p][1]] = grad_x[n, axes[p][1]] + slope[1] * res


@fast_launch
@ti.kernel
def _forward_kernel(
    x: F32x2, table: F32x3, levels: I32x2, axes: ti.template(), n_feat: ti.template(), out: F32x2, out_col: ti.i32
):
    n_levels = levels.shape[0]
    for n, lv in ti.ndrange(x.shape[0], n_levels):
        offset, res, dense, size = levels[lv, 0], levels[lv, 1], levels[lv, 2], levels[lv, 3]
        for p in ti.static(range(len(axes))):
            col = out_col + (p * n_levels + lv) * n_feat
            _encode_one(x, table, out, n, p, axes, n_feat, offset, res, dense, size, col)


@fast_launch
@ti.kernel
def _forward_unrolled_kernel(
    x: F32x2, table: F32x3, layout: ti.template(), axes: ti.template(), n_feat: ti.template(), out: F32x2, out_col: ti.i32
):
    # The layout is compiled in: per-level resolution, dense/hashed branch and mask become constants, and one
    # point's whole row is written by one thread (single-thread: 13 ms vs 23 ms for 65536 head points). The body
    # is written out rather than calling _encode_one: passing the constants through a ti.func made this kernel
    # take 18 s instead of 5 s to compile.
    for n in range(x.shape[0]):
        for lv in ti.static(range(len(layout))):
            offset, res, dense, size = ti.static(layout[lv])
            for p in ti.static(range(len(axes))):
                i, fu = axis_cell(x[n, axes[p][0]], res)
                j, fv = axis_cell(x[n, axes[p][1]], res)
                s00 = offset + plane_slot(i, j, res, dense, size)
                s10 = offset + plane_slot(i + 1, j, res, dense, size)
                s01 = offset + plane_slot(i, j + 1, res, dense, size)
                s11 = offset + plane_slot(i + 1, j + 1, res, dense, size)
                w00, w10 = (1.0 - fu) * (1.0 - fv), fu * (1.0 - fv)
                w01, w11 = (1.0 - fu) * fv, fu * fv
                col = out_col + ti.static((p * len(layout) + lv) * n_feat)
                for f in ti.static(range(n_feat)):
                    out[n, col + f] = (
                        w00 * table[p, s00, f] + w10 * table[p, s10, f] + w01 * table[p, s01, f] + w11 * table[p, s11, f]
                    )


@fast_launch
@ti.kernel
def _backward_kernel(
    x: F32x2,
    table: F32x3,
    levels: I32x2,
    axes: ti.template(),
    n_feat: ti.template(),
    grad_out: F32x2,
    grad_table: F32x3,
    grad_x: F32x2,
    want_table: ti.i32,
    want_x: ti.i32,
):
    # Atomic scatter, for CUDA: thousands of threads share one gradient table.
    n_levels = levels.shape[0]
    for n, lv in ti.ndrange(x.shape[0], n_levels):
        offset, res, dense, size = levels[lv, 0], levels[lv, 1], levels[lv, 2], levels[lv, 3]
        for p in ti.static(range(len(axes))):
            rows, fu, fv = _corners(x, n, axes[p][0], axes[p][1], offset, res, dense, size)
            w = _bilinear_weights(fu, fv)
            col = (p * n_levels + lv) * n_feat
            slope = ti.math.vec2(0.0, 0.0)
            for f in ti.static(range(n_feat)):
                g = grad_out[n, col + f]
                if want_table != 0:
                    for c in ti.static(range(4)):
                        ti.atomic_add(grad_table[p, rows[c], f], g * w[c])
                if want_x != 0:
                    slope += g * _corner_slopes(table, p, rows, f, fu, fv)
            if want_x != 0:
                xu, xv = x[n, axes[p][0]], x[n, axes[p][1]]
                if xu >= 0.0 and xu <= 1.0:
                    ti.atomic_add(grad_x[n, axes[p][0]], slope[0] * res)
                if xv >= 0.0 and xv <= 1.0:
                    ti.atomic_add(grad_x[n, axes[p][1]], slope[1] * res)


@fast_launch
@ti.kernel
def _backward_parts_kernel(
    x: F32x2,
    table: F32x3,
    levels: I32x2,
    axes: ti.template(),
    n_feat: ti.template(),
    grad_out: F32x2,
    grad_parts: F32x4,
    grad_x: F32x2,
    want_table: ti.i32,
    want_x: ti.i32,
):
    n_points = x.shape[0]
    n_parts = grad_parts.shape[0]
    n_levels = levels.shape[0]
    chunk = (n_points + n_parts - 1) // n_parts
    # One part per task (Taichi's adaptive CPU block size does this too; a fixed one of 32 would run every part
    # on one thread).
    ti.loop_config(block_dim=1)
    for part in range(n_parts):
        # Serial within a part: each part owns grad_parts[part], so no atomics.
        for n in range(part * chunk, ti.min(n_points, (part + 1) * chunk)):
            for lv in range(n_levels):
                offset, res, dense, size = levels[lv, 0], levels[lv, 1], levels[lv, 2], levels[lv, 3]
                for p in ti.static(range(len(axes))):
                    col = (p * n_levels + lv) * n_feat
                    _backward_one(
                        x, table, grad_out, grad_parts, grad_x, n, part, p, axes, n_feat,
                        offset, res, dense, size, col, want_table, want_x,
                    )  # fmt: skip


def backward_parts(device: torch.device) -> int:
    """How many private gradient copies the backward uses: one per CPU thread, 0 (atomic scatter) on CUDA."""
    return runtime.cpu_threads() if device.type == "cpu" else 0


def level_layout(levels: int, log2_table: int, base_res: int, max_res: int) -> list[tuple[int, int, int, int]]:
    """Per level (row offset, cells per side, dense flag, rows): dense when (res+1)^2 <= 2^log2_table."""
    if levels < 1 or base_res < 1 or max_res < base_res:
        raise ValueError(
            f"{WHERE}: levels={levels}, base_res={base_res}, max_res={max_res}; need levels >= 1 and 1 <= base_res <= max_res"
        )
    table_rows = 1 << log2_table
    growth = math.exp((math.log(max_res) - math.log(base_res)) / (levels - 1)) if levels > 1 else 1.0
    layout, offset = [], 0
    for lv in range(levels):
        res = max(1, int(math.floor(base_res * growth**lv + 1e-6)))
        dense = (res + 1) ** 2 <= table_rows
        rows = (res + 1) ** 2 if dense else table_rows
        layout.append((offset, res, int(dense), rows))
        offset += rows
    return layout


def _axes_key(axes) -> tuple[tuple[int, int], ...]:
    """Plane axes as a hashable tuple: the kernels unroll planes and features at compile time (one
    instantiation per encoder shape; the head and the upper body use two)."""
    return tuple((int(a), int(b)) for a, b in axes)


def _launch_forward(x, table, levels, axes, layout, out, out_column: int) -> None:
    if layout is not None:
        _forward_unrolled_kernel(x.detach(), table.detach(), layout, axes, table.shape[2], out.detach(), out_column)
    else:
        _forward_kernel(x.detach(), table.detach(), levels, axes, table.shape[2], out.detach(), out_column)


class PlaneHashFunction(torch.autograd.Function):
    """Autograd wrapper: forward and backward run the Taichi kernels; gradients to the table and the points."""

    @staticmethod
    def forward(ctx, x, table, levels, axes: tuple[tuple[int, int], ...], layout):
        out = torch.empty(x.shape[0], len(axes) * levels.shape[0] * table.shape[2], device=x.device)
        if x.shape[0] > 0:  # no zero-size launches (CUDA external arrays)
            _launch_forward(x, table, levels, axes, layout, out, 0)
        ctx.save_for_backward(x, table, levels)
        ctx.axes, ctx.layout = axes, layout
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, table, levels = ctx.saved_tensors
        want_x, want_table = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_out = grad_out.detach().contiguous()
        grad_x = torch.zeros_like(x) if want_x else torch.zeros(1, 1, device=x.device)
        parts = backward_parts(x.device)
        if x.shape[0] == 0:
            return (grad_x if want_x else None), (torch.zeros_like(table) if want_table else None), None, None, None
        flags = (int(want_table), int(want_x))
        if parts > 0:
            shape = (parts, *table.shape) if want_table else (1, 1, 1, 1)
            grad_parts = torch.zeros(shape, device=x.device)
            _backward_parts_kernel(
                x.detach(), table.detach(), levels, ctx.axes, table.shape[2], grad_out, grad_parts, grad_x, *flags
            )
            grad_table = grad_parts.sum(0) if parts > 1 else grad_parts[0]
        else:
            grad_table = torch.zeros_like(table) if want_table else torch.zeros(1, 1, 1, device=x.device)
            _backward_kernel(
                x.detach(), table.detach(), levels, ctx.axes, table.shape[2], grad_out, grad_table, grad_x, *flags
            )
        return (grad_x if want_x else None), (grad_table if want_table else None), None, None, None


def plane_hash_encode(
    x: torch.Tensor,
    table: torch.Tensor,
    levels: torch.Tensor,
    axes: tuple[tuple[int, int], ...],
    out: torch.Tensor | None = None,
    out_column: int = 0,
    layout: tuple[tuple[int, int, int, int], ...] | None = None,
) -> torch.Tensor:
    """Encode points: x [N, D] f32 in [0, 1] -> [N, P * L * F] f32, differentiable in x and table.

    table [P, rows, F] f32; levels [L, 4] i32 from `level_layout`; axes: P pairs of columns of x spanning each
    plane. Inference path (no gradient needed): `out` [N, >= out_column + P * L * F] is filled in place at columns
    out_column.., so an MLP input row [encoding | other features] is built without a concatenation; returns out.
    `layout` (the rows of `levels` as a tuple) compiles a forward kernel specialised to it: about 1.8x faster,
    about 5 s of compilation on first use per layout (then cached on disk). The backward stays generic: its
    specialised form took minutes to compile for a small gain.
    """
    axes = _axes_key(axes)
    runtime.require_device(x, table, levels)
    check_tensor(x, "x", torch.float32, (-1, -1), WHERE)
    check_tensor(table, "table", torch.float32, (len(axes), -1, -1), WHERE)
    check_tensor(levels, "levels", torch.int32, (-1, 4), WHERE)
    top = max(max(a) for a in axes)
    if top >= x.shape[1]:
        raise ValueError(f"{WHERE}: planes use axis {top} but x has shape {tuple(x.shape)}")
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or table.requires_grad)
    if needs_grad:
        if out is not None:
            raise ValueError(f"{WHERE}: out= is for inference; drop it or run under torch.no_grad()")
        return PlaneHashFunction.apply(x, table, levels, axes, layout)
    width = len(axes) * levels.shape[0] * table.shape[2]
    if out is None:
        out = torch.empty(x.shape[0], width, device=x.device)
    check_tensor(out, "out", torch.float32, (x.shape[0], -1), WHERE)
    if out_column < 0 or out.shape[1] < out_column + width:
        raise ValueError(
            f"{WHERE}: out has {out.shape[1]} columns, the encoding needs {width} from column {out_column}; "
            f"allocate out with at least {out_column + width} columns"
        )
    if x.shape[0] > 0:
        _launch_forward(x, table, levels, axes, layout, out, int(out_column))
    return out


class PlaneHashEncoder(torch.nn.Module):
    """Hash-grid encoder over P planes of a point in [0, 1]^D; the table is one safetensors-friendly parameter.

    `plane_axes` defaults to the head tri-plane (xy, yz, xz) for 3 planes and the image plane for 1.
    Entries start uniform in [-init_scale, init_scale] (small, so early MLP inputs stay near zero).
    `specialize`: forward passes use a kernel compiled for this exact layout (see `plane_hash_encode`); worth it
    for the real-time renderer and long training runs, not for tests.
    """

    def __init__(
        self,
        n_planes: int = 3,
        levels: int = 14,
        features: int = 1,
        log2_table: int = 14,
        base_res: int = 16,
        max_res: int = 2048,
        plane_axes: tuple[tuple[int, int], ...] | None = None,
        init_scale: float = 1e-4,
        specialize: bool = False,
    ) -> None:
        super().__init__()
        if plane_axes is None:
            defaults = {1: IMAGE_PLANE, 3: HEAD_PLANES}
            if n_planes not in defaults:
                raise ValueError(f"{WHERE}: n_planes={n_planes} has no default axes; pass plane_axes=((a, b), ...)")
            plane_axes = defaults[n_planes]
        if len(plane_axes) != n_planes:
            raise ValueError(f"{WHERE}: {len(plane_axes)} plane_axes given for n_planes={n_planes}")
        layout = level_layout(levels, log2_table, base_res, max_res)
        rows = layout[-1][0] + layout[-1][3]
        self.n_planes, self.n_levels, self.n_features = n_planes, levels, features
        self.in_dim = 1 + max(max(a) for a in plane_axes)
        self.table = torch.nn.Parameter(torch.empty(n_planes, rows, features).uniform_(-init_scale, init_scale))
        # Derived from the config, so not saved with the weights.
        self.register_buffer("levels", torch.tensor(layout, dtype=torch.int32), persistent=False)
        self.plane_axes = _axes_key(plane_axes)
        self.layout = tuple(layout)
        self.specialize = specialize

    @property
    def out_dim(self) -> int:
        return self.n_planes * self.n_levels * self.n_features

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None, out_column: int = 0) -> torch.Tensor:
        """x [N, in_dim] f32 in [0, 1] -> [N, out_dim]; `out`, `out_column` as in `plane_hash_encode`."""
        layout = self.layout if self.specialize else None
        return plane_hash_encode(
            x, self.table, self.levels, self.plane_axes, out=out, out_column=out_column, layout=layout
        )
