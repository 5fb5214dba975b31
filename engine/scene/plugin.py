"""scene_plugin: the systems behind the Scene API (scripts, framing, layout); the display composes the frame.

    UPDATE       run_scripts (after the control socket's apply_control) -> ease_framing
    POST_UPDATE  lay_out_avatars                 ScreenRect -> AvatarViewport in canvas pixels
                 follow_spoken_captions          streamed speech's text -> its caption

conversation_plugin (scenes that listen, `Scene.listen`) adds, before the scripts see what was heard:

    UPDATE       stop_on_barge_in               a visitor starts to speak -> the avatars stop

Nothing here pauses when no one speaks: every frame is composed and presented, so idle avatars keep moving.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.audio.listen import SpeechStarted
from engine.audio.listening import ListeningSettings
from engine.audio.playback import AudioPlayback
from engine.ecs import Stage, World, optional
from engine.scene.actions import follow_spoken_captions, stop_speech
from engine.scene.components import Captions
from engine.scene.framing import ease_framing, lay_out_avatars
from engine.scene.timeline import Scripts, run_scripts
from engine.time import Time

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


def conversation_plugin(app: App) -> None:
    """Barge-in for scenes that listen (ListeningSettings.barge_in)."""
    app.world.insert_resource(BargeIns())
    app.add_system(stop_on_barge_in, Stage.UPDATE, before=[run_scripts])


@dataclass
class BargeIns:
    """Resource: the times (engine seconds) visitors cut the avatars short, latest last."""

    times: deque[float] = field(default_factory=lambda: deque(maxlen=64))


def stop_on_barge_in(world: World) -> None:
    """A visitor who starts to speak while an avatar talks silences it at the next audio block (with barge-in on)."""
    settings = world.get_resource(ListeningSettings)
    for _ in world.messages(SpeechStarted).read(stop_on_barge_in):
        if settings is not None and settings.barge_in and world.resource(AudioPlayback).busy:
            stop_speech(world)
            world.resource(BargeIns).times.append(world.resource(Time).elapsed)
