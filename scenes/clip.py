"""Clip: one avatar speaks one clip at one framing in front of one backdrop, then the scene ends.

The scene of `syncanim batch` jobs, and a short way to record an avatar reading a file:

    syncanim run scenes/clip.py --headless --audio speech.wav --out take.mp4 [--avatar DIR] [--framing med]
                                [--backdrop '#1e2430' | chroma | picture.png | plate]
"""
from __future__ import annotations

from pathlib import Path

from engine.audio.sources import load_clip
from engine.scene.actions import scene_framing
from engine.scene.api import Scene, avatar_folder
from engine.scene.loader import SceneArgs, SceneError

AVATAR_DIR = Path(__file__).resolve().parents[1] / "assets" / "avatar"
AVATAR = "presenter"
LEAD_S = 0.4
"""Quiet before the clip (the avatar idles: breathes, blinks, moves its head a little)."""
TAIL_S = 0.6
"""Quiet after the clip before the scene ends."""


def build(app) -> None:
    args = app.world.get_resource(SceneArgs)
    if args is None or args.audio is None:
        raise SceneError("scenes/clip.py speaks one clip: pass it with --audio FILE (wav, flac or mp3)")
    clip = load_clip(Path(args.audio).expanduser())
    scene = Scene(app)
    scene.backdrop(args.backdrop or "plate")
    scene.avatar(avatar_folder(app, AVATAR_DIR), name=AVATAR, mode="one-shot",
                 framing=scene_framing(args.framing or "default"))
    scene.script(lambda d: read(d, clip), name="clip")


def read(d, clip):
    yield d.wait(LEAD_S)
    yield d.say(clip, avatar=AVATAR)
    yield d.wait(TAIL_S)
    yield d.exit("the clip has been read")
