"""Display: runners (window, headless), frame upload, the present stage, the overlay and output sinks."""
from engine.display.frame import FrameImage
from engine.display.settings import DisplaySettings

__all__ = ["DisplaySettings", "FrameImage"]
