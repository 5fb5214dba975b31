"""Kiosk: idles until control messages arrive, then speaks what it is sent, with the text as a caption.

What it shows: a dark background, the avatar in AVATAR_DIR (or `--avatar DIR`, or $SYNCANIM_AVATAR) when that
folder holds a trained avatar (`syncanim train`), and while a clip is heard its caption (the `text` of a `say`); a
`cue` named "caption" shows its `data` for a few seconds. Without a trained avatar it shows the background and
captions only, and the overlay's notices say what to run. Nothing pauses while idle: every frame is composed and
presented, and idle avatars keep moving (their motion models are fed silence).

Run (window in kiosk mode, or headless into an mp4 with its sound):
    syncanim run scenes/kiosk.py --kiosk --control 127.0.0.1:7878
    syncanim run scenes/kiosk.py --headless --realtime --seconds 60 --out kiosk.mp4 --control 127.0.0.1:7878
Without --control it listens on 127.0.0.1:7878 anyway (it is a kiosk), with every other --control-* flag given.
The token is printed at start unless given (--control-token-file FILE or $SYNCANIM_CONTROL_TOKEN); then:
    python scripts/say_espeak.py "Hello, I am the kiosk." --token TOKEN
"""
from __future__ import annotations

import logging
from pathlib import Path

from engine.app import Diagnostics
from engine.scene.api import Scene, avatar_folder, open_control
from engine.scene.loader import SceneError
from engine.scene.protocol import DEFAULT_PORT

AVATAR_DIR = Path(__file__).resolve().parents[1] / "assets" / "avatar"
"""The avatar this kiosk shows (edit to point at your own `syncanim train` output)."""
log = logging.getLogger(__name__)


def build(app) -> None:
    if open_control(app, f"127.0.0.1:{DEFAULT_PORT}") is None:
        app.resource(Diagnostics).warn("kiosk without a control socket (--control None): nothing can make it speak")
    scene = Scene(app)
    scene.background(color=(0.06, 0.07, 0.09))
    try:
        scene.avatar(avatar_folder(app, AVATAR_DIR), name="host", mode="one-shot", framing="default")
    except SceneError as error:
        app.resource(Diagnostics).warn(f"kiosk without an avatar: {error} (or pass --avatar AVATAR_DIR)")
    scene.speech(preload=True)  # `say text=` is spoken by the engine's voice: load it now, not at the first text
    scene.script(show_cued_captions)


def show_cued_captions(d):
    """A `cue` named 'caption' (ControlClient.cue('caption', 'text')) shows its text for five seconds."""
    while True:
        message = yield d.on_message("cue", name="caption")
        yield d.caption(str(message.fields.get("data", "")), for_s=5.0)
