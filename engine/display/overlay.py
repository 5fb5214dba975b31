"""Overlay: an imgui window over the canvas with FPS, frame times, per-system timings, errors and the clock.

Drawn by the window runner onto the window only, after the canvas: never into recordings or captures.
Uses imgui-bundle's native GLFW + OpenGL3 backends (imported inside functions: nothing at import).
"""
from __future__ import annotations

import ctypes
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.app import Diagnostics, SystemTimings
from engine.ecs import World
from engine.time import MasterClock

MAX_TABLE_ROWS = 24


@dataclass
class Overlay:
    """Resource of the window runner: the imgui state and what the overlay last drew."""

    visible: bool = True
    """Shown now (toggled by DisplaySettings.overlay_key)."""
    frames_drawn: int = 0
    """Frames in which the overlay was rendered."""
    last_vertex_count: int = 0
    """Vertices imgui emitted for the latest drawn frame (0 while hidden)."""
    fps: float = 0.0
    """Displayed frames per second over the last second."""
    status_lines: list[str] = field(default_factory=list)
    """Extra lines the runner shows (upload path, recording, virtual camera)."""
    _stamps: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


def start_imgui(window: Any) -> None:
    """Create the imgui context and attach the GLFW + OpenGL3 backends to `window` (context current).

    Backends chain the GLFW callbacks installed before this call, so the runner's keys keep working.
    """
    from imgui_bundle import imgui

    imgui.create_context()
    io = imgui.get_io()
    io.set_ini_filename("")  # no imgui.ini litter in the user's working directory
    imgui.style_colors_dark()
    imgui.backends.glfw_init_for_opengl(ctypes.cast(window, ctypes.c_void_p).value, True)
    imgui.backends.opengl3_init("#version 330")


def stop_imgui() -> None:
    from imgui_bundle import imgui

    imgui.backends.opengl3_shutdown()
    imgui.backends.glfw_shutdown()
    imgui.destroy_context()


def tick_fps(overlay: Overlay) -> None:
    """Frames shown per second of wall time over the last second (counting, not averaging 1/interval,
    which overstates the rate when intervals jitter)."""
    now = time.perf_counter()
    stamps = overlay._stamps
    stamps.append(now)
    while len(stamps) > 2 and now - stamps[0] > 1.0:
        stamps.popleft()
    if len(stamps) >= 2 and now > stamps[0]:
        overlay.fps = (len(stamps) - 1) / (now - stamps[0])


def draw_overlay(world: World, overlay: Overlay) -> None:
    """Build and render this frame's overlay onto the currently bound (window) framebuffer."""
    from imgui_bundle import imgui

    tick_fps(overlay)
    imgui.backends.opengl3_new_frame()
    imgui.backends.glfw_new_frame()
    imgui.new_frame()
    if overlay.visible:
        build_panel(world, overlay)
    imgui.render()
    draw_data = imgui.get_draw_data()
    imgui.backends.opengl3_render_draw_data(draw_data)
    if overlay.visible:
        overlay.frames_drawn += 1
        overlay.last_vertex_count = draw_data.total_vtx_count
    else:
        overlay.last_vertex_count = 0


def build_panel(world: World, overlay: Overlay) -> None:
    from imgui_bundle import imgui

    timings = world.resource(SystemTimings)
    imgui.set_next_window_pos(imgui.ImVec2(8, 8), imgui.Cond_.first_use_ever)
    imgui.set_next_window_bg_alpha(0.75)
    imgui.begin("SyncAnimation", None, imgui.WindowFlags_.always_auto_resize)
    frame_ms = np.fromiter(timings.frame_ms, np.float32)
    mean_frame = float(frame_ms.mean()) if len(frame_ms) else 0.0
    imgui.text(f"{overlay.fps:5.1f} FPS   update {mean_frame:6.2f} ms")
    imgui.text(f"clock: {world.resource(MasterClock).describe}")
    for line in overlay.status_lines:
        imgui.text(line)
    if len(frame_ms):
        imgui.plot_lines(
            "##frame_ms", frame_ms, overlay_text=f"frame ms (max {frame_ms.max():.1f})",
            scale_min=0.0, graph_size=imgui.ImVec2(300, 60),
        )
    if imgui.collapsing_header("systems", imgui.TreeNodeFlags_.default_open):
        build_timings_table(timings)
    build_diagnostics(world.resource(Diagnostics))
    imgui.end()


def build_timings_table(timings: SystemTimings) -> None:
    from imgui_bundle import imgui

    rows = sorted(timings.mean_ms.items(), key=lambda item: -item[1])[:MAX_TABLE_ROWS]
    flags = imgui.TableFlags_.row_bg | imgui.TableFlags_.borders_inner_v | imgui.TableFlags_.sizing_fixed_fit
    if imgui.begin_table("timings", 3, flags):
        imgui.table_setup_column("system")
        imgui.table_setup_column("mean ms")
        imgui.table_setup_column("last ms")
        imgui.table_headers_row()
        for name, mean in rows:
            imgui.table_next_row()
            imgui.table_next_column()
            imgui.text(name.removeprefix("engine."))
            imgui.table_next_column()
            imgui.text(f"{mean:7.2f}")
            imgui.table_next_column()
            imgui.text(f"{timings.last_ms.get(name, 0.0):7.2f}")
        imgui.end_table()


def build_diagnostics(diagnostics: Diagnostics) -> None:
    from imgui_bundle import imgui

    if diagnostics.errors and imgui.collapsing_header(
        f"errors ({len(diagnostics.errors)})", imgui.TreeNodeFlags_.default_open
    ):
        for source, error in diagnostics.errors.items():
            imgui.text_colored(imgui.ImVec4(1.0, 0.4, 0.4, 1.0), f"{source} x{error.count}")
            imgui.text_wrapped(error.message)
    if diagnostics.notices and imgui.collapsing_header(f"notices ({len(diagnostics.notices)})"):
        for notice in list(diagnostics.notices)[-8:]:
            imgui.text_wrapped(notice)


def let_imgui_set_cursor(allowed: bool) -> None:
    """Allow or stop imgui's GLFW backend setting the cursor each frame (it would unhide a hidden one)."""
    from imgui_bundle import imgui

    if imgui.get_current_context() is None:
        return
    io = imgui.get_io()
    flag = imgui.ConfigFlags_.no_mouse_cursor_change
    io.config_flags = (io.config_flags & ~flag) if allowed else (io.config_flags | flag)
