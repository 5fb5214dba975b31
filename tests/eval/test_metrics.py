"""Every eval metric against a case worked out by hand."""
import math

import numpy as np
import pytest

from engine.eval import metrics


def test_psnr_of_a_known_noise_level():
    truth = np.full((16, 16, 3), 0.5)
    checker = np.where((np.indices((16, 16)).sum(0) % 2)[..., None] == 0, 0.1, -0.1)
    assert metrics.psnr(truth + checker, truth) == pytest.approx(20.0)  # MSE 0.01 -> 10 log10(1 / 0.01)
    grey = np.full((8, 8, 3), 100, np.uint8)
    assert metrics.psnr(grey + 10, grey) == pytest.approx(20 * math.log10(255 / 10))  # uint8 is scaled by 255
    noise = np.random.default_rng(0).normal(0.0, 0.05, (256, 256, 3))
    expected = -20 * math.log10(0.05)  # 26.0 dB
    assert metrics.psnr(0.5 + noise, np.full_like(noise, 0.5)) == pytest.approx(expected, abs=0.1)
    assert metrics.psnr(truth, truth) == math.inf
    batch = np.stack([truth + checker, truth + 2 * checker])  # 20 dB and 20 - 20 log10(2) dB
    assert metrics.psnr(batch, np.stack([truth, truth])) == pytest.approx(20.0 - 10 * math.log10(2))


def test_ssim_of_identical_and_of_flat_images():
    image = np.random.default_rng(1).random((32, 32, 3))
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    # flat images: no variance, so SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2
    a, b, c1 = 0.5, 0.25, 1e-4
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert metrics.ssim(np.full((32, 32, 3), a), np.full((32, 32, 3), b)) == pytest.approx(expected, rel=1e-6)
    assert metrics.ssim(image, 1.0 - image) < 0.0  # inverted structure correlates negatively


def _face(eye_open_right=2.0, eye_open_left=2.0, lip_gap=6.0) -> np.ndarray:
    """478 landmarks, all at (50, 50) except the eyes, lips and face height placed by hand."""
    points = np.full((478, 2), 50.0)
    for eye, x0, half in ((metrics.RIGHT_EYE, 0.0, eye_open_right), (metrics.LEFT_EYE, 20.0, eye_open_left)):
        p1, p2, p3, p4, p5, p6 = eye
        points[p1], points[p4] = (x0, 0.0), (x0 + 10.0, 0.0)  # corners 10 px apart
        points[p2], points[p3] = (x0 + 3, -half), (x0 + 7, -half)  # upper lid
        points[p6], points[p5] = (x0 + 3, half), (x0 + 7, half)  # lower lid
    points[metrics.INNER_LIP_GAP[0]], points[metrics.INNER_LIP_GAP[1]] = (50.0, 60.0), (50.0, 60.0 + lip_gap)
    points[metrics.FACE_HEIGHT[0]], points[metrics.FACE_HEIGHT[1]] = (50.0, 0.0), (50.0, 100.0)
    return points


def test_eye_aspect_ratio_on_hand_placed_landmarks():
    # (|p2-p6| + |p3-p5|) / (2 |p1-p4|) = (4 + 4) / 20 = 0.4 for a lid half-height of 2
    assert metrics.eye_aspect_ratio(_face()) == pytest.approx(0.4)
    # one eye half shut (lid half-height 0.5: EAR 0.1) -> mean of 0.4 and 0.1
    assert metrics.eye_aspect_ratio(_face(eye_open_left=0.5)) == pytest.approx(0.25)
    both = np.stack([_face(), _face(0.0, 0.0)])
    np.testing.assert_allclose(metrics.eye_aspect_ratio(both), [0.4, 0.0])


def test_mouth_opening_is_the_inner_lip_gap_over_face_height():
    assert metrics.mouth_opening(_face(lip_gap=6.0)) == pytest.approx(0.06)
    assert metrics.mouth_opening(_face(lip_gap=0.0)) == pytest.approx(0.0)


def test_lmd_is_the_mean_lip_point_distance_over_frames_with_a_face():
    truth = np.stack([_face(), _face(), _face()])
    pred = truth.copy()
    pred[0, list(metrics.LIPS)] += (3.0, 4.0)  # 5 px on every lip point
    pred[2] = np.nan  # no face found: left out
    np.testing.assert_allclose(metrics.lmd_per_frame(pred, truth)[:2], [5.0, 0.0])
    assert metrics.lmd(pred, truth) == pytest.approx(2.5)
    other = pred.copy()
    other[0, 1] += 100.0  # a point that is not on the lips does not count
    assert metrics.lmd(other, truth) == pytest.approx(2.5)


def test_blink_counter_on_a_synthetic_curve():
    fps = 25.0
    curve = np.full(750, 0.1)  # 30 s of open eyes
    for onset in (100, 300, 600):  # three blinks of 4 frames
        curve[onset:onset + 4] = 0.8
    curve[400:420] = np.where(np.arange(20) % 2, 0.45, 0.4)  # chatter between exit and enter: never a blink
    curve[200:203], curve[204:206] = 0.9, 0.9  # one blink with a flicker open at frame 203: merged by min gap
    onsets = metrics.count_blinks(curve, enter=0.5, exit=0.35, fps=fps, min_gap_s=0.2)
    np.testing.assert_array_equal(onsets, [100, 200, 300, 600])
    assert metrics.blinks_per_minute(onsets, len(curve), fps) == pytest.approx(8.0)  # 4 in 30 s
    assert metrics.blinks_per_minute(3, 1500, fps) == pytest.approx(3.0)
    # hysteresis: peaks at 0.51 joined by 0.45 (between exit 0.35 and enter 0.5) are one closure; with the exit
    # threshold above 0.45 the eye counts as reopened between them, so each peak is a blink
    noisy = np.full(100, 0.1)
    noisy[10:51] = 0.45
    noisy[[10, 30, 50]] = 0.51
    assert len(metrics.count_blinks(noisy, 0.5, 0.35, fps)) == 1
    assert len(metrics.count_blinks(noisy, 0.5, 0.46, fps)) == 3
    # a curve that starts closed: that first closure is not counted (its onset is before the clip)
    assert len(metrics.count_blinks(np.r_[0.9, 0.9, np.full(20, 0.1)], 0.5, 0.35, fps)) == 0


def test_blink_counter_on_a_falling_ear_curve():
    ear = np.full(250, 0.3)
    ear[[50, 51, 150, 151, 152]] = 0.05
    enter, exit_ = metrics.ear_thresholds(ear)
    assert (enter, exit_) == pytest.approx((0.21, 0.255))
    onsets = metrics.count_blinks(ear, enter, exit_, fps=25.0, closed_is_high=False)
    np.testing.assert_array_equal(onsets, [50, 150])
    assert metrics.blinks_per_minute(onsets, 250, 25.0) == pytest.approx(12.0)
    with pytest.raises(ValueError, match="open side"):
        metrics.count_blinks(ear, exit_, enter, fps=25.0, closed_is_high=False)


def test_pose_diversity_on_constructed_poses():
    sign = np.where(np.arange(40) % 2, 1.0, -1.0)[:, None]
    speech = np.arange(40) < 20
    euler = np.where(speech[:, None], sign * np.array([1.0, 2.0, 3.0]), sign * 0.5)
    diversity = metrics.pose_diversity(euler, speech)
    assert diversity["speech"] == pytest.approx(2.0)  # per-axis std 1, 2, 3 -> mean 2
    assert diversity["silence"] == pytest.approx(0.5)
    assert diversity["ratio"] == pytest.approx(4.0)
    assert metrics.pose_std(euler) > 0.5
    still = metrics.pose_diversity(np.where(speech[:, None], euler, 0.0), speech)
    assert still["silence"] == 0.0 and math.isnan(still["ratio"])
    with pytest.raises(ValueError, match="mask frames"):
        metrics.pose_diversity(euler, speech[:10])


def test_pose_measured_on_frames_skips_frames_without_a_face():
    euler = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [np.nan, np.nan, np.nan], [1.0, 0.0, 0.0], [-1.0, 0, 0]])
    assert metrics.pose_std(euler) == pytest.approx(1.0 / 3.0)  # roll std 1 over the four faces, averaged
    assert metrics.pose_diversity(euler, np.ones(5, bool))["all"] == pytest.approx(1.0 / 3.0)
    assert math.isnan(metrics.pose_std(euler[2:3]))


def test_ear_error_is_the_mean_gap_between_render_and_truth():
    truth = np.array([0.30, 0.30, 0.05, 0.30, np.nan])
    assert metrics.ear_error(truth, truth) == 0.0
    assert metrics.ear_error(np.array([0.30, 0.30, 0.30, 0.30, 0.30]), truth) == pytest.approx(0.25 / 4)  # blink missed
    assert math.isnan(metrics.ear_error(np.full(5, np.nan), truth))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.ear_error(truth[:3], truth)


def test_correlation_ignores_missing_frames_and_flags_constant_curves():
    x = np.arange(10, dtype=float)
    y = 2 * x + 1
    y[3] = np.nan
    assert metrics.correlation(x, y) == pytest.approx(1.0)
    assert metrics.correlation(x, -x) == pytest.approx(-1.0)
    assert math.isnan(metrics.correlation(x, np.ones(10)))
    assert metrics.masked_mean(np.array([1.0, 2.0, np.nan, 4.0]), np.array([True, False, True, True])) == 2.5


def test_blink_depth_is_the_rendered_share_of_the_true_eye_closure():
    truth = np.full(100, 0.3)
    truth[[10, 11, 50]] = (0.1, 0.05, 0.15)  # closed frames: mean 0.1, a drop of 0.2 from the open median
    half = np.full(100, 0.32)
    half[[10, 11, 50]] = 0.22  # renders close by 0.1 from their own open level
    assert metrics.blink_depth(half, truth) == pytest.approx(0.5)
    assert metrics.blink_depth(truth, truth) == pytest.approx(1.0)
    assert metrics.blink_depth(np.full(100, 0.3), truth) == pytest.approx(0.0)
    half[10] = np.nan  # a frame without a face on one side is left out
    assert metrics.blink_depth(half, truth) == pytest.approx(0.5)
    assert math.isnan(metrics.blink_depth(np.full(100, 0.3), np.full(100, 0.3)))  # no closed frame: unknown


def test_blendshape_blink_thresholds_follow_the_open_level():
    # a synthetic face's MediaPipe eyeBlink: open at 0.11, full blinks only reach 0.45 (a fixed 0.5 misses them)
    curve = np.full(500, 0.11)
    curve[[100, 101, 102, 300, 301]] = (0.3, 0.45, 0.3, 0.44, 0.2)
    enter, exit_ = metrics.blink_thresholds(curve)
    assert (enter, exit_) == pytest.approx((0.31, 0.21))
    np.testing.assert_array_equal(metrics.count_blinks(curve, enter, exit_, fps=25.0), [101, 300])
    assert len(metrics.count_blinks(0.11 + 0.02 * np.sin(np.arange(500)), *metrics.blink_thresholds(curve),
                                    fps=25.0)) == 0  # jitter of an open eye is no blink


def test_mouth_opening_above_rest_subtracts_the_faces_closed_level():
    opening = np.full(100, 0.06)
    speech = np.zeros(100, bool)
    speech[20:60] = True
    opening[20:60] = 0.06 + np.tile([0.02, 0.06], 20)  # open 0.04 above rest on average while speaking
    opening[80] = 0.07  # one twitch in silence
    m = metrics.mouth_above_rest(opening, speech)
    assert m["rest"] == pytest.approx(0.06)
    assert m["speech"] == pytest.approx(0.04)
    assert m["silence"] == pytest.approx(0.01 / 60)
    assert m["silence_over_speech"] == pytest.approx(0.01 / 60 / 0.04)


def test_mouth_depth_is_the_rendered_share_of_the_widest_openings():
    truth = np.full(100, 0.05)
    truth[::10] = 0.35  # every tenth frame a wide vowel
    truth[5::10] = 0.2
    half = 0.05 + (truth - 0.05) * 0.5
    assert metrics.mouth_depth(truth, truth) == pytest.approx(1.0)
    assert metrics.mouth_depth(half, truth) == pytest.approx(0.5)
    assert metrics.mouth_depth(np.full(100, 0.05), truth) == pytest.approx(0.0)
    half[3] = np.nan  # a frame without a face on one side is left out
    assert metrics.mouth_depth(half, truth) == pytest.approx(0.5)
    assert math.isnan(metrics.mouth_depth(truth, np.full(100, 0.05)))  # a mouth that never opens: unknown
