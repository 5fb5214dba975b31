"""FrameImage: the seam between the render stage and the present stage."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class FrameImage:
    """Resource: the picture rendered this frame, waiting to be presented.

    `rgba` is a torch tensor or numpy array [H, W, 4], uint8 or float32 in [0, 1], straight
    (not premultiplied) alpha, row 0 at the top. It may live on the CPU or on a CUDA device; the
    present stage picks the upload path from where it lives.
    """

    rgba: Any = None
    frame: int = -1
    """Index of the frame it was rendered for (-1: nothing rendered yet)."""
