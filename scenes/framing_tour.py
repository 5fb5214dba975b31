"""Framing tour: one avatar speaks while the camera eases default -> MedScale -> MaxScale -> default.

Shows the paper's three upper-body framings (Table 2) as eased transitions while the avatar keeps talking, with a
caption naming each framing. It needs a trained avatar in AVATAR_DIR (or --avatar DIR, or $SYNCANIM_AVATAR) and the
NeRF renderer, and speech from --audio (or the first bundled clip in assets/audio); without them it stops at build
with a message that says what to run. It ends when the speech has been heard.

Run:  syncanim run scenes/framing_tour.py --audio speech.wav [--headless --out tour.mp4]
"""
from __future__ import annotations

from pathlib import Path

from engine.scene.api import Scene, avatar_folder
from engine.scene.loader import SceneArgs, SceneError

REPO = Path(__file__).resolve().parents[1]
AVATAR_DIR = REPO / "assets" / "avatar"
"""The avatar shown unless --avatar DIR or $SYNCANIM_AVATAR names another."""
AUDIO_DIR = REPO / "assets" / "audio"
STOPS = (("med", "MedScale"), ("max", "MaxScale"), ("default", "default framing"))
TRANSITION_S = 1.5
HOLD_S = 1.5


def build(app) -> None:
    scene = Scene(app)
    scene.background(color=(0.12, 0.12, 0.14))
    scene.avatar(avatar_folder(app, AVATAR_DIR), name="presenter", mode="one-shot", framing="default")
    scene.script(lambda d: tour(d, speech_file(app)), name="tour")


def speech_file(app) -> Path:
    args = app.world.get_resource(SceneArgs)
    if args is not None and args.audio is not None:
        path = Path(args.audio)
    else:
        path = next(iter(sorted(AUDIO_DIR.glob("*.wav"))), AUDIO_DIR / "*.wav")
    if not path.is_file():
        raise SceneError(f"framing_tour needs speech: pass --audio speech.wav ({path} does not exist)")
    return path


def tour(d, speech: Path):
    speaking = yield d.say(speech, avatar="presenter", wait=False)
    yield d.caption("default framing")
    yield d.wait(HOLD_S)
    for framing, label in STOPS:
        yield d.caption(label)
        yield d.frame(framing, over=TRANSITION_S)
        yield d.wait(HOLD_S)
    yield d.until(speaking)
    yield d.exit("the framing tour is over")
