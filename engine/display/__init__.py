"""Display: runners (window, headless), frame upload, the present stage, the overlay and output sinks.

Importing this package opens nothing: the GL context, window and sinks start inside the runners.
"""
from engine.display.headless import RunResult, run_headless
from engine.display.plugin import configure_display, display_plugin
from engine.display.settings import DisplaySettings
from engine.display.sinks import request_screenshot, save_screenshot
from engine.display.target import GLTarget
from engine.display.window import run_window

__all__ = [
    "DisplaySettings", "GLTarget", "RunResult", "configure_display", "display_plugin",
    "request_screenshot", "run_headless", "run_window", "save_screenshot",
]
