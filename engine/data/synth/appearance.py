"""How a synthetic presenter looks: per-seed colours, proportions and framing, the face photo and the backdrop."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.face_model import create_face_landmarker
from engine.data.synth.rig import FaceShape

# Skin tones as CIELAB means, light to deep (typical ranges of measured facial skin).
SKIN_TONES_LAB = (
    (72.0, 11.0, 16.0), (66.0, 13.0, 18.0), (60.0, 14.0, 21.0), (54.0, 15.0, 23.0),
    (47.0, 15.0, 22.0), (40.0, 14.0, 20.0), (33.0, 12.0, 16.0),
)
HAIR_COLOURS = (
    (0.07, 0.06, 0.05), (0.16, 0.10, 0.07), (0.30, 0.19, 0.11), (0.42, 0.22, 0.12),
    (0.66, 0.52, 0.32), (0.55, 0.54, 0.52), (0.24, 0.16, 0.10),
)


@dataclass(frozen=True)
class Look:
    """Everything that differs between synthetic subjects except the voice (all lengths in cm)."""

    skin_lab: tuple[float, float, float]
    hair_rgb: tuple[float, float, float]
    clothes_rgb: tuple[float, float, float]
    wall_rgb: tuple[float, float, float]
    accent_rgb: tuple[float, float, float]
    shape: FaceShape
    hair_length: float  # 0 short .. 1 covering the ears and nape
    hair_volume: float  # cm the hair stands off the skull
    neck_radius: float
    shoulder_half_width: float
    chest_depth: float
    neckline_depth: float  # cm below the neck base where the clothing starts at the front
    fabric: tuple[float, float, float]  # stripe angle (rad), stripes per cm, contrast; contrast 0 = plain
    light_dir: tuple[float, float, float]  # toward the light, camera space
    distance: float  # camera to head, cm
    head_offset: tuple[float, float]  # head centre x, y in camera space (cm)
    fovy_deg: float
    tint: tuple[float, float, float]  # camera white balance: RGB gains
    sensor_noise: float  # grain amplitude, fraction of full scale


def choose_look(rng: np.random.Generator) -> Look:
    """A random but plausible presenter."""
    shape = FaceShape(
        width=float(rng.uniform(0.94, 1.06)), height=float(rng.uniform(0.95, 1.05)),
        depth=float(rng.uniform(0.92, 1.08)), jaw_width=float(rng.uniform(-0.05, 0.07)),
        nose=float(rng.uniform(-0.25, 0.35)),
    )
    clothes_hue = rng.uniform(0, 1)
    clothes = _hsv(clothes_hue, rng.uniform(0.15, 0.7), rng.uniform(0.18, 0.75))
    wall = _hsv(rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(0.55, 0.9))
    accent = _hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.6), rng.uniform(0.25, 0.7))
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.2, 0.7), 1.0])
    light /= np.linalg.norm(light)
    tone = SKIN_TONES_LAB[int(rng.integers(len(SKIN_TONES_LAB)))]
    striped = rng.uniform() < 0.4
    warmth = float(rng.uniform(-0.05, 0.05))
    fabric = (float(rng.choice([0.0, 0.0, 0.5, 1.5708])), float(rng.uniform(0.3, 1.2)), float(rng.uniform(0.1, 0.35)) * striped)
    return Look(
        skin_lab=tuple(float(c + d) for c, d in zip(tone, rng.uniform(-2.5, 2.5, 3))),
        hair_rgb=tuple(float(c) for c in HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]),
        clothes_rgb=clothes, wall_rgb=wall, accent_rgb=accent, shape=shape,
        hair_length=float(rng.uniform(0.1, 0.8)), hair_volume=float(rng.uniform(1.4, 2.8)),
        neck_radius=float(rng.uniform(5.8, 6.6)), shoulder_half_width=float(rng.uniform(18.0, 22.0)),
        chest_depth=float(rng.uniform(10.0, 12.5)), neckline_depth=float(rng.uniform(1.5, 6.0)), fabric=fabric,
        light_dir=tuple(float(c) for c in light), distance=float(rng.uniform(64.0, 74.0)),
        head_offset=(float(rng.uniform(-2.5, 2.5)), float(rng.uniform(3.0, 5.5))),
        fovy_deg=float(rng.uniform(32.0, 36.0)),
        tint=(1.0 + warmth, 1.0, 1.0 - warmth), sensor_noise=float(rng.uniform(0.004, 0.016)),
    )


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return tuple(float(c) for c in colorsys.hsv_to_rgb(float(h), float(s), float(v)))


@dataclass(frozen=True)
class FacePhoto:
    """A still face photo and MediaPipe's 478 landmarks on it."""

    image: np.ndarray  # [H, W, 3] uint8
    landmarks: np.ndarray  # [478, 2] float pixels (x right, y down)


def astronaut_photo(task_path: str | None = None) -> FacePhoto:
    """scikit-image's public-domain astronaut portrait, landmarked by MediaPipe FaceLandmarker."""
    import mediapipe as mp
    import skimage.data

    image = np.ascontiguousarray(skimage.data.astronaut())
    with create_face_landmarker(task_path) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    if not result.face_landmarks:
        raise RuntimeError("skimage astronaut: MediaPipe found no face; the face_landmarker.task model may be damaged")
    h, w = image.shape[:2]
    points = np.array([[p.x * w, p.y * h] for p in result.face_landmarks[0]], np.float64)
    return FacePhoto(image, points)


def _polygon_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    from skimage.draw import polygon

    mask = np.zeros(shape, np.float32)
    rr, cc = polygon(points[:, 1], points[:, 0], shape)
    mask[rr, cc] = 1.0
    return mask


def recolour_face(photo: FacePhoto, oval: np.ndarray, eyes: list[np.ndarray], look: Look):
    """The photo with its skin moved to the subject's tone (eyes kept); returns (image uint8, flat skin RGB)."""
    from scipy.ndimage import gaussian_filter
    from skimage.color import lab2rgb, rgb2lab

    image = photo.image.astype(np.float64) / 255.0
    shape = image.shape[:2]
    face = _polygon_mask(shape, photo.landmarks[oval])
    for eye in eyes:
        face -= _polygon_mask(shape, photo.landmarks[eye]) * 1.0
    mask = gaussian_filter(np.clip(face, 0, 1), 3.0)
    lab = rgb2lab(image)
    core = gaussian_filter(face, 1.0) > 0.99
    mean = np.median(lab[core], axis=0)
    target = np.array(look.skin_lab)
    shifted = lab.copy()
    # Lightness is scaled rather than shifted so shading contrast shrinks with deeper tones, as it does.
    ratio = target[0] / mean[0]
    shifted[..., 0] = lab[..., 0] * (1 + (ratio - 1) * mask)
    shifted[..., 1:] = lab[..., 1:] + (target[1:] - mean[1:]) * mask[..., None]
    rgb = np.clip(lab2rgb(shifted), 0, 1)
    skin = np.median(rgb[core], axis=0)
    return (rgb * 255.0 + 0.5).astype(np.uint8), skin.astype(np.float32)


def backdrop(look: Look, size: int, rng: np.random.Generator) -> np.ndarray:
    """A static room-like background [size, size, 3] uint8: lit wall, a door or shelf edge, a picture."""
    from scipy.ndimage import gaussian_filter

    ys, xs = np.mgrid[0:size, 0:size] / size
    wall = np.array(look.wall_rgb)
    light_x = rng.uniform(0.1, 0.9)
    falloff = 1.0 - 0.35 * np.sqrt((xs - light_x) ** 2 + 0.5 * (ys - 0.2) ** 2)
    image = wall[None, None] * falloff[..., None]
    accent = np.array(look.accent_rgb)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = rng.uniform(-0.1, 0.85), rng.uniform(-0.1, 0.6)
        w, h = rng.uniform(0.08, 0.35), rng.uniform(0.1, 0.6)
        box = ((xs > x0) & (xs < x0 + w) & (ys > y0) & (ys < y0 + h)).astype(np.float64)
        colour = accent * rng.uniform(0.7, 1.3) if rng.uniform() < 0.6 else wall * rng.uniform(0.6, 0.9)
        image = image * (1 - box[..., None]) + np.clip(colour, 0, 1)[None, None] * box[..., None] * falloff[..., None]
    # A shallow depth of field: the background is a little soft, and has faint sensor noise.
    image = gaussian_filter(image, sigma=(size / 256.0, size / 256.0, 0))
    image += rng.normal(0, 0.008, image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
