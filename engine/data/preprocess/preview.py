"""`syncanim preprocess --preview DATA_DIR`: contact sheet and pose/blendshape curves, to check a dataset by eye."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from engine.data.dataset import Dataset
from engine.data.preprocess.maskfile import has_mask, read_mask_frames
from engine.io.atomic import atomic_path

TILES = 12
TILE_PX = 256
CURVE_BLENDSHAPES = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "browInnerUp", "mouthPucker")
HEAD_TINT = np.array([255, 60, 60], np.float32)
TORSO_TINT = np.array([60, 120, 255], np.float32)
HAND_TINT = np.array([40, 40, 40], np.float32)


def _tile(frame: np.ndarray, head: np.ndarray, torso: np.ndarray, hand: np.ndarray, points: np.ndarray,
          face: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Frame [S, S, 3] with head (red), torso (blue) and hand (dark: not learned) tints, landmarks, face (green) and
    lip (yellow) boxes."""
    import cv2

    picture = frame.astype(np.float32)
    for mask, tint in ((head, HEAD_TINT), (torso, TORSO_TINT), (hand, HAND_TINT)):
        inside = mask > 127
        picture[inside] = 0.65 * picture[inside] + 0.35 * tint
    picture = picture.clip(0, 255).astype(np.uint8)
    scale = TILE_PX / frame.shape[0]
    picture = cv2.resize(picture, (TILE_PX, TILE_PX), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    for x, y in np.round(points * scale).astype(int)[::3]:
        cv2.circle(picture, (int(x), int(y)), 1, (255, 255, 255), -1)
    for box, colour in ((face, (40, 220, 40)), (lips, (250, 220, 30))):
        x0, y0, x1, y1 = (np.asarray(box) * scale).round().astype(int)
        cv2.rectangle(picture, (int(x0), int(y0)), (int(x1), int(y1)), colour, 1)
    return picture


def _save(figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    tmp = atomic_path(path)
    figure.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)
    return path


def contact_sheet(data: Dataset, path: Path) -> Path:
    """TILES frames spread over the dataset (the last one in the validation part) plus the background plate."""
    from matplotlib.figure import Figure

    meta, tracks = data.meta, data.tracks
    indices = sorted({int(round(i)) for i in np.linspace(0, meta.frames - 1, TILES)})
    frames = dict(zip(indices, data.frames(indices)))
    mask_path = data.root / "masks.npz"
    heads, torsos = read_mask_frames(mask_path, "head", indices), read_mask_frames(mask_path, "torso", indices)
    hands = read_mask_frames(mask_path, "hand", indices) if has_mask(mask_path, "hand") else {}
    no_hands = np.zeros((meta.size, meta.size), np.uint8)
    rects = dict(zip(("face_rect", "lip_rect"), data.mask_rects()))
    columns = 4
    rows = -(-(len(indices) + 1) // columns)
    title = (f"{data.root.name}: {meta.frames} frames, {meta.size}px, crop {meta.crop} of "
             f"{meta.source_size[0]}x{meta.source_size[1]}; red head, blue torso, dark hands (not learned), "
             "green face, yellow lips")
    findings = [line for finding in meta.checks for line in textwrap.wrap(f"check: {finding['message']}", 150)]
    figure = Figure(figsize=(columns * 3.0, rows * 3.2 + 0.16 * len(findings)), layout="constrained")
    for slot, k in enumerate(indices):
        axes = figure.add_subplot(rows, columns, slot + 1)
        axes.imshow(_tile(frames[k], heads[k], torsos[k], hands.get(k, no_hands), tracks.landmarks2d[k],
                          rects["face_rect"][k], rects["lip_rect"][k]))
        roll, pitch, yaw = tracks.euler_deg[k]
        flags = ("val " if k >= meta.val_start else "") + ("" if tracks.valid[k] else "NO FACE")
        axes.set_title(f"#{k} {k / meta.fps:.1f}s {flags}\nr{roll:+.0f} p{pitch:+.0f} y{yaw:+.0f} "
                       f"jaw {tracks.blendshape('jawOpen')[k]:.2f}", fontsize=8)
        axes.axis("off")
    axes = figure.add_subplot(rows, columns, len(indices) + 1)
    axes.imshow(data.background())
    axes.set_title("background plate", fontsize=8)
    axes.axis("off")
    figure.suptitle("\n".join([title, *findings]), fontsize=9, color="darkred" if findings else "black")
    return _save(figure, path)


def curves(data: Dataset, path: Path) -> Path:
    """Head rotation, translation and a few blendshapes over time; grey where no face, tinted over validation."""
    from matplotlib.figure import Figure

    meta, tracks = data.meta, data.tracks
    seconds = np.arange(meta.frames) / meta.fps
    figure = Figure(figsize=(12, 8))
    panels = (
        ("rotation (deg)", tracks.euler_deg, ("roll", "pitch", "yaw")),
        ("translation (cm)", tracks.trans - tracks.trans.mean(axis=0), ("x - mean", "y - mean", "z - mean")),
        ("blendshapes", np.stack([tracks.blendshape(n) for n in CURVE_BLENDSHAPES], axis=1), CURVE_BLENDSHAPES),
    )
    for row, (title, values, labels) in enumerate(panels):
        axes = figure.add_subplot(len(panels), 1, row + 1)
        for column, label in enumerate(labels):
            axes.plot(seconds, values[:, column], linewidth=0.9, label=label)
        axes.axvspan(meta.val_start / meta.fps, meta.frames / meta.fps, color="orange", alpha=0.12, label="validation")
        for k in np.flatnonzero(~tracks.valid):
            axes.axvspan(k / meta.fps, (k + 1) / meta.fps, color="grey", alpha=0.3, linewidth=0)
        axes.set_ylabel(title)
        axes.legend(loc="upper right", fontsize=7, ncol=len(labels) + 1)
    axes.set_xlabel("time (s)")
    figure.suptitle(f"{data.root.name}: tracks at {meta.fps:g} fps ({int((~tracks.valid).sum())} frames without a "
                    "face, interpolated)", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def write_preview(data_dir: str | os.PathLike) -> list[Path]:
    """DATA_DIR/preview/contact_sheet.png and curves.png for a finished dataset; returns their paths."""
    data = Dataset(data_dir)
    folder = data.root / "preview"
    folder.mkdir(exist_ok=True)
    return [contact_sheet(data, folder / "contact_sheet.png"), curves(data, folder / "curves.png")]
