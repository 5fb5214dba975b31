"""scene_plugin: the systems behind the Scene API (scripts, framing, layout, compositor).

    UPDATE       run_scripts (after the control socket's apply_control) -> ease_framing
    POST_UPDATE  lay_out_avatars                 ScreenRect -> AvatarViewport in canvas pixels
    EXTRACT      extract_scene_view              frozen SceneView (only in scenes with a Background)
    RENDER       compose_scene                   background + avatar pictures + captions -> FrameImage

Nothing here pauses when no one speaks: every frame is composed and presented, so idle avatars keep moving.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.ecs import Stage, World, optional
from engine.scene.components import Background, Captions
from engine.scene.compose import compose_scene, extract_scene_view
from engine.scene.framing import ease_framing, lay_out_avatars
from engine.scene.timeline import Scripts, run_scripts

if TYPE_CHECKING:
    from engine.app import App


def _has_background(world: World) -> bool:
    return world.has_resource(Background)


def scene_plugin(app: App) -> None:
    """Insert Scripts and Captions; schedule the scene systems (see the module docstring)."""
    from engine.display.plugin import display_plugin

    app.add_plugin(display_plugin)  # the compositor writes its FrameImage and reads DisplaySettings
    app.world.insert_resource(Scripts())
    app.world.insert_resource(Captions())
    app.add_system(run_scripts, Stage.UPDATE, after=[optional("engine.scene.control.apply_control")])
    app.add_system(ease_framing, Stage.UPDATE, after=[run_scripts])
    app.add_system(lay_out_avatars, Stage.POST_UPDATE)
    app.add_system(extract_scene_view, Stage.EXTRACT, run_if=_has_background)
    app.add_system(compose_scene, Stage.RENDER, run_if=_has_background)
