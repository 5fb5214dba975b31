"""Numbers for `syncanim bench`: how fast the headless display path presents and reads back frames."""
from __future__ import annotations

import time

import numpy as np

from engine.app import App
from engine.components import FrameImage
from engine.display.headless import run_headless
from engine.display.settings import DisplaySettings
from engine.display.target import GLTarget
from engine.ecs import Stage


def measure_present(size: tuple[int, int] = (512, 512), frames: int = 200, *, readback: bool = True) -> dict:
    """Run a headless App whose only work is showing a new [H, W, 4] uint8 frame each update.

    Returns frames per second and mean milliseconds per frame (startup excluded), for the canvas
    `size` = (width, height) with the frame at the same size; `readback` adds one canvas read-back per
    frame, as an mp4 or a virtual camera would do.
    """
    width, height = size
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (height, width, 4), dtype=np.uint8) for _ in range(4)]
    stamps: list[float] = []
    app = App()
    app.insert_resource(DisplaySettings(size=(width, height)))

    def show_next(world) -> None:
        image = world.resource(FrameImage)
        image.frame += 1
        image.rgba = pool[image.frame % len(pool)]

    def stamp(world) -> None:
        if readback:
            world.resource(GLTarget).read_pixels()
        stamps.append(time.perf_counter())

    app.add_system(show_next, Stage.RENDER, name="bench.show_next")
    app.add_system(stamp, Stage.LAST, name="bench.stamp")
    run_headless(app, frames=frames + 1)
    seconds = stamps[-1] - stamps[0]  # from the end of the first frame: shader compile etc. excluded
    return {
        "size": f"{width}x{height}",
        "frames": frames,
        "readback": readback,
        "fps": frames / seconds,
        "ms_per_frame": seconds / frames * 1e3,
    }
