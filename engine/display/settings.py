"""DisplaySettings: what the window, the headless canvas and the output sinks look like (light module, no GL)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

BackgroundMode = Literal["color", "chroma", "transparent"]
ScaleMode = Literal["fit", "fill", "stretch"]
OVERLAY_KEYS = ("F1", "TAB", "F2", "F3", "F4", "GRAVE")


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' (or '640,360', or '512' for a square) -> (640, 360)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        width, height = (int(parts[0]), int(parts[0])) if len(parts) == 1 else map(int, parts)
    except ValueError:
        raise ValueError(f"a size is WIDTHxHEIGHT in pixels, like 640x360; got {text!r}") from None
    return width, height


Size = Annotated[
    tuple[int, int],
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1, metavar="WxH", instance_from_str=lambda args: parse_size(args[0]),
        is_instance=lambda value: isinstance(value, tuple) and len(value) == 2,
        str_from_instance=lambda value: [f"{value[0]}x{value[1]}"],
    ),
]
"""A (width, height) in pixels, written WxH on the command line."""


@dataclass(frozen=True)
class DisplaySettings:
    """Resource and CLI config: the output canvas and how it is shown, recorded and streamed.

    Insert it before the runner starts (`app.insert_resource(DisplaySettings(size=(640, 360)))`);
    it is read once when the window or the headless canvas is created.
    """

    size: Size = (512, 512)
    """Width and height in pixels of the output canvas: what mp4 recordings, screenshots and the virtual
    camera get. The rendered frame is scaled into it keeping its aspect (see `scale`)."""
    fps: float = 25.0
    """Frames per second: the headless step (each frame is exactly 1/fps), the recording rate, and the
    pace of the window loop (and of --realtime headless runs)."""
    realtime: bool = False
    """Headless runs only: follow the wall clock like a window does (sleep to pace frames at fps) instead of
    stepping exactly 1/fps per frame as fast as possible. A frame that takes longer than 1/fps does not slow the
    clock: the recording repeats the frame for the time it covered, and its audio stays aligned (kiosk soaks,
    microphone input, anything fed from outside in real time)."""
    title: str = "SyncAnimation Engine"
    """Window title. It never changes while running, so OBS 'Window Capture' keeps finding the window."""
    background: BackgroundMode = "color"
    """What shows behind the avatar and in letterbox bars: 'color' (background_color), 'chroma'
    (chroma_color, for chroma keying in OBS) or 'transparent' (alpha kept in screenshots and in the
    window's framebuffer; mp4 has no alpha, so recordings use background_color)."""
    background_color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB in [0, 1] used by background='color', and behind transparent pixels in mp4 recordings."""
    chroma_color: tuple[float, float, float] = (0.0, 1.0, 0.0)
    """RGB in [0, 1] used by background='chroma' (pure green by default)."""
    scale: ScaleMode = "fit"
    """How a frame whose aspect differs from the canvas (or the canvas from the window) is placed: 'fit'
    (letterbox, nothing cropped), 'fill' (cover, edges cropped) or 'stretch' (aspect not kept)."""
    smooth: bool = True
    """Bilinear filtering when scaling; False keeps hard pixels (nearest), e.g. for inspecting renders."""
    window_size: Size | None = None
    """Initial window size in screen pixels; None uses the canvas size."""
    window_position: tuple[int, int] | None = None
    """Initial top-left window position on the desktop; None lets the window manager choose."""
    vsync: bool = True
    """Wait for the display's vertical blank before showing a frame (no tearing in captures)."""
    fullscreen: bool = False
    """Start fullscreen on `monitor` (F11 toggles; the cursor is hidden while fullscreen)."""
    monitor: int = 0
    """Index of the monitor used for fullscreen (0 is the primary)."""
    resizable: bool = True
    """The window can be resized; the canvas keeps its size and is scaled into the window."""
    decorated: bool = True
    """Show the window border and title bar; False gives a borderless window for clean captures."""
    always_on_top: bool = False
    """Keep the window above others (presenter and kiosk setups)."""
    overlay: bool = True
    """Show the imgui overlay (FPS, timings, errors) at start. It is drawn only on the window, never into
    recordings, screenshots or the virtual camera."""
    overlay_key: str = "F1"
    """Key that shows/hides the overlay: one of F1, TAB, F2, F3, F4, GRAVE."""
    escape_exits: bool = True
    """Esc closes the window (closing the window always does)."""
    kiosk: bool = False
    """Kiosk mode: fullscreen, hidden cursor, no overlay and no overlay key."""
    out: Path | None = None
    """Record the canvas to this mp4 (h264 + AAC of everything the engine played, silence when nothing)."""
    video_quality: int = 8
    """Quality of the mp4 (imageio-ffmpeg scale, 0-10; 10 is best and largest)."""
    screenshot_dir: Path = Path("screenshots")
    """Folder for PNG screenshots (F12 in the window, or `request_screenshot`)."""
    virtual_camera: bool = False
    """Send the canvas to a virtual camera through pyvirtualcam (`pip install 'syncanim[vcam]'`; on Linux
    it needs a v4l2loopback device). Reported unavailable, never faked, when missing."""
    virtual_camera_device: str | None = None
    """Virtual camera device (e.g. /dev/video2 or 'OBS Virtual Camera'); None picks the backend's default."""

    def __post_init__(self) -> None:
        width, height = self.size
        if width < 1 or height < 1 or int(width) != width or int(height) != height:
            raise ValueError(f"DisplaySettings.size must be two positive integers (width, height), got {self.size!r}")
        if not self.fps > 0:
            raise ValueError(f"DisplaySettings.fps must be > 0, got {self.fps!r}")
        if self.background not in ("color", "chroma", "transparent"):
            raise ValueError(
                f"DisplaySettings.background must be 'color', 'chroma' or 'transparent', got {self.background!r}"
            )
        if self.scale not in ("fit", "fill", "stretch"):
            raise ValueError(f"DisplaySettings.scale must be 'fit', 'fill' or 'stretch', got {self.scale!r}")
        if self.overlay_key.upper() not in OVERLAY_KEYS:
            raise ValueError(
                f"DisplaySettings.overlay_key must be one of {', '.join(OVERLAY_KEYS)}, got {self.overlay_key!r}"
            )
        for name in ("background_color", "chroma_color"):
            color = getattr(self, name)
            if len(color) != 3 or not all(0.0 <= c <= 1.0 for c in color):
                raise ValueError(f"DisplaySettings.{name} must be 3 floats in [0, 1], got {color!r}")
        if self.window_size is not None and min(self.window_size) < 1:
            raise ValueError(f"DisplaySettings.window_size must be positive, got {self.window_size!r}")
        if self.out is not None and Path(self.out).suffix.lower() != ".mp4":
            raise ValueError(f"--out {self.out}: recordings are mp4 files; pass e.g. --out take.mp4")

    @property
    def show_overlay(self) -> bool:
        """Whether the overlay starts visible (never in kiosk mode)."""
        return self.overlay and not self.kiosk

    @property
    def clear_rgba(self) -> tuple[float, float, float, float]:
        """The colour behind the frame: background or chroma colour, or fully transparent."""
        if self.background == "chroma":
            return (*self.chroma_color, 1.0)
        if self.background == "transparent":
            return (*self.background_color, 0.0)
        return (*self.background_color, 1.0)
