"""LPIPS and FID in the eval report (engine.eval.quality), on the real networks and weights: lip boxes and crops,
lip LPIPS that sees the lips only, FID on at most FID_MAX_FRAMES evenly spaced frames a side, and 'unavailable' with
the reason when engine.perceptual or its weights are missing."""
import sys

import numpy as np
import pytest
from skimage import data

from engine import perceptual
from engine.eval import metrics, quality
from engine.eval.quality import evenly_spaced, fid_set, lip_boxes, lip_crops, measure_fid, measure_lpips
from engine.eval.report import still_unavailable

SIZE = 64


def _lips_at(frames: int, centre: tuple[float, float], half: float) -> np.ndarray:
    """[T, 478, 2] landmarks whose lip points spread over a square of +-half around centre (others far off)."""
    points = np.full((frames, 478, 2), 1000.0)
    angles = np.linspace(0, 2 * np.pi, len(metrics.LIPS), endpoint=False)
    ring = np.stack([centre[0] + half * np.cos(angles), centre[1] + half * np.sin(angles)], axis=-1)
    points[:, list(metrics.LIPS)] = ring
    return points


def _faces(frames: int, shift: int = 0) -> list[np.ndarray]:
    """`frames` different 64 px crops of skimage's astronaut, `shift` px further right."""
    image = data.astronaut()
    return [image[60 + 40 * i:60 + 40 * i + SIZE, 180 - shift:180 - shift + SIZE].copy() for i in range(frames)]


def _noisy(frames: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.clip(f + rng.normal(0.0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def test_lip_boxes_hold_the_lips_and_stay_inside_the_frame():
    boxes = lip_boxes(_lips_at(2, (32.0, 40.0), 8.0), SIZE)
    x, y, side = boxes[0]
    assert side == 24  # 16 px of lips and a quarter more on each side
    assert x <= 24 and x + side >= 40 and y <= 32 and y + side >= 48
    corner = lip_boxes(_lips_at(1, (60.0, 62.0), 8.0), SIZE)[0]
    assert corner[0] + corner[2] <= SIZE and corner[1] + corner[2] <= SIZE and corner[2] == 24
    lost = _lips_at(1, (32.0, 32.0), 8.0)
    lost[0, metrics.LIPS[0]] = np.nan
    assert lip_boxes(lost, SIZE)[0, 2] == 0


def test_lip_lpips_looks_at_the_lips_only(eval_weights):
    truth = _faces(3)
    boxes = lip_boxes(_lips_at(3, (32.0, 44.0), 8.0), SIZE)  # x 20..44, y 32..56
    at_lips, elsewhere = [f.copy() for f in truth], [f.copy() for f in truth]
    for frame in at_lips:
        frame[40:48, 28:36] = 0
    for frame in elsewhere:
        frame[0:8, 0:8] = 0
    lips_changed = measure_lpips(at_lips, truth, boxes)
    other_changed = measure_lpips(elsewhere, truth, boxes)
    assert other_changed["lpips"] > 0.005 and lips_changed["lpips"] > 0.005  # the whole frame sees both
    assert other_changed["lpips_lips"] < 1e-6  # the lip crop does not see a change outside it
    assert lips_changed["lpips_lips"] > max(0.05, lips_changed["lpips"])  # a larger share of the crop changed
    expected = perceptual.lpips_distance(lip_crops(at_lips, boxes), lip_crops(truth, boxes)).mean()
    assert lips_changed["lpips_lips"] == pytest.approx(expected, rel=1e-5)
    whole = perceptual.lpips_distance(np.stack(at_lips), np.stack(truth)).mean()
    assert lips_changed["lpips"] == pytest.approx(whole, rel=1e-5)
    assert "lpips_unavailable" not in lips_changed and lips_changed["lpips_lip_frames"] == 3


def test_the_truth_side_crops_its_own_lip_box(eval_weights):
    renders, truth = _faces(2), _faces(2, shift=6)  # the truth's face sits 6 px to the right
    boxes, truth_boxes = (lip_boxes(_lips_at(2, (x, 32.0), 8.0), SIZE) for x in (32.0, 38.0))
    assert measure_lpips(renders, truth, boxes, truth_boxes)["lpips_lips"] < 1e-6  # the same lips in both crops
    assert measure_lpips(renders, truth, boxes)["lpips_lips"] > 0.05  # the render's box on the shifted truth


def test_a_missing_perceptual_module_gives_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "engine.perceptual", None)  # import fails as if the file did not exist
    truth = _faces(2)
    lpips = measure_lpips(truth, truth, lip_boxes(_lips_at(2, (32.0, 32.0), 8.0), SIZE))
    fid = measure_fid(truth, truth, "truth")
    assert lpips["lpips"] is None and lpips["lpips_lips"] is None and fid["fid"] is None
    assert "engine.perceptual cannot be imported" in lpips["lpips_unavailable"]
    assert "engine.perceptual cannot be imported" in fid["fid_unavailable"]
    listed = still_unavailable([{**lpips, **fid}])
    assert listed["LPIPS"] == lpips["lpips_unavailable"] and listed["FID"] == fid["fid_unavailable"]


def test_missing_weights_give_the_modules_reason_and_measured_ones_leave_the_list(eval_weights, tmp_path,
                                                                                   monkeypatch):
    truth, other = _faces(3), _noisy(_faces(3), 40)
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path))  # an empty folder: read when a measure is taken
    fid = measure_fid(other, truth, "the validation frames")
    missing = measure_lpips(other, truth, np.zeros((3, 3), np.int64))
    assert fid["fid"] is None and perceptual.INCEPTION.name in fid["fid_unavailable"]
    assert "fetch_eval_weights" in fid["fid_unavailable"] and str(tmp_path) in fid["fid_unavailable"]
    assert missing["lpips"] is None and perceptual.ALEXNET.name in missing["lpips_unavailable"]
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(eval_weights))
    lpips = measure_lpips(other, truth, np.zeros((3, 3), np.int64))  # no lips found: frame LPIPS only
    assert lpips["lpips"] > 0.1 and lpips["lpips_lips"] is None and "lips" in lpips["lpips_lips_unavailable"]
    listed = still_unavailable([{**lpips, **fid}, {"fid": None}])
    assert "LPIPS" not in listed and "fetch_eval_weights" in listed["FID"]
    assert {"AUE", "SyncScore (LSE-C, LSE-D)"} <= set(listed)


def test_fid_needs_frames_on_both_sides(tmp_path, monkeypatch):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path))  # had it tried the network, the reason would differ
    result = measure_fid(_faces(1), _faces(5), "truth")
    assert result["fid"] is None and "at least 2 frames" in result["fid_unavailable"]
    assert result["fid_frames"] == [1, 5] and result["fid_run_frames"] == [1, 5]


def test_frames_are_taken_evenly_over_the_run():
    np.testing.assert_array_equal(evenly_spaced(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(evenly_spaced(3, 4), [0, 1, 2])
    long_run = evenly_spaced(2250, quality.FID_MAX_FRAMES)  # 90 s at 25 fps
    assert len(np.unique(long_run)) == quality.FID_MAX_FRAMES and (long_run[0], long_run[-1]) == (0, 2249)
    assert set(np.diff(long_run)) <= {11, 12}
    frames = [np.full((8, 8, 3), k, np.uint8) for k in range(7)]
    assert [int(f[0, 0, 0]) for f in fid_set(frames).frames] == list(range(7))


def test_fid_takes_at_most_the_cap_a_side_and_reuses_the_reference(eval_weights, monkeypatch):
    monkeypatch.setattr(quality, "FID_MAX_FRAMES", 2)  # the real cap, made small so the test takes seconds
    run, truth = _faces(5), _noisy(_faces(3), 30)
    reference = fid_set(truth)
    result = measure_fid(run, reference, "truth")
    assert result["fid_frames"] == [2, 2] and result["fid_run_frames"] == [5, 3] and result["fid_max_frames"] == 2
    expected = perceptual.fid(np.stack([run[0], run[4]]), np.stack([truth[0], truth[2]]))
    assert result["fid"] == pytest.approx(expected, rel=1e-6) and result["fid"] > 0
    features = reference.features
    assert measure_fid(reference, reference, "itself")["fid"] == pytest.approx(0.0, abs=1e-6)
    assert reference.features is features  # computed once, reused by every run compared with it
