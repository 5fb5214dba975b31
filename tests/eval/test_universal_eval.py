"""`syncanim eval-universal`: the lag, correlation and blink numbers on curves with known answers, and one run of a
tiny universal model over a tiny held-out dataset into the report files."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.eval.universal import best_lag, blink_rate, channel_correlations, lagged_correlation, measure_clip


def _motion_conftest():
    """tests/motion/conftest.py as a module (test folders are not packages; this folder has its own conftest)."""
    import importlib.util

    path = Path(__file__).parents[1] / "motion" / "conftest.py"
    spec = importlib.util.spec_from_file_location("motion_conftest_for_eval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _noise(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(frames)


def test_a_prediction_two_frames_late_has_best_lag_two_and_correlation_one_there():
    truth = _noise(300)
    late = np.concatenate([truth[:2], truth[:-2]])  # pred[t] = truth[t - 2]
    lag, corr, curve = best_lag(late, truth, max_lag=5)
    assert lag == 2
    assert corr == pytest.approx(1.0, abs=1e-12)
    assert set(curve) == set(range(-5, 6))
    assert abs(curve[0]) < 0.3  # white noise: two frames off is unrelated


def test_an_early_prediction_has_a_negative_lag():
    truth = _noise(300, 1)
    early = np.concatenate([truth[3:], truth[-3:]])  # pred[t] = truth[t + 3]
    assert best_lag(early, truth, max_lag=5)[0] == -3
    assert lagged_correlation(early, truth, -3) == pytest.approx(1.0, abs=1e-12)


def test_best_lag_of_a_constant_prediction_is_none():
    lag, corr, _ = best_lag(np.zeros(50), _noise(50), max_lag=2)
    assert lag is None and np.isnan(corr)


def test_channel_correlations_pair_channels_by_name_and_flag_constant_ones():
    truth = np.stack([_noise(100, 2), _noise(100, 3), np.zeros(100)], 1)
    pred = np.stack([-truth[:, 1], np.zeros(100), truth[:, 0]], 1)
    out = channel_correlations(pred, ["b", "c", "a"], truth, ["a", "b", "c"])
    assert out["a"] == pytest.approx(1.0)
    assert out["b"] == pytest.approx(-1.0)
    assert np.isnan(out["c"])


def _blinks(frames: int, onsets: list[int], open_level: float = 0.1, closed: float = 0.5) -> np.ndarray:
    curve = np.full(frames, open_level)
    for t in onsets:
        curve[t:t + 3] = closed
    return curve


def test_blink_rate_counts_closures_per_minute():
    fps, frames = 25.0, 1500  # one minute
    curve = _blinks(frames, [100, 400, 700, 1000, 1300, 1304])  # the last two merge (0.16 s apart)
    shapes = np.stack([curve, curve, np.zeros(frames)], 1)
    assert blink_rate(shapes, ["eyeBlinkLeft", "eyeBlinkRight", "jawOpen"], fps) == pytest.approx(5.0)
    assert np.isnan(blink_rate(shapes, ["a", "b", "c"], fps))


def test_measure_clip_on_known_curves():
    fps, frames = 25.0, 500
    jaw = np.clip(_noise(frames, 4), 0, None)
    blink = _blinks(frames, [50, 250, 450])
    names = ["jawOpen", "eyeBlinkLeft", "eyeBlinkRight"]
    tracked = np.stack([jaw, blink, blink], 1)
    landmarks = np.zeros((frames, 478, 2))
    landmarks[:, 14, 1] = 2.0 * jaw  # inner-lip gap follows the tracked jaw; face height 10
    landmarks[:, 152, 1] = 10.0
    speech = np.arange(frames) % 100 < 60
    euler = np.zeros((frames, 3))
    euler[:, 0] = np.where(speech, 3.0, 1.0) * np.sin(np.arange(frames))
    pred = {"euler_deg": euler, "blendshapes": np.stack([np.roll(jaw, 1), blink, blink], 1),
            "blendshape_names": np.array(names)}
    truth = {"euler_deg": euler, "blendshapes": tracked, "names": names, "landmarks2d": landmarks}
    result, curves = measure_clip(pred, truth, speech, fps, max_lag=5)
    assert result["jaw_best_lag"] == 1
    assert result["jaw_corr_at_best_lag"] == pytest.approx(1.0)
    assert result["mouth_open_corr_tracked"] == pytest.approx(1.0)
    assert result["mouth_open_corr"] == pytest.approx(result["jaw_corr"])
    assert result["blinks_per_min"] == result["blinks_per_min_tracked"] == pytest.approx(3 / (frames / fps / 60))
    assert result["pose_div_ratio"] == pytest.approx(3.0, rel=0.05)
    assert result["channel_corr"]["eyeBlinkLeft"] == pytest.approx(1.0)
    assert len(curves["jaw_pred"]) == frames


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(universal_dir, held-out dataset): a 'test'-preset universal model on two tiny presenters, and a third
    presenter with another seed whose landmarks open the mouth as its tracked jawOpen does."""
    from engine.data.dataset import Tracks
    from engine.data.synth.rig import BLENDSHAPE_NAMES
    from engine.motion.config import EXPRESSION, universal_preset
    from engine.motion.universal import train_universal

    write_synth_dataset = _motion_conftest().write_synth_dataset
    extra = tuple(n for n in EXPRESSION if n not in BLENDSHAPE_NAMES)
    base = tmp_path_factory.mktemp("universal_eval")
    corpus = (base / "a", base / "b")
    for k, root in enumerate(corpus):
        write_synth_dataset(root, seconds=8.0, seed=21 + k, extra=extra)
    heldout = base / "heldout"
    write_synth_dataset(heldout, seconds=8.0, seed=29, extra=extra)
    tracks = Tracks.load(heldout / "tracks.npz")
    landmarks = tracks.landmarks2d.copy()
    landmarks[:, 14, 1] = tracks.blendshape("jawOpen")
    landmarks[:, 152, 1] = 1.0
    replace(tracks, landmarks2d=landmarks).save(heldout / "tracks.npz")
    universal = base / "universal"
    train_universal(universal_preset("test", corpus, universal, progress=False, steps=10, val_every=10))
    return universal, heldout


@pytest.mark.slow  # about 25 s on 2 busy cores, mostly training the tiny model
def test_measure_universal_writes_the_report_json_markdown_and_plot(tiny, tmp_path):
    from engine.eval.universal import measure_universal

    universal, heldout = tiny
    report = measure_universal(universal, [heldout], tmp_path / "report", seed=0)
    written = json.loads((tmp_path / "report" / "universal_report.json").read_text())
    assert written == report
    row = report["datasets"]["heldout"]
    assert row["frames"] == 200
    assert -5 <= row["jaw_best_lag"] <= 5
    assert row["jaw_corr"] is not None and -1.0 <= row["jaw_corr"] <= 1.0
    assert row["mouth_open_corr_tracked"] == pytest.approx(1.0)
    assert row["blinks_per_min_tracked"] is not None
    assert report["mean"]["jaw_corr"] == pytest.approx(row["jaw_corr"])
    markdown = (tmp_path / "report" / "universal_report.md").read_text()
    assert "| heldout |" in markdown and "| **mean** |" in markdown and "| jawOpen |" in markdown
    assert (tmp_path / "report" / "jaw.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "report").glob(".*partial*"))


@pytest.mark.slow
def test_a_clip_heard_otherwise_is_measured_against_the_same_frames_and_speech(tiny):
    """`heard` (a room, a microphone: scripts/universal_rooms.py) changes what the model hears, not the truth."""
    from engine.data.dataset import Dataset
    from engine.eval.universal import run_clip

    universal, heldout = tiny
    heard = []

    def silence(audio: np.ndarray) -> np.ndarray:
        heard.append(len(audio))
        return np.zeros_like(audio)

    dry, dry_curves = run_clip(universal, heldout, 0, 5)
    muted, muted_curves = run_clip(universal, heldout, 0, 5, heard=silence)
    assert heard == [len(Dataset(heldout).audio())]
    assert muted["speech_fraction"] == dry["speech_fraction"] > 0
    np.testing.assert_array_equal(muted_curves["jaw_truth"], dry_curves["jaw_truth"])
    assert not np.allclose(muted_curves["jaw_pred"], dry_curves["jaw_pred"])


def test_cli_refuses_a_folder_without_a_model(tmp_path, capsys):
    from engine.cli import main

    assert main(["eval-universal", str(tmp_path), "--data", str(tmp_path), "-o", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert "motion.safetensors is missing" in error and "syncanim universal" in error
