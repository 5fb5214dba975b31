"""display_plugin: the present stage and the output sinks (the runners supply the GL context)."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine.display.frame import FrameImage
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
from engine.ecs import Stage

if TYPE_CHECKING:
    from engine.app import App


def display_plugin(app: App) -> None:
    """Present FrameImage on the runner's canvas, then feed the mp4 / screenshot / virtual-camera sinks.

    Reads DisplaySettings (inserting the defaults if absent). Opens no window and no GL context:
    run_headless / run_window do that before the first frame.
    """
    world = app.world
    if not world.has_resource(DisplaySettings):
        world.insert_resource(DisplaySettings())
    if not world.has_resource(FrameImage):
        world.insert_resource(FrameImage())
    world.insert_resource(SinkOutputs())
    world.insert_resource(ScreenshotRequests())
    app.add_system(open_sinks, Stage.STARTUP)
    app.add_system(present_frame, Stage.PRESENT)
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
