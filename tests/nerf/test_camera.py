"""Camera and framing: the datasets' rotation order, canonical head rays through projected points, crops."""
import numpy as np
import pytest
import torch

from engine.data.synth.presenter import euler_to_matrix as numpy_euler_to_matrix
from engine.nerf.camera import (
    FramingRange, Intrinsics, camera_directions, crop_pixels, crop_rect, euler_to_matrix, head_rays, project,
)

CAMERA = Intrinsics(focal_px=52.0, cx=33.0, cy=30.0, size=64)


def test_rotation_matches_the_dataset_convention():
    euler = np.array([12.0, -20.0, 33.0])
    np.testing.assert_allclose(euler_to_matrix(torch.tensor(euler)).numpy(), numpy_euler_to_matrix(euler), atol=1e-6)


def test_head_ray_through_a_projected_point_passes_through_it_in_head_space():
    rotation = euler_to_matrix(torch.tensor([5.0, -10.0, 20.0]))
    trans = torch.tensor([2.0, -1.0, -45.0])
    point = torch.tensor([3.0, 4.0, 5.0])  # canonical head space, cm
    pixel = project(rotation @ point + trans, CAMERA) * CAMERA.size
    o, d = head_rays(camera_directions(pixel[None], CAMERA), rotation, trans)
    to_point = point - o[0]
    distance = (to_point - (to_point @ d[0]) * d[0]).norm()
    assert float(distance) < 1e-3
    assert float(d[0].norm()) == pytest.approx(1.0, abs=1e-6)


def test_crops_widen_with_zoom_and_stay_inside_the_frame():
    framing = FramingRange(center=(0.45, 0.3), default_side=0.5)
    assert crop_rect(1.0, 1.0, framing) == pytest.approx((0.0, 0.0, 1.0, 1.0))
    x0, y0, w, h = crop_rect(0.0, 1.0, framing)
    assert (w, h) == pytest.approx((0.5, 0.5)) and (x0 + w / 2, y0 + h / 2) == pytest.approx((0.45, 0.3))
    for zoom in (0.0, 0.3, 0.5, 1.0):
        for aspect in (0.5, 1.0, 16 / 9):
            x0, y0, w, h = crop_rect(zoom, aspect, framing)
            assert 0 <= x0 and 0 <= y0 and x0 + w <= 1 + 1e-9 and y0 + h <= 1 + 1e-9
            assert w / h == pytest.approx(aspect)
    with pytest.raises(ValueError, match="aspect"):
        crop_rect(0.0, 0.0, framing)


def test_crop_pixels_cover_the_rectangle_at_the_output_resolution():
    pixels = crop_pixels((0.25, 0.5, 0.5, 0.25), width=4, height=2, size=64)
    assert pixels.shape == (8, 2)
    assert pixels[0].tolist() == pytest.approx([16 + 4, 32 + 4])  # first pixel centre, 8-pixel cells
    assert pixels[-1].tolist() == pytest.approx([48 - 4, 48 - 4])
