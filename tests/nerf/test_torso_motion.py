"""Torso motion: shifts measured from frames, the head pose's share removed, the breath's rise read off, the torso's
turn after the head fitted and replayed."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from engine.data.dataset import HEAD, TORSO
from engine.nerf.torso_motion import (
    MAX_RISE, WORK_SIDE, RestTorso, breathing_rise, fit_follow, follow_shift, follow_track, measure_profile,
    measure_shifts, unexplained,
)
from engine.nerf.upper_body import shoulder_weights

SIZE = 96
ROWS = (0.35, 0.55)  # chin, shoulder line


def _rest_person(rng, size=SIZE):
    """A striped torso with a round head over a flat background: image [S, S] and regions [S, S]."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) * (SIZE / size)  # drawn in units of a SIZE frame
    torso = (np.abs(x - SIZE / 2) < 0.38 * SIZE - 0.4 * np.maximum(0, 0.6 * SIZE - y)) & (y > 0.42 * SIZE)
    head = (x - SIZE / 2) ** 2 + (y - 0.25 * SIZE) ** 2 < (0.14 * SIZE) ** 2
    image = np.full((size, size), 0.6)
    image[torso] = 0.3 + 0.25 * np.sin(y[torso] / 2.3) + 0.05 * np.cos(x[torso] / 3.1)
    image[head] = 0.8
    image = ndimage.gaussian_filter(image + 0.01 * rng.standard_normal((size, size)), 0.7 * size / SIZE)
    regions = np.zeros((size, size), np.uint8)
    regions[torso] = TORSO
    regions[head] = HEAD
    return image, regions


def _shifted(image, shift, profile=()):
    """The image as a torso shift `shift` (x, y; fractions of the side) shows it: read at p + w(p) s."""
    size = image.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    w = shoulder_weights(torch.tensor(ROWS[0]), torch.tensor(ROWS[1]), torch.tensor((y + 0.5) / size),
                         profile).numpy()
    return ndimage.map_coordinates(image, [y + w[..., 1] * shift[1] * size, x + w[..., 0] * shift[0] * size],
                                   order=1, mode="nearest")


def _frames(images):
    return np.repeat((np.stack(images) * 255).round().clip(0, 255).astype(np.uint8)[..., None], 3, -1)


@pytest.mark.slow
@pytest.mark.parametrize("size", [SIZE, 2 * WORK_SIDE + 8])  # measured as it is, and box-averaged down by 2
def test_measured_shifts_are_the_ones_the_frames_were_made_with(size):
    rng = np.random.default_rng(0)
    image, regions = _rest_person(rng, size)
    truth = np.concatenate([np.zeros((5, 2)), rng.uniform(-2.0, 2.0, (12, 2)) / SIZE])  # up to 2 px of a SIZE frame
    frames = _frames([_shifted(image, s) for s in truth])
    rows = np.tile(ROWS, (len(truth), 1))
    found = measure_shifts(RestTorso.of(frames, np.repeat(regions[None], len(truth), 0), np.arange(5)), rows)
    error_px = np.abs(found - truth) * SIZE
    assert error_px.max() < 0.15, error_px.max()


def test_the_rows_share_of_the_shift_is_measured_not_assumed():
    rng = np.random.default_rng(5)
    image, regions = _rest_person(rng, 128)
    truth = ((1.0, 1.0, 1.0, 1.0), (1.0, 0.7, 0.4, 0.1))  # the torso turns whole; a breath fades down the chest
    shifts = np.concatenate([np.zeros((5, 2)), rng.uniform(-2.0, 2.0, (40, 2)) / SIZE])
    frames = _frames([_shifted(image, s, truth) for s in shifts])
    rows = np.tile(ROWS, (len(shifts), 1))
    rest = RestTorso.of(frames, np.repeat(regions[None], len(shifts), 0), np.arange(5))
    profile = np.array(measure_profile(rest, rows, np.arange(5, len(shifts)), bands=4))
    np.testing.assert_allclose(profile, truth, atol=0.1)
    still = _frames([image] * 8)  # a torso that never moves: the old falloff stays
    kept = measure_profile(RestTorso.of(still, np.repeat(regions[None], 8, 0), np.arange(4)), np.tile(ROWS, (8, 1)),
                           np.arange(8), bands=4)
    np.testing.assert_allclose(kept, [[0.875, 0.625, 0.375, 0.125]] * 2)


def test_weights_follow_a_measured_profile_and_fade_at_the_bottom_edge():
    chin, shoulders = torch.tensor(0.35), torch.tensor(0.55)
    y = torch.tensor([0.2, 0.55, 0.55 + 0.45 / 8, 0.55 + 0.45 * 3 / 4, 0.9999])  # depths below the line: 0, 1/8, 3/4
    w = shoulder_weights(chin, shoulders, y, ((1.0, 0.5), (1.0, 0.0)))
    np.testing.assert_allclose(w[:, 0].numpy(), [0.0, 1.0, 1.0, 0.5, 0.0], atol=0.01)
    np.testing.assert_allclose(w[:, 1].numpy(), [0.0, 1.0, 1.0, 0.0, 0.0], atol=0.01)
    old = shoulder_weights(chin, shoulders, y)  # avatars without a profile: the falloff they were trained with
    np.testing.assert_allclose(old[:, 0].numpy(), [0.0, 1.0, 1 - 1 / 8, 1 / 4, 0.0], atol=0.01)
    assert torch.equal(old[:, 0], old[:, 1])


def test_an_arm_moving_on_its_own_does_not_drag_the_shift():
    rng = np.random.default_rng(3)
    image, regions = _rest_person(rng)
    truth = np.array([[0.0, 0.0]] * 3 + [[0.5, -1.5]]) / SIZE
    images = [_shifted(image, s) for s in truth]
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    arm = (x - 0.4 * SIZE) ** 2 + (y - 0.75 * SIZE) ** 2 < (0.12 * SIZE) ** 2  # a fifth of the chest
    images[3][arm] = _shifted(image, np.array([0.0, 2.0]) / SIZE)[arm]  # moving the other way
    frames = _frames(images)
    found = measure_shifts(RestTorso.of(frames, np.repeat(regions[None], 4, 0), np.arange(3)), np.tile(ROWS, (4, 1)))
    assert np.abs(found[3] - truth[3]).max() * SIZE < 0.1  # plain least squares: 0.27 px


def test_a_frame_without_a_torso_keeps_the_rest_position():
    rng = np.random.default_rng(1)
    image, regions = _rest_person(rng)
    frames = _frames([image] * 3)
    regions = np.stack([regions, regions, np.where(regions == TORSO, 0, regions).astype(np.uint8)])
    found = measure_shifts(RestTorso.of(frames, regions, np.arange(2)), np.tile(ROWS, (3, 1)))
    assert np.all(found[2] == 0)


def test_what_the_head_pose_predicts_is_left_to_the_anchors():
    rng = np.random.default_rng(2)
    frames = 3000
    euler, trans = rng.normal(0, 5, (frames, 3)), rng.normal(0, 1, (frames, 3))
    breath = 0.004 * np.sin(np.arange(frames) / 25 * 2 * np.pi / 4)
    shifts = np.stack([0.001 * euler[:, 2], breath + 0.002 * euler[:, 1] - 0.001 * trans[:, 2]], 1) + 0.01
    left = unexplained(shifts, euler, trans, np.arange(2700))
    np.testing.assert_allclose(left[:, 0], 0, atol=1e-9)
    assert np.corrcoef(left[:, 1], breath)[0, 1] > 0.99  # the breath stays, whole
    assert np.std(left[:, 1]) == pytest.approx(np.std(breath), rel=0.02)


def test_breathing_rise_is_the_breaths_amplitude_not_the_drift():
    fps, t = 25.0, np.arange(3000) / 25.0
    breath = 0.006 * np.sin(2 * np.pi * t / 4.0)
    drift = 0.01 * t / t[-1]  # posture settling over two minutes
    assert breathing_rise(breath + drift, fps) == pytest.approx(0.006, rel=0.1)
    assert breathing_rise(breath[: int(20 * fps)], fps) is None  # 20 s: too short to tell a breath
    assert breathing_rise(10 * breath, fps) == MAX_RISE
    assert breathing_rise(np.zeros_like(t), fps) == 0.0


def _head_track(frames, rng, fps=25.0):
    """A wandering head: euler [T, 3] degrees, trans [T, 3] cm."""
    smooth = lambda x: ndimage.gaussian_filter1d(x, 0.3 * fps, axis=0)  # noqa: E731
    return smooth(rng.normal(0, 20, (frames, 3))), smooth(rng.normal(0, 3, (frames, 3)))


def test_a_torso_that_turns_after_the_head_is_predicted_from_the_heads_recent_poses():
    rng, fps = np.random.default_rng(4), 25.0
    euler, trans = _head_track(3000, rng)
    late = np.concatenate([np.repeat(euler[:1], 6, 0), euler[:-6]])  # the head's pose 0.24 s ago
    turn = 0.0004 * (late[:, 2] - euler[:, 2]) + 0.00005 * rng.standard_normal(3000)
    train, val = np.arange(2700), np.arange(2700, 3000)
    coef = fit_follow(turn, euler, trans, train, val, fps)
    predicted = follow_track(coef, euler, trans, fps)
    assert np.corrcoef(predicted[val], turn[val])[0, 1] > 0.9
    # step by step from a trail of poses at motion times, as the live engine has them: the same turn
    times, poses = np.arange(3000) / fps, np.concatenate([euler, trans], 1)
    for t in (5, 100, 2999):
        assert follow_shift(coef, times[: t + 1], poses[: t + 1]) == pytest.approx(predicted[t], abs=1e-9)
    # a torso that does its own thing is left to follow the head pose alone
    assert fit_follow(rng.standard_normal(3000) * 0.001, euler, trans, train, val, fps) == ()
    assert follow_shift((), times, poses) == 0.0 and not follow_track((0.1, 0.2), euler, trans, fps).any()


@pytest.mark.usefixtures("taichi_cpu")
def test_a_trained_avatar_keeps_its_frames_shifts_and_older_avatars_load_without(tiny_avatar, tiny_data, tmp_path):
    from engine.data.dataset import Dataset
    from engine.nerf.avatar import load_avatar, nerf_path, save_avatar

    model = load_avatar(nerf_path(tiny_avatar))
    shifts = model.frame_torso_shift
    assert shifts.shape == (Dataset(tiny_data).meta.frames, 2) and bool(torch.isfinite(shifts).all())
    model.frame_torso_shift = None  # as saved before shifts were measured
    older = load_avatar(save_avatar(tmp_path / "older.safetensors", model))
    assert older.frame_torso_shift is None
