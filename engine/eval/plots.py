"""The eval report's figures (matplotlib, Agg backend: no display): pose curves, blink curves, mouth vs speech.

Each function takes the curves `engine.eval.report.audio_driven_metrics` returns (per-frame arrays [T]) and writes
one PNG atomically; the time axis is seconds.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from engine.io.atomic import atomic_path

AXES = ("roll", "pitch", "yaw")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _figure(rows: int, height: float = 2.2):
    plt = _pyplot()
    fig, axes = plt.subplots(rows, 1, figsize=(10, height * rows), sharex=True, squeeze=False)
    return plt, fig, axes[:, 0]


def _shade_speech(ax, speech: np.ndarray, fps: float) -> None:
    """Grey spans over the speech frames (the VAD mask [T])."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        ax.axvspan(start / fps, stop / fps, color="0.88", lw=0)


def _save(plt, fig, path: Path) -> Path:
    """Write the figure atomically, making its folder if needed (an avatar copied without its val/ folder)."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_pose(path: Path, curves: dict[str, Any], fps: float) -> Path:
    """Euler angles of the audio-driven run as commanded and as MediaPipe sees them on the rendered frames (and the
    truth where it exists), speech frames shaded."""
    plt, fig, axes = _figure(3)
    euler, truth = curves["euler"], curves["truth_euler"]
    seen = curves.get("rendered_euler")
    if seen is not None and not np.isfinite(seen).any():
        seen = None
    t = np.arange(len(euler)) / fps
    for i, ax in enumerate(axes):
        _shade_speech(ax, curves["speech"], fps)
        ax.plot(t, euler[:, i], color="C0", label="audio-driven, commanded")
        if seen is not None:  # MediaPipe's camera is not the renderer's: compare the motion, not the offset
            shift = np.nanmedian(euler[:, i]) - np.nanmedian(seen[:, i])
            ax.plot(t[: len(seen)], seen[:, i] + shift, color="C2", lw=0.8,
                    label="audio-driven, rendered (MediaPipe, median-aligned)")
        if truth is not None:
            ax.plot(t[: len(truth)], truth[:, i], color="C1", ls="--", label="truth")
        ax.set_ylabel(f"{AXES[i]} (deg)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title("head pose (grey: speech by the energy VAD)")
    axes[-1].set_xlabel("time (s)")
    return _save(plt, fig, path)


def plot_blinks(path: Path, curves: dict[str, Any], fps: float, thresholds: tuple[float, float]) -> Path:
    """EAR measured on the rendered frames and the motion model's eyeBlink curve, detected blinks marked."""
    plt, fig, axes = _figure(2)
    ear, blink = curves["ear"], curves["motion_blink"]
    t = np.arange(len(blink)) / fps
    ax = axes[0]
    ax.plot(t[: len(ear)], ear, color="C0", label="EAR (MediaPipe on renders)")
    for level, style in zip(curves["ear_thresholds"], ("--", ":")):
        if np.isfinite(level):
            ax.axhline(level, color="0.5", ls=style, lw=0.8)
    for onset in curves["ear_blinks"]:
        ax.axvline(onset / fps, color="C3", lw=1.0)
    ax.set_ylabel("eye aspect ratio")
    ax.set_title(f"blinks rendered: EAR on the rendered frames ({len(curves['ear_blinks'])} detected, red)")
    ax = axes[1]
    ax.plot(t, blink, color="C2", label="eyeBlink (motion model)")
    if curves["truth_blink"] is not None:
        ax.plot(t[: len(curves["truth_blink"])], curves["truth_blink"], color="C1", ls="--", label="eyeBlink (truth)")
    for level, style in zip(thresholds, ("--", ":")):
        ax.axhline(level, color="0.5", ls=style, lw=0.8)
    for onset in curves["motion_blinks"]:
        ax.axvline(onset / fps, color="C3", lw=1.0)
    ax.set_ylabel("eyeBlink")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"blinks commanded: motion model's eyeBlink ({len(curves['motion_blinks'])} detected, red)")
    ax.set_xlabel("time (s)")
    return _save(plt, fig, path)


def plot_mouth(path: Path, curves: dict[str, Any], fps: float) -> Path:
    """Mouth opening of the rendered frames (and truth) and the breath against the speech envelope, speech frames
    shaded."""
    plt, fig, axes = _figure(1, height=3.2)
    ax = axes[0]
    opening, envelope = curves["opening"], curves["envelope"]
    t = np.arange(len(envelope)) / fps
    _shade_speech(ax, curves["speech"], fps)
    ax.plot(t[: len(opening)], opening, color="C0", label="mouth opening, audio-driven render")
    if curves["truth_opening"] is not None:
        ax.plot(t[: len(curves["truth_opening"])], curves["truth_opening"], color="C1", ls="--",
                label="mouth opening, truth")
    top = np.nanmax(np.concatenate([opening, curves["truth_opening"] if curves["truth_opening"] is not None
                                    else np.zeros(0), [1e-3]]))
    scale = top / max(float(envelope.max()), 1e-9) if np.isfinite(top) else 1.0
    ax.plot(t, envelope * scale, color="0.3", lw=0.8, label="speech envelope (RMS, scaled)")
    ax.set_ylabel("inner-lip gap / face height")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", fontsize=8)
    if curves.get("breath") is not None:  # out through each phrase, in at its pause
        lungs = ax.twinx()
        lungs.plot(t[: len(curves["breath"])], curves["breath"], color="C2", lw=0.8, alpha=0.8)
        lungs.set_ylim(-1.1, 4.0)  # under the mouth curves
        lungs.set_yticks([-1, 0, 1])
        lungs.set_ylabel("breath (green; -1 out .. 1 in)", color="C2")
    ax.set_title("mouth opening and breath vs speech (grey: speech by the energy VAD)")
    return _save(plt, fig, path)


def plot_torso(path: Path, shifts_px, rise_px: float, fps: float, val_start: int, follow_px=None) -> Path:
    """The torso shift training measured on each dataset frame (x, y in pixels of the dataset frame), the turn the
    engine predicts from the head's recent poses (follow_px [T], if the avatar has one), the breathing rise it plays
    back, and where the validation frames begin."""
    plt, fig, axes = _figure(2)
    t = np.arange(len(shifts_px)) / fps
    for ax, column, name in zip(axes, (0, 1), ("x: torso's own turn", "y: breath and posture")):
        ax.plot(t, shifts_px[:, column], color="C0", lw=0.8, label="measured")
        ax.axvline(val_start / fps, color="C3", ls=":", lw=1, label="validation frames from here")
        ax.set_ylabel(f"{name} (px)")
    if follow_px is not None and np.any(follow_px):
        axes[0].plot(t, follow_px, color="C1", lw=0.8, label="from the head's recent poses (played live)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].axhspan(-rise_px, rise_px, color="C1", alpha=0.15, lw=0, label=f"breath played live: ±{rise_px:.2f} px")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[0].set_title("torso shift the head pose does not explain (grid read offset; y > 0: shoulders up)")
    axes[-1].set_xlabel("time in the dataset (s)")
    return _save(plt, fig, path)


def plot_blink_gain(path: Path, crops: list[np.ndarray], result) -> Path:
    """The eyes of the blink-gain renders: a column per training pose (crops [1 + G, h, w, 3] each), a row for the
    open eyes and one per gain tried, labelled with its shut ratio; the chosen gain's row label in red.
    `result`: the BlinkGain (engine/eval/blink_gain.py) they measured."""
    plt = _pyplot()
    rows = 1 + len(result.gains)
    fig, axes = plt.subplots(rows, len(crops), figsize=(1.9 * len(crops) + 0.8, 0.85 * rows + 0.6), squeeze=False)
    labels = ["open"] + [f"x{g:.1f}: {'-' if r is None else f'{r:.2f}'}"
                         for g, r in zip(result.gains, result.shut_ratio)]
    for i, row in enumerate(axes):
        for ax, crop in zip(row, crops):
            ax.imshow(crop[i])
            ax.set_xticks([])
            ax.set_yticks([])
        chosen = i > 0 and result.gains[i - 1] == result.gain
        row[0].set_ylabel(labels[i], rotation=0, ha="right", va="center", fontsize=8,
                          color="C3" if chosen else "black")
    fig.suptitle(f"blink gain x{result.gain:.1f}: EAR shut / open (median over the poses) at most {result.target:.2f}",
                 fontsize=9)
    return _save(plt, fig, path)
