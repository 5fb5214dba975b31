"""Each frame's exposure, read on the background it shows against the plate, and kept by the trained avatar."""
import numpy as np
import pytest
import torch

from engine.data.dataset import HEAD, TORSO
from engine.nerf.exposure import RANGE, measure_exposure

SIZE = 64


def _take(gains, rng):
    """A textured plate, and frames of it at per-channel `gains` [T, 3] with a person (bright, saturated in places)
    standing in front: frames [T, S, S, 3], regions [T, S, S], plate [S, S, 3]."""
    plate = rng.integers(40, 200, (SIZE, SIZE, 3)).astype(np.float64)
    regions = np.zeros((len(gains), SIZE, SIZE), np.uint8)
    regions[:, 20:, 16:48] = TORSO
    regions[:, 8:20, 24:40] = HEAD
    frames = np.clip(plate[None] * np.asarray(gains)[:, None, None, :], 0, 255)
    person = regions > 0
    frames[person] = rng.integers(200, 256, (int(person.sum()), 3))
    frames[:, 16:28, 12:52] = np.where(regions[:, 16:28, 12:52, None] > 0, frames[:, 16:28, 12:52], 255)  # a halo
    return np.round(frames).astype(np.uint8), regions, plate.astype(np.uint8)


def test_each_frame_exposure_is_read_on_its_background_away_from_the_person():
    rng = np.random.default_rng(0)
    gains = np.array([[1.0, 1.0, 1.0], [0.9, 0.92, 0.95], [1.1, 1.05, 1.0], [0.8, 0.8, 0.8]])
    frames, regions, plate = _take(gains, rng)
    np.testing.assert_allclose(measure_exposure(frames, regions, plate), gains, atol=0.01)


def test_a_frame_without_background_keeps_exposure_one_and_a_wild_reading_is_clipped():
    rng = np.random.default_rng(1)
    frames, regions, plate = _take(np.array([[0.9, 0.9, 0.9], [0.9, 0.9, 0.9]]), rng)
    regions[0] = HEAD  # the person fills the frame
    dark_plate = (plate // 4).clip(17, None)  # the wall at a quarter of the frames' level
    exposure = measure_exposure(frames, regions, dark_plate)
    assert exposure.dtype == np.float32 and exposure.shape == (2, 3)
    np.testing.assert_array_equal(exposure[0], 1.0)
    np.testing.assert_array_equal(exposure[1], RANGE[1])


@pytest.mark.usefixtures("taichi_cpu")
def test_a_trained_avatar_keeps_each_frames_exposure(tiny_avatar, tiny_data):
    from engine.data.dataset import Dataset
    from engine.nerf.avatar import load_avatar, nerf_path

    exposure = load_avatar(nerf_path(tiny_avatar)).frame_exposure
    assert exposure.shape == (Dataset(tiny_data).meta.frames, 3)
    assert torch.allclose(exposure, torch.ones_like(exposure), atol=0.03)  # a camera that never re-exposes
