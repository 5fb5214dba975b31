"""Compositor: background, then each avatar's picture in its screen rectangle, then captions, into the FrameImage.

    EXTRACT  extract_scene_view: a frozen SceneView of what to draw (where each avatar goes, which captions show)
    RENDER   compose_scene (after the avatar renderers): SceneView + the avatars' new pictures -> FrameImage [H, W, 4]

The one writer of the FrameImage in scenes with a Background (every Scene has one); a scene that draws its own frame
(scenes/test_card.py) sets none and writes the FrameImage itself.

Everything is drawn into the frame itself, so backgrounds and captions are in mp4 recordings, screenshots, the
virtual camera and OBS captures (the imgui overlay is not).

The frame is drawn with torch where the avatars' pictures are: on a CUDA device when the renderer runs there (the
frame then reaches the window through CUDA-GL interop, never through host memory), else on the CPU, where the
FrameImage is a numpy view of the same pixels.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from engine.components import AvatarImage, AvatarViewport, Background, FrameImage
from engine.display.settings import DisplaySettings
from engine.display.upload import is_cuda_tensor
from engine.ecs import Entity, World
from engine.scene.components import Caption, Captions
from engine.time import Time


@dataclass(frozen=True)
class Layer:
    """Where one avatar's picture goes (canvas pixels, origin top-left)."""

    x: int
    y: int
    width: int
    height: int
    entity: Entity
    """Whose AvatarImage: read when the frame is composed, after the renderer has drawn it."""


@dataclass(frozen=True)
class SceneView:
    """Resource: the snapshot compose_scene draws."""

    frame: int
    size: tuple[int, int]
    background: Background
    layers: tuple[Layer, ...]
    captions: tuple[Caption, ...]


def caption_visible(caption: Caption, now: float) -> bool:
    if not caption.text or (caption.until_s is not None and now >= caption.until_s):
        return False
    speech = caption.speech
    return speech is None or (speech.started and not speech.done)


def extract_scene_view(world: World) -> None:
    """Snapshot the background, the avatars' viewports, and the visible captions."""
    time = world.resource(Time)
    layers = tuple(Layer(v.x, v.y, v.width, v.height, entity) for entity, v in world.query(AvatarViewport))
    captions = world.get_resource(Captions)
    shown = tuple(Caption(**vars(c)) for c in (captions.slots.values() if captions else ())
                  if caption_visible(c, time.elapsed))
    background = Background(**vars(world.resource(Background)))
    world.insert_resource(SceneView(time.frame, world.resource(DisplaySettings).size, background, layers, shown))


def compose_scene(world: World) -> None:
    """Draw the SceneView into the FrameImage, on the device of the first avatar picture held by a CUDA tensor."""
    view = world.get_resource(SceneView)
    if view is None:
        return
    pictures = [(layer, image.rgba) for layer in view.layers
                if (image := world.get(layer.entity, AvatarImage)) is not None and image.rgba is not None]
    device = next((str(rgba.device) for _, rgba in pictures if is_cuda_tensor(rgba)), "cpu")
    canvas = background_pixels(view.background, view.size, device).clone()
    for layer, rgba in pictures:
        paste_over(canvas, layer, rgba)
    for caption in view.captions:
        draw_caption(canvas, caption)
    image = world.resource(FrameImage)
    image.rgba, image.frame = (canvas if canvas.is_cuda else canvas.numpy()), view.frame


def background_pixels(background: Background, size: tuple[int, int], device: str = "cpu") -> torch.Tensor:
    """uint8 [H, W, 4] on `device`, cached (never write to it): a colour, the key colour, transparent, or the image
    covering the canvas."""
    if background.mode == "image":
        if background.image is None:
            raise ValueError("Background(mode='image') needs image=PATH; pass the picture to show")
        path = Path(background.image)
        if not path.is_file():
            raise FileNotFoundError(f"background image {path} does not exist; pass a PNG or JPEG file")
        return _image_pixels(str(path.resolve()), os.stat(path).st_mtime_ns, size, device)
    alpha = 0 if background.mode == "transparent" else 255
    return _flat_pixels(tuple(round(c * 255) for c in background.color), alpha, size, device)


@lru_cache(maxsize=8)
def _flat_pixels(rgb: tuple[int, int, int], alpha: int, size: tuple[int, int], device: str) -> torch.Tensor:
    width, height = size
    pixels = torch.empty((height, width, 4), dtype=torch.uint8, device=device)
    pixels[..., :3] = torch.tensor(rgb, dtype=torch.uint8)
    pixels[..., 3] = alpha
    return pixels


@lru_cache(maxsize=4)
def _image_pixels(path: str, mtime_ns: int, size: tuple[int, int], device: str) -> torch.Tensor:
    # mtime_ns is part of the cache key so an edited picture is reloaded.
    with Image.open(path) as picture:
        fitted = ImageOps.fit(picture.convert("RGBA"), size, Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(fitted).copy()).to(device)


def as_float_rgba(rgba: Any, device: torch.device | str) -> torch.Tensor:
    """A renderer's picture (numpy or torch, uint8 or float in [0, 1], any device) -> float32 tensor [H, W, 4] in
    [0, 1] on `device`."""
    picture = torch.as_tensor(rgba, device=device)
    if picture.ndim != 3 or picture.shape[2] != 4:
        raise ValueError(f"an AvatarImage is [H, W, 4] RGBA, got shape {tuple(picture.shape)}")
    if picture.dtype == torch.uint8:
        return picture.float() / 255.0
    return picture.float().clamp(0.0, 1.0)


def paste_over(canvas: torch.Tensor | np.ndarray, layer: Layer, rgba: Any) -> None:
    """Alpha-blend the picture `rgba` over `canvas` (uint8 [H, W, 4], a tensor or a numpy array changed in place) at
    the layer's viewport; a picture of another size is cropped or left short, never resized (renderers render at the
    viewport's size)."""
    canvas = torch.as_tensor(canvas)
    src = as_float_rgba(rgba, canvas.device)
    height, width = canvas.shape[:2]
    h = min(src.shape[0], layer.height, height - layer.y)
    w = min(src.shape[1], layer.width, width - layer.x)
    if h <= 0 or w <= 0:
        return
    dst = canvas[layer.y:layer.y + h, layer.x:layer.x + w]
    src = src[:h, :w]
    target = src * 255.0
    target[..., 3] = 255.0  # lerp toward 255 gives alpha = a + dst_alpha (1 - a): "over"
    dst.copy_(dst.float().lerp_(target, src[..., 3:4]).add_(0.5).clamp_(0.0, 255.0))


@lru_cache(maxsize=8)
def caption_font(pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=pixels)


def wrap_caption(text: str, font: Any, max_width: float) -> list[str]:
    """Split `text` into lines no wider than `max_width` pixels (a single over-long word keeps its own line)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


@dataclass(frozen=True)
class CaptionStamp:
    """A caption laid out for one canvas size: its strip's rows and how much a letter covers each pixel there."""

    top: int
    rows: int
    coverage: torch.Tensor
    """float32 [rows, W, 1] in [0, 1] on the canvas's device."""
    ink: torch.Tensor
    """float32 [4]: the letters' RGBA (0-255) on that device."""


@lru_cache(maxsize=32)
def caption_stamp(text: str, size: float, anchor: str, color: tuple[int, int, int], width: int, height: int,
                  device: str) -> CaptionStamp:
    """Lay out a caption centred in a strip along the top or bottom edge (cached: captions change rarely, and the
    frame loop must not upload the same letters every frame)."""
    font_px = max(10, round(size * height))
    font = caption_font(font_px)
    lines = wrap_caption(textwrap.dedent(text).strip(), font, width * 0.92)
    line_px = round(font_px * 1.3)
    rows = min(height, line_px * len(lines) + font_px // 2)
    margin = min(font_px // 2, height - rows)
    top = margin if anchor == "top" else height - rows - margin
    letters = Image.new("L", (width, rows), 0)
    draw = ImageDraw.Draw(letters)
    for i, line in enumerate(lines):
        draw.text(((width - font.getlength(line)) / 2, font_px // 4 + i * line_px), line, font=font, fill=255)
    coverage = torch.from_numpy(np.asarray(letters).copy()).to(device).float().div_(255.0).unsqueeze(-1)
    return CaptionStamp(top, rows, coverage, torch.tensor([*color, 255], dtype=torch.float32, device=device))


def draw_caption(canvas: torch.Tensor | np.ndarray, caption: Caption) -> None:
    """Draw the caption over a darkened box in a strip along the top or bottom edge of `canvas` (uint8 [H, W, 4], a
    tensor or a numpy array changed in place)."""
    canvas = torch.as_tensor(canvas)
    height, width = canvas.shape[:2]
    stamp = caption_stamp(caption.text, caption.size, caption.anchor, tuple(caption.color), width, height,
                          str(canvas.device))
    strip = canvas[stamp.top:stamp.top + stamp.rows]
    if caption.box_alpha > 0:
        strip[..., :3] = (strip[..., :3].float() * (1.0 - caption.box_alpha)).to(torch.uint8)
        # On a transparent background the box must become visible too.
        strip[..., 3].clamp_(min=round(caption.box_alpha * 255))
    strip.copy_(strip.float().lerp_(stamp.ink.expand_as(strip), stamp.coverage).add_(0.5).clamp_(0.0, 255.0))
