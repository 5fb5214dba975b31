"""`syncanim eval-universal`: a universal motion model calibrated onto held-out speakers and measured against their
MediaPipe tracks (per-channel correlation, jawOpen lag, mouth opening, blinks, pose diversity).

The numbers come from pure functions on arrays (`lagged_correlation`, `best_lag`, `channel_correlations`,
`blink_rate`, `measure_clip`); `measure_universal` only reads datasets, runs the model and writes the report.
The truth is what MediaPipe tracked on the video (tracks.npz), never a synthetic rig's ground truth, so the
numbers mean the same on real footage.
"""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.audio import activity
from engine.data.dataset import Dataset, DatasetError
from engine.eval import metrics
from engine.eval.plots import _figure, _save, _shade_speech
from engine.eval.report import clean
from engine.io.atomic import write_text_atomic

FORMAT = "syncanim-universal-eval"
VERSION = 1
JAW = "jawOpen"
MOUTH_PROXY = ("predicted jawOpen vs the tracked inner-lip gap over face height (metrics.mouth_opening of the "
               "MediaPipe landmarks); tracked jawOpen vs the same gap is the ceiling a perfect jawOpen would reach")
"""What the mouth opening correlation compares: the prediction has blendshapes only, the tracks also landmarks."""
HEADLINE = ("jaw_corr", "jaw_best_lag", "jaw_corr_at_best_lag", "mouth_open_corr", "mouth_open_corr_tracked",
            "blinks_per_min", "blinks_per_min_tracked", "pose_div_ratio", "pose_div_ratio_tracked")
"""The per-dataset numbers of the summary table, in its column order (their mean is its last row)."""


class UniversalEvalError(ValueError):
    """An input of `syncanim eval-universal` is missing or unusable; the message names the file and the fix."""


def lagged_correlation(pred: np.ndarray, truth: np.ndarray, lag: int) -> float:
    """Pearson correlation of pred[t] with truth[t - lag], curves [T]: lag > 0 asks whether the prediction comes
    `lag` frames late, lag < 0 early. NaN when fewer than 3 frames overlap."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if len(p) != len(t):
        raise ValueError(f"lagged_correlation: lengths differ, {len(p)} vs {len(t)}")
    if abs(lag) >= len(p):
        return float("nan")
    if lag >= 0:
        return metrics.correlation(p[lag:], t[:len(t) - lag])
    return metrics.correlation(p[:lag], t[-lag:])


def best_lag(pred: np.ndarray, truth: np.ndarray, max_lag: int = 5) -> tuple[int | None, float, dict[int, float]]:
    """The lag in -max_lag..max_lag (frames; positive = the prediction is late) where `lagged_correlation` peaks:
    (lag, its correlation, every lag's correlation). (None, NaN, ...) when no lag gives a number."""
    curve = {lag: lagged_correlation(pred, truth, lag) for lag in range(-max_lag, max_lag + 1)}
    finite = {lag: c for lag, c in curve.items() if math.isfinite(c)}
    if not finite:
        return None, float("nan"), curve
    # Ties go to the smallest delay: a flat peak should not read as latency.
    lag = max(finite, key=lambda k: (finite[k], -abs(k)))
    return lag, finite[lag], curve


def channel_correlations(pred: np.ndarray, pred_names: list[str], truth: np.ndarray,
                         truth_names: list[str]) -> dict[str, float]:
    """Pearson correlation per blendshape the prediction [T, K] and the truth [T, J] both name (NaN for a channel
    that stays constant on either side, as a rig without that shape does)."""
    return {name: metrics.correlation(pred[:, pred_names.index(name)], truth[:, truth_names.index(name)])
            for name in pred_names if name in truth_names}


def blink_curve(blendshapes: np.ndarray, names: list[str]) -> np.ndarray:
    """Mean of eyeBlinkLeft and eyeBlinkRight [T] from blendshapes [T, K] (NaN without them)."""
    if "eyeBlinkLeft" not in names or "eyeBlinkRight" not in names:
        return np.full(len(blendshapes), np.nan)
    return blendshapes[:, [names.index("eyeBlinkLeft"), names.index("eyeBlinkRight")]].astype(np.float64).mean(1)


def blink_rate(blendshapes: np.ndarray, names: list[str], fps: float) -> float:
    """Blinks per minute of an eyeBlink pair [T, K], counted as `syncanim eval` counts the motion model's: hysteresis
    thresholds relative to the clip's open-eye level (metrics.blink_thresholds, metrics.count_blinks)."""
    curve = blink_curve(blendshapes, names)
    if not np.isfinite(curve).any():
        return float("nan")
    onsets = metrics.count_blinks(curve, *metrics.blink_thresholds(curve), fps)
    return metrics.blinks_per_minute(onsets, len(curve), fps)


def measure_clip(pred: dict[str, np.ndarray], tracks: dict[str, Any], speech: np.ndarray, fps: float,
                 max_lag: int = 5) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every number for one clip: pred has euler_deg [T, 3], blendshapes [T, K], blendshape_names [K]; tracks has
    euler_deg [T, 3], blendshapes [T, J], names [J], landmarks2d [T, 478, 2]; speech bool [T]. All on the same
    frames. Returns (metrics, curves for the plot)."""
    names = [str(n) for n in pred["blendshape_names"]]
    truth_names = list(tracks["names"])
    per_channel = channel_correlations(pred["blendshapes"], names, tracks["blendshapes"], truth_names)
    jaw_pred = pred["blendshapes"][:, names.index(JAW)].astype(np.float64)
    jaw_truth = tracks["blendshapes"][:, truth_names.index(JAW)].astype(np.float64)
    lag, lag_corr, lag_curve = best_lag(jaw_pred, jaw_truth, max_lag)
    opening = metrics.mouth_opening(tracks["landmarks2d"])
    diversity = metrics.pose_diversity(pred["euler_deg"], speech)
    tracked_diversity = metrics.pose_diversity(tracks["euler_deg"], speech)
    frames = len(jaw_pred)
    result = {
        "frames": frames, "seconds": frames / fps, "speech_fraction": float(speech.mean()) if frames else None,
        "jaw_corr": per_channel.get(JAW, float("nan")), "jaw_best_lag": lag, "jaw_corr_at_best_lag": lag_corr,
        "jaw_corr_by_lag": {str(k): v for k, v in lag_curve.items()},
        "mouth_open_corr": metrics.correlation(jaw_pred, opening),
        "mouth_open_corr_tracked": metrics.correlation(jaw_truth, opening),
        "blinks_per_min": blink_rate(pred["blendshapes"], names, fps),
        "blinks_per_min_tracked": blink_rate(tracks["blendshapes"], truth_names, fps),
        "pose_div_speech": diversity["speech"], "pose_div_silence": diversity["silence"],
        "pose_div_ratio": diversity["ratio"], "pose_div_ratio_tracked": tracked_diversity["ratio"],
        "channel_corr": per_channel,
        "channel_corr_mean": _nanmean(per_channel.values()),
    }
    return result, {"jaw_pred": jaw_pred, "jaw_truth": jaw_truth, "speech": speech}


def mean_row(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean over datasets of every HEADLINE number, of channel_corr_mean and of each channel's correlation
    (NaN entries skipped)."""
    row = {key: _nanmean(r[key] for r in results) for key in HEADLINE + ("channel_corr_mean",)}
    channels = {name for r in results for name in r["channel_corr"]}
    row["channel_corr"] = {name: _nanmean(r["channel_corr"].get(name) for r in results) for name in sorted(channels)}
    return row


def _nanmean(values) -> float:
    numbers = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(numbers)) if numbers else float("nan")


def _open_dataset(data_dir: Path):
    try:
        dataset = Dataset(data_dir)
    except DatasetError as error:
        raise UniversalEvalError(str(error)) from error
    if dataset.meta.silent:
        raise UniversalEvalError(f"{data_dir / 'meta.json'} says the recording is silent; the universal model is "
                                 "measured on speech: pass a dataset preprocessed from a video with speech")
    if JAW not in dataset.tracks.blendshape_names:
        raise UniversalEvalError(f"{data_dir / 'tracks.npz'} has no {JAW} track; re-run `syncanim preprocess` on "
                                 "the video with this version, which tracks every MediaPipe blendshape")
    return dataset


def run_clip(universal_dir: Path, data_dir: Path, seed: int, max_lag: int,
             heard: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[dict[str, Any], dict]:
    """Calibrate onto one dataset (in a throw-away avatar folder), predict over its whole audio, measure.
    `heard`: what the model hears instead of the 16 kHz recording (it in a room, through a microphone); the speech
    mask stays the recording's."""
    from engine.motion.predict import predict_motion
    from engine.motion.universal import calibrate_universal

    dataset = _open_dataset(data_dir)
    meta, tracks = dataset.meta, dataset.tracks
    audio = dataset.audio()
    sound = _to_16k(audio, meta.sample_rate)
    with tempfile.TemporaryDirectory(prefix="universal-eval-") as avatar:
        calibrate_universal(universal_dir, data_dir, Path(avatar))
        pred = predict_motion(avatar, sound if heard is None else heard(sound), mode="one_shot", seed=seed)
    # The model gives ceil(audio seconds x fps) frames; the video may end a frame earlier or later.
    n = min(len(pred["euler_deg"]), len(tracks))
    pred = {k: (v if k == "blendshape_names" else v[:n]) for k, v in pred.items()}
    truth = {"euler_deg": tracks.euler_deg[:n], "blendshapes": tracks.blendshapes[:n],
             "names": tracks.blendshape_names, "landmarks2d": tracks.landmarks2d[:n]}
    speech = activity.speech_mask(audio, meta.sample_rate, meta.fps, n)
    result, curves = measure_clip(pred, truth, speech, meta.fps, max_lag)
    result.update(data=str(data_dir), fps=meta.fps, faces_valid=float(tracks.valid[:n].mean()))
    curves["fps"] = meta.fps
    return result, curves


def _to_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """predict_motion takes 16 kHz arrays; datasets are written at 16 kHz, others are refused rather than guessed."""
    if sample_rate != 16000:
        raise UniversalEvalError(f"the dataset's audio is at {sample_rate} Hz; the motion model reads 16 kHz: "
                                 "re-run `syncanim preprocess` (it writes 16 kHz audio)")
    return audio


def measure_universal(universal_dir: str | Path, data_dirs, out_dir: str | Path, seed: int = 0,
                      max_lag: int = 5) -> dict[str, Any]:
    """Measure UNIVERSAL_DIR's model on each held-out dataset; write OUT_DIR/universal_report.json,
    universal_report.md and jaw.png; returns the report (as written, NaN as None)."""
    from engine.motion.runtime import motion_path

    universal_dir, out = Path(universal_dir), Path(out_dir)
    if not motion_path(universal_dir).is_file():
        raise UniversalEvalError(f"{motion_path(universal_dir)} is missing; train the model with "
                                 f"`syncanim universal DATA_DIR... -o {universal_dir}` (or pass its folder)")
    names = _dataset_names([Path(d) for d in data_dirs])
    results, curves = {}, {}
    for name, data_dir in names.items():
        results[name], curves[name] = run_clip(universal_dir, data_dir, seed, max_lag)
    report = clean({
        "format": FORMAT, "version": VERSION, "universal": str(motion_path(universal_dir).resolve()),
        "seed": seed, "mode": "one_shot", "max_lag": max_lag, "mouth_open_proxy": MOUTH_PROXY,
        "lag_sign": "positive = the prediction comes late (pred[t] best matches tracks[t - lag])",
        "datasets": results, "mean": mean_row(list(results.values())),
    })
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "universal_report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "universal_report.md", render_markdown(report))
    plot_jaw(out / "jaw.png", curves)
    return report


def _dataset_names(data_dirs: list[Path]) -> dict[str, Path]:
    """A short label per dataset: its folder name, or parent/name where two folders share a name."""
    labels = [d.name for d in data_dirs]
    if len(set(labels)) < len(labels):
        labels = [f"{d.parent.name}/{d.name}" for d in data_dirs]
    return dict(zip(labels, data_dirs))


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    """universal_report.md: the headline table (a row per dataset and their mean) and per-channel correlations."""
    columns = ("jawOpen corr", "best lag", "corr at lag", "mouth open corr", "(tracked jaw)", "blinks/min",
               "(tracked)", "pose div ratio", "(tracked)")
    lines = ["# Universal motion model on held-out speakers", "",
             f"Model `{report['universal']}`, one-shot, seed {report['seed']}; truth = MediaPipe tracks. "
             f"Lag: {report['lag_sign']}. Mouth opening: {report['mouth_open_proxy']}.", "",
             "| dataset | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    rows = list(report["datasets"].items()) + [("**mean**", report["mean"])]
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(row.get(k)) for k in HEADLINE) + " |")
    names = list(report["mean"]["channel_corr"])
    lines += ["", "## Pearson correlation per blendshape", "",
              "| blendshape | " + " | ".join(report["datasets"]) + " | mean |",
              "|---" * (len(report["datasets"]) + 2) + "|"]
    for channel in names:
        cells = [_cell(r["channel_corr"].get(channel)) for r in report["datasets"].values()]
        lines.append(f"| {channel} | " + " | ".join(cells) + f" | {_cell(report['mean']['channel_corr'][channel])} |")
    lines += ["", "n/a: a channel that stays constant on one side (or too few frames)."]
    return "\n".join(lines) + "\n"


def plot_jaw(path: Path, curves: dict[str, dict[str, Any]]) -> Path:
    """jaw.png: tracked vs predicted jawOpen over time, one panel per dataset, speech shaded."""
    plt, fig, axes = _figure(len(curves))
    for ax, (name, c) in zip(axes, curves.items()):
        fps = c["fps"]
        seconds = np.arange(len(c["jaw_truth"])) / fps
        _shade_speech(ax, c["speech"], fps)
        ax.plot(seconds, c["jaw_truth"], color="black", lw=1.0, label="tracked (MediaPipe)")
        ax.plot(seconds, c["jaw_pred"], color="tab:red", lw=1.0, label="predicted")
        ax.set_ylabel(JAW)
        ax.set_title(name, fontsize=9)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("seconds (grey: speech)")
    return _save(plt, fig, path)
