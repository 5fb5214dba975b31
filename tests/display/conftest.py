"""Fixtures for display tests: a private Xvfb server for window tests, and a tiny app that shows a fixed frame."""
from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from engine.app import App
from engine.components import FrameImage
from engine.display.settings import DisplaySettings
from engine.display.target import GLTarget
from engine.ecs import Stage


def die_with_parent() -> None:
    """In the Xvfb child: get SIGTERM when pytest dies, so a crashed run leaves no server behind."""
    libc = ctypes.CDLL(None)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@pytest.fixture(scope="session")
def xvfb_display():
    """Start `Xvfb` on a free display number (chosen by Xvfb itself) and point DISPLAY at it."""
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); window tests need an X server")
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        # -noreset: the server would otherwise reset (and re-write the display fd) each time the last
        # client disconnects, i.e. between tests.
        [binary, "-displayfd", str(write_fd), "-noreset", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
    )
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], 15.0)
    number = os.read(read_fd, 32).decode().strip() if ready else ""
    if not number:
        os.close(read_fd)
        process.kill()
        process.wait()
        raise RuntimeError("Xvfb did not report a display number within 15 s")
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    yield f":{number}"
    if previous is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = previous
    process.terminate()
    process.wait(timeout=10)
    os.close(read_fd)  # kept open while the server runs: writing the display number must never fail


class FrameApp:
    """An App whose render system shows `image` and whose LAST system keeps the canvas of each frame."""

    def __init__(self, settings: DisplaySettings, image: Any) -> None:
        self.app = App()
        self.app.insert_resource(settings)
        self.image = image
        self.canvases: list[np.ndarray] = []
        self.app.add_system(self.render, Stage.RENDER, name="test.render")
        self.app.add_system(self.grab, Stage.LAST, name="test.grab")

    def render(self, world: Any) -> None:
        world.resource(FrameImage).rgba = self.image

    def grab(self, world: Any) -> None:
        target = world.get_resource(GLTarget)
        if target is not None:
            self.canvases.append(target.read_pixels().copy())


@pytest.fixture
def frame_app() -> Callable[..., FrameApp]:
    return FrameApp


@pytest.fixture
def card() -> np.ndarray:
    """[64, 128, 4] uint8: left half red, right half blue, a yellow band on the top eighth (shows orientation)."""
    height, width = 64, 128
    image = np.zeros((height, width, 4), np.uint8)
    image[:, : width // 2] = (255, 0, 0, 255)
    image[:, width // 2 :] = (0, 0, 255, 255)
    image[: height // 8] = (255, 255, 0, 255)
    return image
