"""Shared Taichi helpers (@ti.func) and constants for the NeRF kernels, plus argument checks for their wrappers.

Defining @ti.func helpers compiles nothing; they are inlined into the kernels that call them, at their first launch.
"""

import taichi as ti
import torch

HASH_PRIME_Y = 2654435761
"""Multiplier of the y coordinate in the 2-D spatial hash (x is multiplied by 1), as in instant-ngp."""

F32 = ti.types.ndarray(dtype=ti.f32, ndim=1)
F32x2 = ti.types.ndarray(dtype=ti.f32, ndim=2)
F32x3 = ti.types.ndarray(dtype=ti.f32, ndim=3)
F32x4 = ti.types.ndarray(dtype=ti.f32, ndim=4)
I32 = ti.types.ndarray(dtype=ti.i32, ndim=1)
I32x2 = ti.types.ndarray(dtype=ti.i32, ndim=2)
U8 = ti.types.ndarray(dtype=ti.u8, ndim=1)


@ti.func
def row3(a: ti.template(), i: ti.i32) -> ti.math.vec3:
    """Row i of an [N, >=3] f32 array as a vec3."""
    return ti.math.vec3(a[i, 0], a[i, 1], a[i, 2])


@ti.func
def axis_cell(x: ti.f32, res: ti.i32):
    """Cell index in [0, res-1] and the fraction inside it for a coordinate x in [0, 1] on `res` cells."""
    u = ti.math.clamp(x, 0.0, 1.0) * res
    i = ti.min(ti.cast(ti.floor(u), ti.i32), res - 1)
    return i, u - i


@ti.func
def plane_slot(i: ti.i32, j: ti.i32, res: ti.i32, dense: ti.i32, size: ti.i32) -> ti.i32:
    """Row of vertex (i, j) in a level's table: direct on dense levels, spatial hash on fine ones.

    Hashed levels have a power-of-two size, so the modulo is a mask (an integer division per corner cost
    about 40% of the encoder's time).
    """
    slot = 0
    if dense != 0:
        slot = i + (res + 1) * j
    else:
        h = ti.cast(i, ti.u32) ^ (ti.cast(j, ti.u32) * ti.u32(HASH_PRIME_Y))
        slot = ti.cast(h & ti.cast(size - 1, ti.u32), ti.i32)
    return slot


@ti.func
def safe_inverse(d: ti.math.vec3) -> ti.math.vec3:
    """1/d with zero components replaced by a huge value of the same sign, so slab tests never divide by zero."""
    inv = ti.math.vec3(0.0)
    for k in ti.static(range(3)):
        dk = d[k]
        if ti.abs(dk) < 1e-9:
            dk = 1e-9 if dk >= 0.0 else -1e-9
        inv[k] = 1.0 / dk
    return inv


@ti.func
def ray_box(o: ti.math.vec3, inv_d: ti.math.vec3, lo: ti.math.vec3, hi: ti.math.vec3):
    """Entry and exit ray parameters of the box [lo, hi] (exit < entry: the ray misses it)."""
    t0 = (lo - o) * inv_d
    t1 = (hi - o) * inv_d
    t_in = ti.max(ti.min(t0, t1).max(), 0.0)
    t_out = ti.max(t0, t1).min()
    return t_in, t_out


@ti.func
def grid_cell(p: ti.math.vec3, lo: ti.math.vec3, inv_cell: ti.math.vec3, res: ti.i32) -> ti.math.ivec3:
    """Occupancy-grid cell holding point p, clamped into the grid."""
    c = ti.cast(ti.floor((p - lo) * inv_cell), ti.i32)
    return ti.math.clamp(c, 0, res - 1)


@ti.func
def cell_linear(c: ti.math.ivec3, res: ti.i32) -> ti.i32:
    """Linear index of a grid cell; x varies fastest."""
    return c[0] + res * (c[1] + res * c[2])


@ti.func
def inside_box(p: ti.math.vec3, lo: ti.math.vec3, hi: ti.math.vec3) -> ti.i32:
    return ti.cast((p >= lo).all() and (p <= hi).all(), ti.i32)


@ti.func
def cell_exit_distance(
    p: ti.math.vec3, inv_d: ti.math.vec3, c: ti.math.ivec3, lo: ti.math.vec3, cell: ti.math.vec3
) -> ti.f32:
    """Ray parameter from point p to where the ray leaves cell c (DDA step for empty-space skipping)."""
    cell_lo = lo + ti.cast(c, ti.f32) * cell
    cell_hi = cell_lo + cell
    ta = (cell_lo - p) * inv_d
    tb = (cell_hi - p) * inv_d
    return ti.max(ti.max(ta, tb).min(), 0.0)


def check_tensor(t: torch.Tensor, name: str, dtype: torch.dtype, shape: tuple, where: str) -> None:
    """Raise with the fix when a kernel argument has the wrong dtype, layout or shape (-1 matches any size)."""
    if t.dtype != dtype:
        raise TypeError(f"{where}: {name} has dtype {t.dtype}, expected {dtype}; convert with .to({dtype})")
    if t.dim() != len(shape) or any(s != -1 and s != ts for s, ts in zip(shape, t.shape)):
        raise ValueError(f"{where}: {name} has shape {tuple(t.shape)}, expected {shape} (-1: any size)")
    if not t.is_contiguous():
        raise ValueError(f"{where}: {name} is not contiguous; pass {name}.contiguous()")
