"""GLTarget: the GL context and the offscreen canvas every runner draws into and every sink reads from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class GLTarget:
    """Resource inserted by a runner: present_frame draws here, sinks read back from here.

    `fbo` is always our own offscreen framebuffer of the canvas size, never the window's default
    framebuffer (reading that one leaves a pending GL_INVALID_OPERATION on Mesa), so headless and
    window runs record identical pixels and the overlay never reaches a recording.
    """

    ctx: Any
    """The moderngl context (EGL standalone when headless, the window's context otherwise)."""
    fbo: Any
    """Offscreen framebuffer of `size`, RGBA8."""
    color: Any
    """The RGBA8 texture attached to `fbo` (the window runner draws it to the screen)."""
    size: tuple[int, int]
    """Canvas (width, height)."""
    runner: str = "headless"
    """'headless' or 'window'."""
    version: int = 0
    """Bumped by present_frame each time the canvas changes, so one frame is read back at most once."""
    _cache: tuple[int, np.ndarray] | None = field(default=None, repr=False)

    def read_pixels(self) -> np.ndarray:
        """The canvas as [H, W, 4] uint8, row 0 at the top (cached until the next present)."""
        if self._cache is not None and self._cache[0] == self.version:
            return self._cache[1]
        width, height = self.size
        raw = self.fbo.read(components=4, alignment=1)
        pixels = np.frombuffer(raw, np.uint8).reshape(height, width, 4)[::-1]
        pixels = np.ascontiguousarray(pixels)
        pixels.setflags(write=False)
        self._cache = (self.version, pixels)
        return pixels

    def release(self) -> None:
        self.fbo.release()
        self.color.release()


def create_target(ctx: Any, size: tuple[int, int], runner: str) -> GLTarget:
    """An RGBA8 offscreen canvas of `size` = (width, height) in `ctx`."""
    color = ctx.texture(tuple(size), 4, dtype="f1")
    fbo = ctx.framebuffer(color_attachments=[color])
    return GLTarget(ctx=ctx, fbo=fbo, color=color, size=(int(size[0]), int(size[1])), runner=runner)
