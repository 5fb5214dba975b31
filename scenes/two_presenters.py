"""Two presenters: a short dialogue between two avatars sharing the frame, each with its own voice and caption.

The left avatar fills the left half of the canvas, the right one the right half; each speaks on its own voice
(`scene.voices`), so each one's lips follow only its own lines. The lines are synthesised with espeak-ng at build.
It needs two trained avatars (AVATAR_LEFT / AVATAR_RIGHT, or $SYNCANIM_AVATAR_LEFT / $SYNCANIM_AVATAR_RIGHT; the same
folder twice is fine) and the NeRF renderer; without them it stops at build with a message that says what to run.

Run:  syncanim run scenes/two_presenters.py [--headless --out dialogue.mp4]
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from engine.scene.api import Scene
from engine.scene.loader import SceneError

REPO = Path(__file__).resolve().parents[1]
AVATAR_LEFT = Path(os.environ.get("SYNCANIM_AVATAR_LEFT", REPO / "assets" / "avatar"))
AVATAR_RIGHT = Path(os.environ.get("SYNCANIM_AVATAR_RIGHT", REPO / "assets" / "avatar"))
LINES = (
    ("left", "en-us", "Hello, and welcome to the evening news."),
    ("right", "en-gb", "Thank you. Tonight, two avatars share one frame."),
    ("left", "en-us", "Each of us listens only to our own voice."),
    ("right", "en-gb", "So only one of us moves the lips at a time."),
)
PAUSE_S = 0.4


def build(app) -> None:
    scene = Scene(app)
    scene.voices("left", "right")  # one voice per presenter
    scene.background(color=(0.10, 0.11, 0.16))
    scene.avatar(AVATAR_LEFT, name="left", voice="left", rect=(0.0, 0.0, 0.5, 1.0), framing="med")
    scene.avatar(AVATAR_RIGHT, name="right", voice="right", rect=(0.5, 0.0, 0.5, 1.0), framing="med", seed=1)
    lines = [(speaker, speak_line(text, voice), text) for speaker, voice, text in LINES]
    scene.script(lambda d: dialogue(d, lines), name="dialogue")


def speak_line(text: str, voice: str):
    """espeak-ng's speech for `text` as an AudioClip at the engine rate."""
    from engine.audio.sources import AudioClip
    from engine.scene.control import decode_bytes

    if shutil.which("espeak-ng") is None:
        raise SceneError("two_presenters synthesises its lines with espeak-ng; install it (apt install espeak-ng)")
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, text], capture_output=True, check=True).stdout
    return AudioClip(decode_bytes(wav, 16000), 16000, text[:24])


def dialogue(d, lines):
    for speaker, clip, text in lines:
        yield d.say(clip, avatar=speaker, caption=text)
        yield d.wait(PAUSE_S)
    yield d.exit("the dialogue is over")
