"""fast_launch: repeated launches skip Taichi's Python argument path and still compute what Taichi's path computes."""
import pytest
import taichi as ti
import torch

from engine.nerf.kernels.common import F32, I32
from engine.nerf.kernels.launch import fast_launch

pytestmark = pytest.mark.usefixtures("taichi_cpu")


@fast_launch
@ti.kernel
def _scaled_sum(a: F32, index: I32, power: ti.template(), scale: ti.f32, shift: ti.i32, out: F32):
    for i in range(index.shape[0]):
        out[i] = a[index[i]] ** power * scale + shift


def _call(n, power, scale, shift, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(2 * n, generator=g)
    index = torch.randint(0, 2 * n, (n,), generator=g, dtype=torch.int32)
    out = torch.full((n,), float("nan"))
    _scaled_sum(a, index, power, scale, shift, out)
    return out, a[index.long()] ** power * scale + shift


def test_repeat_launches_take_the_fast_path_with_new_shapes_and_values():
    _call(5, 2, 1.0, 0, seed=0)  # compiles this signature (or reuses an earlier test's)
    before = _scaled_sum.fast_launches
    for n, scale, shift, seed in [(7, 0.5, 3, 1), (1000, -2.0, -1, 2), (1, 3.0, 7, 3)]:
        out, want = _call(n, 2, scale, shift, seed)
        torch.testing.assert_close(out, want)
    assert _scaled_sum.fast_launches == before + 3


def test_template_values_select_their_own_compiled_kernel():
    for power in (1, 3, 1, 3):
        out, want = _call(50, power, 1.5, 2, seed=power)
        torch.testing.assert_close(out, want)


def test_unsupported_arguments_take_taichis_path():
    _call(5, 2, 1.0, 0, seed=0)
    before = _scaled_sum.fast_launches
    a = torch.rand(10, requires_grad=True)  # Taichi gives such tensors a .grad; the fast path does not
    index = torch.arange(5, dtype=torch.int32)
    out = torch.zeros(5)
    _scaled_sum(a, index, 2, 1.0, 0, out)
    torch.testing.assert_close(out, a.detach()[:5] ** 2)
    assert _scaled_sum.fast_launches == before


def test_wrong_dtype_still_gets_taichis_error():
    with pytest.raises(ValueError, match="dtype"):
        _scaled_sum(torch.zeros(4, dtype=torch.float64), torch.zeros(2, dtype=torch.int32), 2, 1.0, 0, torch.zeros(2))
