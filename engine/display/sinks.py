"""Output sinks fed from the canvas: mp4 recording (with the engine's audio), PNG screenshots, virtual camera."""
from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.app import Diagnostics
from engine.audio.tap import AudioTap
from engine.display.settings import DisplaySettings
from engine.display.target import GLTarget
from engine.ecs import World
from engine.io.atomic import atomic_path
from engine.io.video import Mp4Writer, WavSpool
from engine.time import Time

log = logging.getLogger(__name__)

VCAM_INSTALL_HINT = "pip install pyvirtualcam  (or pip install 'syncanim[vcam]')"


@dataclass
class SinkOutputs:
    """Resource: files the sinks have finished writing this run (the runners print them at exit)."""

    written: list[Path] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    """One human-readable line per finished output."""


def opaque_rgb(pixels: np.ndarray, settings: DisplaySettings) -> np.ndarray:
    """[H, W, 4] uint8 canvas -> [H, W, 3] uint8 with alpha composited over background_color.

    Only transparent canvases carry alpha; the others are already opaque and pass through.
    """
    if settings.background != "transparent":
        return pixels[:, :, :3]
    alpha = pixels[:, :, 3:4].astype(np.float32) / 255.0
    background = np.asarray(settings.background_color, np.float32) * 255.0
    rgb = pixels[:, :, :3].astype(np.float32) * alpha + background * (1.0 - alpha)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


# -- mp4 ---------------------------------------------------------------------------------------------
class Mp4Sink:
    """Resource: records the presented canvas at a constant `fps` of master-clock time; at shutdown
    muxes the AudioTap's recording (or silence) trimmed/padded to the video's length, and saves atomically.

    Frames go to the encoder from a writer thread through a bounded queue, so h264 encoding overlaps
    the next frame's work; when the encoder falls more than `queue_seconds` behind, the frame loop
    waits rather than dropping frames (the audio is aligned to the frame count). The audio is streamed
    to a hidden wav next to the output while recording (`audio_path`), so memory stays flat for a run of
    any length; nothing appears at `path` until the mux at shutdown has succeeded. An encoder that takes no
    frame for `stall_seconds` is killed and the recording fails, rather than the frame loop waiting forever.
    """

    def __init__(self, path: Path, fps: float, quality: int, queue_seconds: float = 2.0,
                 stall_seconds: float = 60.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self.stall_seconds = stall_seconds
        self.writer = Mp4Writer(self.path, fps, quality=quality)
        self.audio_path = atomic_path(self.path.with_name(f"{self.path.stem}.audio.wav"))
        """Where the tap streams the recording's audio until the mux."""
        self.submitted = 0
        """Frames handed to the writer thread."""
        self.last: np.ndarray | None = None
        """The picture submitted last (repeated into the slots a slow frame leaves)."""
        self.clock_origin: float | None = None
        """Clock time of the first recorded frame."""
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max(2, int(fps * queue_seconds)))
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def frames(self) -> int:
        """Frames in the recording (all submitted frames once `drain` has returned)."""
        return self.writer.frames

    def start_time(self, world: World) -> float:
        """Clock time at which the recording starts (the first frame it sees)."""
        if self.clock_origin is None:
            self.clock_origin = world.resource(Time).elapsed
        return self.clock_origin

    def listen(self, tap: AudioTap) -> None:
        """Stream what `tap` hears from now on into `audio_path`."""
        tap.record_to(self.audio_path)

    def submit(self, rgb: np.ndarray) -> None:
        """Queue one [H, W, 3] uint8 frame; the array must not be modified afterwards."""
        if self._error is not None:
            raise RuntimeError(f"recording {self.path} failed: {self._error}") from self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="mp4-writer", daemon=True)
            self._thread.start()
        try:
            self._queue.put(rgb, timeout=self.stall_seconds)
        except queue.Full:
            self._stalled()
        self.submitted += 1

    def _write_loop(self) -> None:
        while (frame := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.writer.write(frame)
                except BaseException as error:  # reported on the frame loop by submit/drain
                    self._error = error

    def drain(self) -> None:
        """Wait until every submitted frame is encoded; re-raise a writer failure."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=self.stall_seconds)
            except queue.Full:
                self._stalled()
            encoded = -1
            while self._thread.is_alive() and self.writer.frames > encoded:
                encoded = self.writer.frames
                self._thread.join(self.stall_seconds)
            if self._thread.is_alive():
                self._stalled()
            self._thread = None
        if self._error is not None:
            raise RuntimeError(f"recording {self.path} failed: {self._error}") from self._error

    def _stalled(self) -> None:
        self.writer.abort()  # kills ffmpeg, which frees the writer thread from its blocked write
        raise RuntimeError(f"recording {self.path} failed: the h264 encoder (ffmpeg) took no frame for "
                           f"{self.stall_seconds:g} s")

    def audio_samples(self, rate: int) -> int:
        """Samples of audio exactly as long as the video."""
        return round(self.frames / self.fps * rate)

    def finish_audio(self, tap: AudioTap | None) -> tuple[Path, int]:
        """Close the recording's wav at exactly the video's length (the tap's samples, padded with silence or cut;
        silence throughout without a tap); returns (its path, its rate)."""
        spool = tap.stop_recording() if tap is not None else None
        if spool is None or spool.path != self.audio_path:
            if spool is not None:
                spool.discard()
            spool = WavSpool(self.audio_path, tap.sample_rate if tap is not None else 16000)
        return spool.finish(self.audio_samples(spool.sample_rate)), spool.sample_rate

    def abort(self, tap: AudioTap | None) -> None:
        """Drop the partial files (the video and the streamed audio); nothing is left at `path`."""
        self.writer.abort()
        if tap is not None and tap.spool is not None and tap.spool.path == self.audio_path:
            tap.stop_recording().discard()
        self.audio_path.unlink(missing_ok=True)


def start_mp4(world: World, settings: DisplaySettings) -> Mp4Sink:
    sink = Mp4Sink(Path(settings.out).expanduser(), settings.fps, settings.video_quality)  # settings checked .mp4
    tap = world.get_resource(AudioTap)
    if tap is not None:
        sink.listen(tap)
    world.insert_resource(sink)
    return sink


def frames_due(elapsed: float, fps: float, written: int) -> int:
    """How many video slots the frame shown at clock time `elapsed` closes: the recording holds one frame per 1/fps
    of master-clock time, so it stays in step with the audio (which follows the same clock).

    Slot s covers [s/fps, (s+1)/fps); a frame goes to the slot nearest its time (round, so a wall clock's frame
    lands within half a period of its slot), and a loop slower than fps leaves earlier slots to fill (repeats),
    a faster one gets none (skips). A stepped clock at the recording's fps gives exactly 1 every frame.
    """
    # A tie (or a float sum a hair past one) goes to the earlier slot.
    return max(0, math.floor(elapsed * fps + 0.5 - 1e-6) + 1 - written)


def record_mp4(world: World) -> None:
    """Append the canvas presented this frame to the mp4, at the slot the clock says; slots a slow frame left
    behind repeat the previous picture (what the screen showed then), so an event is never shown early."""
    sink = world.get_resource(Mp4Sink)
    target = world.get_resource(GLTarget)
    if sink is None or target is None:
        return
    tap = world.get_resource(AudioTap)
    if tap is not None and tap.spool is None:
        # The audio plugin inserted its tap after the sink started: record from now on.
        sink.listen(tap)
    copies = frames_due(world.resource(Time).elapsed - sink.start_time(world), sink.fps, sink.submitted)
    if copies:
        rgb = opaque_rgb(target.read_pixels(), world.resource(DisplaySettings))
        held = sink.last if sink.last is not None else rgb
        for _ in range(copies - 1):
            sink.submit(held)
        sink.submit(rgb)
        sink.last = rgb


def finish_mp4(world: World) -> None:
    sink = world.get_resource(Mp4Sink)
    if sink is None:
        return
    world.remove_resource(Mp4Sink)
    tap = world.get_resource(AudioTap)
    try:
        sink.drain()
        if sink.frames == 0:
            sink.abort(tap)
            log.warning("%s: no frames were presented; nothing recorded", sink.path)
            return
        wav, rate = sink.finish_audio(tap)
        path = sink.writer.close(audio=wav, sample_rate=rate)
    except BaseException:
        sink.abort(tap)
        raise
    finally:
        sink.audio_path.unlink(missing_ok=True)
    source = "engine audio" if tap is not None else "silent audio (no audio plugin)"
    outputs = world.resource(SinkOutputs)
    outputs.written.append(path)
    outputs.summaries.append(
        f"wrote {path} ({sink.frames} frames at {sink.fps:g} fps = {sink.frames / sink.fps:.2f} s, "
        f"{sink.audio_samples(rate) / rate:.2f} s {source})"
    )


# -- screenshots --------------------------------------------------------------------------------------
@dataclass
class ScreenshotRequests:
    """Resource: PNG screenshots asked for this frame (F12, scenes, the control server)."""

    pending: list[Path | None] = field(default_factory=list)
    """Target paths; None means a timestamped name in DisplaySettings.screenshot_dir."""


def request_screenshot(world: World, path: str | os.PathLike | None = None) -> None:
    """Save the canvas as PNG after this frame is presented (straight alpha kept when transparent)."""
    world.resource(ScreenshotRequests).pending.append(None if path is None else Path(path))


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """[H, W, 3|4] uint8 -> PNG at `path`, atomically (temp file + os.replace)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = atomic_path(path)
    Image.fromarray(np.ascontiguousarray(pixels)).save(partial, format="PNG")
    os.replace(partial, path)
    return path


def save_screenshot(world: World, path: str | os.PathLike | None = None) -> Path:
    """Write the current canvas to `path` (or screenshot_dir/screenshot-<time>-<frame>.png) now."""
    settings = world.resource(DisplaySettings)
    target = world.resource(GLTarget)
    if path is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(settings.screenshot_dir) / f"screenshot-{stamp}-{target.version:06d}.png"
    pixels = target.read_pixels()
    if settings.background != "transparent":
        pixels = pixels[:, :, :3]
    written = write_png(Path(path).expanduser(), pixels)
    world.resource(Diagnostics).notice(f"screenshot saved: {written}")
    world.resource(SinkOutputs).written.append(written)
    return written


def take_screenshots(world: World) -> None:
    """Serve this frame's screenshot requests."""
    requests = world.get_resource(ScreenshotRequests)
    if requests is None or not requests.pending or world.get_resource(GLTarget) is None:
        return
    pending, requests.pending = requests.pending, []
    for path in pending:
        save_screenshot(world, path)


# -- virtual camera -----------------------------------------------------------------------------------
@dataclass
class VirtualCamera:
    """Resource: the pyvirtualcam output, or why there is none."""

    camera: Any = None
    """The open pyvirtualcam.Camera (None when unavailable)."""
    available: bool = False
    reason: str = ""
    """Why the camera is unavailable, with what to install or set up."""
    device: str = ""
    frames_sent: int = 0


def open_virtual_camera(settings: DisplaySettings) -> VirtualCamera:
    """Open pyvirtualcam at the canvas size; report unavailable (with the fix) instead of faking one."""
    try:
        import pyvirtualcam
    except ImportError:
        return VirtualCamera(reason=f"virtual camera unavailable: pyvirtualcam is not installed ({VCAM_INSTALL_HINT})")
    width, height = settings.size
    try:
        camera = pyvirtualcam.Camera(
            width, height, settings.fps, fmt=pyvirtualcam.PixelFormat.RGB, device=settings.virtual_camera_device
        )
    except Exception as error:  # pyvirtualcam raises RuntimeError/ValueError per backend
        return VirtualCamera(
            reason=(
                f"virtual camera unavailable: {str(error).rstrip('.')}. On Linux load v4l2loopback "
                "(`sudo modprobe v4l2loopback devices=1`); on Windows/macOS install OBS and start its "
                "virtual camera once"
            )
        )
    return VirtualCamera(camera=camera, available=True, device=str(camera.device))


def send_virtual_camera(world: World) -> None:
    """Send the presented canvas to the virtual camera (RGB; alpha over background_color)."""
    vcam = world.get_resource(VirtualCamera)
    target = world.get_resource(GLTarget)
    if vcam is None or vcam.camera is None or target is None:
        return
    vcam.camera.send(np.ascontiguousarray(opaque_rgb(target.read_pixels(), world.resource(DisplaySettings))))
    vcam.frames_sent += 1


def close_virtual_camera(world: World) -> None:
    vcam = world.get_resource(VirtualCamera)
    if vcam is not None and vcam.camera is not None:
        vcam.camera.close()
        vcam.camera = None


# -- startup / shutdown -------------------------------------------------------------------------------
def open_sinks(world: World) -> None:
    """Start the sinks DisplaySettings asks for (startup stage)."""
    settings = world.resource(DisplaySettings)
    diagnostics = world.resource(Diagnostics)
    if settings.out is not None and world.get_resource(Mp4Sink) is None:
        sink = start_mp4(world, settings)
        diagnostics.notice(f"recording to {sink.path}")
    if settings.virtual_camera and world.get_resource(VirtualCamera) is None:
        vcam = open_virtual_camera(settings)
        world.insert_resource(vcam)
        if vcam.available:
            diagnostics.notice(f"virtual camera: {vcam.device}")
        else:
            log.error(vcam.reason)
            diagnostics.notice(vcam.reason)


def close_sinks(world: World) -> None:
    """Finish every sink (shutdown): save the mp4, close the virtual camera."""
    try:
        finish_mp4(world)
    finally:
        close_virtual_camera(world)
