"""A tiny procedural presenter dataset for the renderer's tests: a textured head disc and a torso that follow the
head pose through the dataset camera, over a fixed background, with masks, blendshapes and noise speech; and the tiny
avatar trained on it (the suite's shared one is tests/conftest.py's tiny_avatar)."""
import json
import math
from pathlib import Path

import numpy as np

from engine.data.dataset import Camera, FrameWriter, Masks, Meta, Tracks
from engine.io.video import write_wav
from engine.motion.config import EXPRESSION, UPPER_FACE, motion_preset

HEAD_CM = 9.0


def _project(point, focal, c):
    x, y, z = point
    return c + focal * x / -z, c - focal * y / -z


def write_scene_dataset(root: Path, frames: int = 16, size: int = 32, seed: int = 0) -> Path:
    """Write a complete dataset folder (meta, frames, tracks, masks, background, audio) and return it."""
    import imageio.v3 as iio

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    focal = (size / 2) / math.tan(math.radians(31.5))
    c = size / 2
    trans = np.stack([rng.uniform(-2, 2, frames), rng.uniform(-1.5, 1.5, frames), np.full(frames, -45.0)], 1)
    euler = np.stack([rng.uniform(-4, 4, frames), rng.uniform(-4, 4, frames), rng.uniform(-6, 6, frames)], 1)
    upper = rng.uniform(0, 1, (frames, len(UPPER_FACE)))
    mouth = np.zeros((frames, len(EXPRESSION) - len(UPPER_FACE)))  # still, but for the jaw, which opens the mouth
    mouth[:, 0] = np.random.default_rng(seed + 1).uniform(0, 1, frames)
    shapes = np.concatenate([upper, mouth], 1).astype(np.float32)  # (the upper face drawn as before the mouth)
    jaw = shapes[:, EXPRESSION.index("jawOpen")]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    background = np.stack([xx / size * 0.6 + 0.2, np.full_like(xx, 0.35), yy / size * 0.5 + 0.3], -1)
    pictures, head_masks, torso_masks, face_rects, lip_rects = [], [], [], [], []
    for t in range(frames):
        hx, hy = _project(trans[t], focal, c)
        radius = focal * HEAD_CM / -trans[t, 2]
        bx, by = _project(trans[t] + np.array([0.0, -20.0, -3.0]), focal, c)
        torso = (((xx - bx) / (radius * 1.8)) ** 2 + ((yy - by) / (radius * 1.1)) ** 2) < 1.0
        head = ((xx - hx) ** 2 + (yy - hy) ** 2) < radius**2
        img = background.copy()
        img[torso] = (0.15, 0.25, 0.6)
        yaw = math.radians(euler[t, 2])
        shade = 0.6 + 0.3 * np.clip((xx - hx) / radius - math.sin(yaw), -1, 1)
        img[head] = np.stack([0.85 * shade, 0.6 * shade, 0.45 * shade], -1)[head]
        eyes = head & (np.abs(yy - (hy - 0.25 * radius)) < 0.12 * radius * (1.2 - shapes[t, 0]))
        img[eyes & (np.abs(np.abs(xx - hx) - 0.35 * radius) < 0.15 * radius)] = (0.1, 0.1, 0.1)
        lips = 0.06 + 0.12 * jaw[t]
        mouth = head & (((xx - hx) / (0.35 * radius)) ** 2 + ((yy - hy - 0.45 * radius) / (lips * radius)) ** 2 < 1)
        img[mouth] = (0.5, 0.1, 0.15)
        pictures.append((img * 255 + 0.5).astype(np.uint8))
        head_masks.append(head * 255)
        torso_masks.append((torso & ~head) * 255)
        face_rects.append([hx - radius, hy - radius, hx + radius, hy + radius])
        lip_rects.append([hx - 0.4 * radius, hy + 0.3 * radius, hx + 0.4 * radius, hy + 0.6 * radius])
    writer = FrameWriter(root / "frames.mkv", 25)
    for picture in pictures:
        writer.write(picture)
    writer.close()
    head_m, torso_m = np.array(head_masks, np.uint8), np.array(torso_masks, np.uint8)
    Masks(np.maximum(head_m, torso_m), head_m, torso_m, np.array(face_rects).round().astype(int),
          np.array(lip_rects).round().astype(int)).save(root / "masks.npz")
    Tracks(euler, trans, shapes, list(EXPRESSION), np.zeros((frames, 478, 2), np.float32),
           np.ones(frames, bool)).save(root / "tracks.npz")
    iio.imwrite(root / "background.png", (background * 255 + 0.5).astype(np.uint8))
    samples = int(16000 * frames / 25)
    write_wav(root / "audio.wav", 0.1 * rng.standard_normal(samples) * np.sin(np.linspace(0, 20, samples)) ** 2, 16000)
    meta = Meta(fps=25.0, size=size, frames=frames, sample_rate=16000, camera=Camera(focal, c, c),
                crop=(0, 0, size, size), source_size=(size, size), val_start=frames - max(1, frames // 8),
                source="tests/nerf/scenes.py")
    (root / "meta.json").write_text(json.dumps(meta.to_json()))
    return root


def train_tiny_avatar(data: Path, avatar: Path, audio=None, universal: Path | None = None) -> Path:
    """AVATAR_DIR of a tiny avatar trained in seconds on `data`: both stages of the 'test' preset on the CPU, real
    motion model, real renderer (default head: expression only), only small. `universal`: start the syncers from
    that universal model, predicting the upper face and the mouth, as `syncanim train` does; without one they learn
    the upper face from scratch. `audio`: the AudioSettings whose speech features both parts read (default: mel)."""
    # Imported here: the renderer's fast tests import this module for the dataset alone (these take seconds).
    from engine.motion.train import train_motion
    from engine.nerf.train import train_nerf
    from engine.nerf.train_config import nerf_preset

    features = {} if audio is None else {"audio": audio}
    start = {} if universal is None else {"init_from": universal, "blendshapes": EXPRESSION}
    train_motion(motion_preset("test", data, avatar, progress=False, **features, **start))
    train_nerf(nerf_preset("test", data, avatar, device="cpu", progress=False, **features))
    return avatar
