"""display_plugin: the compositor, the present stage and the output sinks (the runners supply the GL context)."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine.components import Background, Canvas, FrameImage
from engine.display.present import present_frame
from engine.display.settings import DisplaySettings
from engine.display.sinks import (
    ScreenshotRequests,
    SinkOutputs,
    close_sinks,
    open_sinks,
    record_mp4,
    send_virtual_camera,
    take_screenshots,
)
from engine.ecs import Stage, World

if TYPE_CHECKING:
    from engine.app import App


def _has_background(world: World) -> bool:
    return world.has_resource(Background)


def publish_canvas(world: World) -> None:
    """FIRST: the Canvas layouts divide, from DisplaySettings (replaced only when the size changed)."""
    width, height = world.resource(DisplaySettings).size
    canvas = world.get_resource(Canvas)
    if canvas is None or (canvas.width, canvas.height) != (width, height):
        world.insert_resource(Canvas(width, height))


def follow_scene_background(world: World) -> None:
    """What a scene's Background asks of the display: the same colour in letterbox bars and behind the frame, the
    chroma key, or a transparent window. Runners call it before opening their window; PRESENT, before each frame."""
    look = world.get_resource(Background)
    if look is None:
        return
    if look.mode == "chroma":
        wanted = {"background": "chroma", "chroma_color": tuple(look.color)}
    elif look.mode == "color":
        wanted = {"background": "color", "background_color": tuple(look.color)}
    else:  # transparent, or a picture covering the canvas (bars keep the display's colour)
        wanted = {"background": "transparent" if look.mode == "transparent" else "color"}
    settings = world.resource(DisplaySettings)
    if any(getattr(settings, name) != value for name, value in wanted.items()):  # a new resource only on a change
        world.insert_resource(dataclasses.replace(settings, **wanted))


def display_plugin(app: App) -> None:
    """Compose the FrameImage (in scenes with a Background: engine/display/compose.py), present it on the runner's
    canvas, then feed the mp4 / screenshot / virtual-camera sinks.

    Reads DisplaySettings (inserting the defaults if absent). Opens no window and no GL context:
    run_headless / run_window do that before the first frame.
    """
    from engine.display.compose import compose_scene, extract_scene_view  # torch: only where a display runs

    world = app.world
    if not world.has_resource(DisplaySettings):
        world.insert_resource(DisplaySettings())
    if not world.has_resource(FrameImage):
        world.insert_resource(FrameImage())
    world.insert_resource(SinkOutputs())
    world.insert_resource(ScreenshotRequests())
    app.add_system(open_sinks, Stage.STARTUP)
    app.add_system(publish_canvas, Stage.FIRST)
    app.add_system(extract_scene_view, Stage.EXTRACT, run_if=_has_background)
    app.add_system(compose_scene, Stage.RENDER, run_if=_has_background)
    app.add_system(follow_scene_background, Stage.PRESENT)
    app.add_system(present_frame, Stage.PRESENT, after=[follow_scene_background])
    app.add_system(record_mp4, Stage.PRESENT, after=[present_frame])
    app.add_system(send_virtual_camera, Stage.PRESENT, after=[present_frame])
    app.add_system(take_screenshots, Stage.PRESENT, after=[present_frame])
    app.on_shutdown(lambda: close_sinks(world))


def configure_display(app: App, **overrides: object) -> DisplaySettings:
    """Replace fields of the app's DisplaySettings (defaults if none yet), e.g. from a scene or the CLI:
    `configure_display(app, size=(640, 360), out=Path("take.mp4"), title="Presenter A")`.

    Call before the runner starts: the canvas, window and sinks are made from the settings then.
    """
    current = app.world.get_resource(DisplaySettings) or DisplaySettings()
    settings = dataclasses.replace(current, **overrides)
    app.world.insert_resource(settings)
    return settings
