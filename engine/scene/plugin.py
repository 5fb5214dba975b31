"""scene_plugin: the systems behind the Scene API (scripts, framing, layout); the display composes the frame.

    UPDATE       run_scripts (after the control socket's apply_control) -> ease_framing
    POST_UPDATE  lay_out_avatars                 ScreenRect -> AvatarViewport in canvas pixels
                 follow_spoken_captions          streamed speech's text -> its caption

Nothing here pauses when no one speaks: every frame is composed and presented, so idle avatars keep moving.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.ecs import Stage, optional
from engine.scene.actions import follow_spoken_captions
from engine.scene.components import Captions
from engine.scene.framing import ease_framing, lay_out_avatars
from engine.scene.timeline import Scripts, run_scripts

if TYPE_CHECKING:
    from engine.app import App


def scene_plugin(app: App) -> None:
    """Insert Scripts and Captions; schedule the scene systems (see the module docstring)."""
    app.world.insert_resource(Scripts())
    app.world.insert_resource(Captions())
    app.add_system(run_scripts, Stage.UPDATE, after=[optional("engine.scene.control.apply_control")])
    app.add_system(ease_framing, Stage.UPDATE, after=[run_scripts])
    app.add_system(lay_out_avatars, Stage.POST_UPDATE)
    app.add_system(follow_spoken_captions, Stage.POST_UPDATE)
