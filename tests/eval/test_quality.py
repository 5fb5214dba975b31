"""LPIPS and FID in the eval report (engine.eval.quality): lip boxes and crops, and 'unavailable' with the reason
when engine.eval.perceptual or its weights are missing (a stand-in module takes the networks' place)."""
import sys

import numpy as np
import pytest

from engine.eval import metrics
from engine.eval.quality import LIP_SIDE, lip_boxes, measure_fid, measure_lpips
from engine.eval.report import still_unavailable

SIZE = 64


def _lips_at(frames: int, centre: tuple[float, float], half: float) -> np.ndarray:
    """[T, 478, 2] landmarks whose lip points spread over a square of +-half around centre (others far off)."""
    points = np.full((frames, 478, 2), 1000.0)
    angles = np.linspace(0, 2 * np.pi, len(metrics.LIPS), endpoint=False)
    ring = np.stack([centre[0] + half * np.cos(angles), centre[1] + half * np.sin(angles)], axis=-1)
    points[:, list(metrics.LIPS)] = ring
    return points


def _frames(frames: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(frames)]


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


def test_lip_lpips_looks_at_the_lips_only(fake_perceptual):
    truth = [np.full((SIZE, SIZE, 3), 128, np.uint8) for _ in range(3)]
    boxes = lip_boxes(_lips_at(3, (32.0, 44.0), 8.0), SIZE)
    at_lips, elsewhere = [f.copy() for f in truth], [f.copy() for f in truth]
    for frame in at_lips:
        frame[40:48, 28:36] = 0
    for frame in elsewhere:
        frame[0:8, 0:8] = 0
    lips_changed = measure_lpips(at_lips, truth, boxes)
    other_changed = measure_lpips(elsewhere, truth, boxes)
    assert lips_changed["lpips"] == pytest.approx(other_changed["lpips"])  # the same amount of change per frame
    assert lips_changed["lpips_lips"] > 5 * lips_changed["lpips"]
    assert other_changed["lpips_lips"] == 0.0
    assert ("lpips", (3, LIP_SIDE, LIP_SIDE, 3), (3, LIP_SIDE, LIP_SIDE, 3)) in fake_perceptual.calls
    assert "lpips_unavailable" not in lips_changed and lips_changed["lpips_lip_frames"] == 3


def test_a_missing_perceptual_module_gives_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "engine.eval.perceptual", None)  # import fails as if the file did not exist
    truth = _frames(2, 1)
    lpips = measure_lpips(truth, truth, lip_boxes(_lips_at(2, (32.0, 32.0), 8.0), SIZE))
    fid = measure_fid(truth, truth, "truth")
    assert lpips["lpips"] is None and lpips["lpips_lips"] is None and fid["fid"] is None
    assert "engine.eval.perceptual cannot be imported" in lpips["lpips_unavailable"]
    assert "engine.eval.perceptual cannot be imported" in fid["fid_unavailable"]
    listed = still_unavailable([{**lpips, **fid}])
    assert listed["LPIPS"] == lpips["lpips_unavailable"] and listed["FID"] == fid["fid_unavailable"]


def test_missing_weights_give_the_modules_reason_and_measured_ones_leave_the_list(fake_perceptual):
    truth, other = _frames(4, 2), _frames(4, 3)
    fake_perceptual.missing = "no Inception weights; run scripts/fetch_eval_weights.py"
    fid = measure_fid(other, truth, "the validation frames")
    assert fid["fid"] is None and "fetch_eval_weights" in fid["fid_unavailable"]
    fake_perceptual.missing = None
    lpips = measure_lpips(other, truth, np.zeros((4, 3), np.int64))  # no lips found: frame LPIPS only
    assert lpips["lpips"] > 0.1 and lpips["lpips_lips"] is None and "lips" in lpips["lpips_lips_unavailable"]
    listed = still_unavailable([{**lpips, **fid}, {"fid": None}])
    assert "LPIPS" not in listed and "fetch_eval_weights" in listed["FID"]
    assert {"AUE", "SyncScore (LSE-C, LSE-D)"} <= set(listed)


def test_fid_needs_frames_on_both_sides(fake_perceptual):
    result = measure_fid(_frames(1, 4), _frames(5, 5), "truth")
    assert result["fid"] is None and "at least 2 frames" in result["fid_unavailable"] and not fake_perceptual.calls
    assert measure_fid(_frames(3, 4), _frames(5, 5), "truth")["fid_frames"] == [3, 5]
