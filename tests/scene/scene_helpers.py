"""Helpers shared by the scene tests (imported by name; conftest puts this folder on sys.path)."""
from __future__ import annotations

import numpy as np

from engine.app import App
from engine.audio.plugin import audio_plugin
from engine.audio.settings import AudioSettings
from engine.display.plugin import display_plugin
from engine.display.settings import DisplaySettings
from engine.time import MasterClock

FPS = 25.0
SAMPLES_PER_FRAME = 640


def make_app(size=(160, 120), voices=("main",), strict=True) -> App:
    """App with a stepped 25 fps clock, virtual audio output and a display canvas of `size` (no runner)."""
    app = App(strict=strict)
    app.insert_resource(MasterClock("stepped", FPS))
    app.insert_resource(AudioSettings(output="virtual", voices=tuple(voices)))
    app.add_plugin(audio_plugin)
    app.insert_resource(DisplaySettings(size=size))
    app.add_plugin(display_plugin)
    return app


def constant(seconds: float, value: float, rate: int = 16000) -> np.ndarray:
    """A clip that is recognisable sample by sample: `value` throughout."""
    return np.full(round(seconds * rate), value, np.float32)
