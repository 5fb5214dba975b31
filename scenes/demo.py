"""Demo: the bundled avatar reads the bundled audio clips one after another, with a caption for each sentence.

What it shows: the avatar in assets/avatar (or --avatar DIR, or $SYNCANIM_AVATAR) reading assets/audio/*.wav (or
--audio CLIP_OR_FOLDER) in name order, with short pauses between clips, where the framing eases to the next of the
paper's framings (default -> MedScale -> MaxScale -> ...). Captions come from a text file beside each clip (CLIP.txt,
one sentence per line, each shown while it is heard: the clip's longest pauses are taken as the sentence breaks).
It ends when the last clip has been heard.

Whatever is missing, it runs anyway and says what to run, in the overlay, in the log and on the frame itself (so a
headless recording shows it too): with no avatar it shows the captions only; with no clips it shows the notice for
a few seconds. With --mic the microphone drives the avatar instead of the clips and it runs until closed.

Run:  syncanim demo                       (a window, or out/demo.mp4 with its sound when there is no display)
      syncanim run scenes/demo.py [--avatar DIR --audio CLIPS --headless --out demo.mp4 --mic]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.app import Diagnostics
from engine.audio.settings import AudioSettings
from engine.audio.sources import AudioClip, load_clip
from engine.scene.api import Scene, avatar_folder
from engine.scene.loader import SceneArgs, SceneError

REPO = Path(__file__).resolve().parents[1]
AVATAR_DIR = REPO / "assets" / "avatar"
AUDIO_DIR = REPO / "assets" / "audio"
AVATAR = "presenter"
FRAMINGS = ("med", "max", "default")
"""The framing eased to before each next clip, in turn."""
LEAD_S = 0.6
"""Quiet before the first clip (the avatar idles: it breathes, blinks and its head moves a little)."""
PAUSE_S = 0.8
"""Quiet between clips, while the framing changes."""
FRAMING_S = 1.6
"""How long each framing transition eases."""
TAIL_S = 1.0
"""Quiet after the last clip before the demo ends."""
NOTICE_S = 6.0
"""How long a demo with no clips shows its notice before it ends."""
PAUSE_MIN_S = 0.3
"""Quiet at least this long splits a clip's speech into runs; its longest pauses are taken as the sentence breaks."""


@dataclass
class Reading:
    """One clip to read and its captions: (start_s, end_s, text) within the clip."""

    clip: AudioClip
    captions: list[tuple[float, float, str]]


def build(app) -> None:
    scene = Scene(app)
    scene.background(color=(0.08, 0.09, 0.12))
    diagnostics = app.resource(Diagnostics)
    missing = []
    folder = avatar_folder(app, AVATAR_DIR)
    try:
        scene.avatar(folder, name=AVATAR, mode="one-shot", framing="default")
        avatar = AVATAR
    except SceneError as error:
        avatar = None
        missing.append("no avatar")
        bundled = " (the bundled one: assets/README.md gives the commands that make it)" if folder == AVATAR_DIR else ""
        diagnostics.warn(f"demo without an avatar (captions only): {error}{bundled}; or pass --avatar AVATAR_DIR")
    if app.resource(AudioSettings).input == "mic":
        show_missing(scene, missing)
        scene.script(listen, name="demo")
        return
    source = clip_source(app)
    readings = load_readings(source)
    if not readings:
        missing.append("no clips")
        diagnostics.warn(f"demo without audio: no .wav clips in {source}; make the bundled ones with "
                         "`scripts/make_demo_audio.sh` (espeak-ng, Piper, sox), or pass --audio CLIP_OR_FOLDER")
    show_missing(scene, missing)
    scene.script(lambda d: read_aloud(d, readings, avatar, missing), name="demo")


def show_missing(scene: Scene, missing: list[str]) -> None:
    """A line at the top of the frame (recordings show it too; the overlay and the log say what to run)."""
    if missing:
        scene.caption(f"Demo with {' and '.join(missing)}: the log says what to run", slot="notice", anchor="top",
                      size=0.045)


def clip_source(app) -> Path:
    args = app.world.get_resource(SceneArgs)
    return Path(args.audio).expanduser() if args is not None and args.audio is not None else AUDIO_DIR


def load_readings(source: Path) -> list[Reading]:
    """The clips at `source` (a file, or a folder's .wav files in name order), decoded, with their captions."""
    paths = [source] if source.is_file() else sorted(source.glob("*.wav")) if source.is_dir() else []
    readings = []
    for path in paths:
        clip = load_clip(path)
        text = path.with_suffix(".txt")
        lines = [line.strip() for line in text.read_text().splitlines() if line.strip()] if text.is_file() else []
        readings.append(Reading(clip, caption_times(clip, lines)))
    return readings


def caption_times(clip: AudioClip, lines: list[str]) -> list[tuple[float, float, str]]:
    """One caption per line, timed by the clip's longest pauses (the sentence breaks) when it has enough of them,
    else the whole text for the whole of the speech (nothing without text)."""
    if not lines:
        return []
    parts = speech_runs(clip.samples, clip.sample_rate)
    if len(parts) >= len(lines) > 0 and parts:
        gaps = sorted(range(1, len(parts)), key=lambda i: parts[i][0] - parts[i - 1][1], reverse=True)
        cuts = sorted(gaps[:len(lines) - 1])
        bounds = [0, *cuts, len(parts)]
        spans = [(parts[a][0], parts[b - 1][1]) for a, b in zip(bounds, bounds[1:], strict=False)]
        return [(start, end, line) for (start, end), line in zip(spans, lines, strict=True)]
    start, end = (parts[0][0], parts[-1][1]) if parts else (0.0, clip.duration_s)
    return [(start, end, " ".join(lines))]


def speech_runs(samples: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start_s, end_s) of the stretches of sound separated by at least PAUSE_MIN_S of quiet (20 ms frames)."""
    hop = rate // 50
    frames = len(samples) // hop
    if frames == 0:
        return []
    rms = np.sqrt(np.mean(np.square(samples[:frames * hop].reshape(frames, hop), dtype=np.float64), axis=1))
    loud = rms > max(1e-3, 0.05 * np.percentile(rms, 95))
    parts: list[list[int]] = []
    gap = round(PAUSE_MIN_S * 50)
    for i in np.flatnonzero(loud):
        if parts and i - parts[-1][1] <= gap:
            parts[-1][1] = i
        else:
            parts.append([i, i])
    return [(a / 50, (b + 1) / 50) for a, b in parts]


def read_aloud(d, readings: list[Reading], avatar: str | None, missing: list[str]):
    if not readings:
        yield d.wait(NOTICE_S)
        yield d.exit("the demo has no clips to read (see the notice above)")
        return
    yield d.wait(LEAD_S)
    for i, reading in enumerate(readings):
        speaking = yield d.say(reading.clip, avatar=avatar, wait=False)
        for start, end, text in reading.captions:
            yield d.until(lambda at=start: speaking.done or speaking.position_s >= at)
            if speaking.done:
                break
            yield d.caption(text, for_s=end - start + 0.3)
        yield d.until(speaking)
        if i + 1 < len(readings):
            if avatar is not None:
                yield d.frame(FRAMINGS[i % len(FRAMINGS)], over=FRAMING_S, avatar=avatar, wait=False)
            yield d.wait(PAUSE_S)
    yield d.wait(TAIL_S)
    yield d.exit("the demo is over" + (f" ({' and '.join(missing)}: see the notices above)" if missing else ""))


def listen(d):
    yield d.caption("Listening to the microphone: speak!", for_s=4.0)
    while True:
        yield d.wait(3600.0)
