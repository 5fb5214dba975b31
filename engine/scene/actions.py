"""What scripts and control messages do to the world: speak, stop, change motion mode, frame, caption.

One implementation for both callers, so a `say` from the control socket and one from a scene script behave the same.
Every function names the avatar or voice it could not find and lists the ones that exist.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.audio.narrator import Narrator
from engine.audio.playback import AudioPlayback, DelayLine
from engine.audio.plugin import Voice
from engine.audio.settings import AudioSettings
from engine.audio.speak import SpeechSettings
from engine.audio.speech_stream import SpeechStream
from engine.components import FRAMING_PRESETS, Avatar, Framing
from engine.ecs import Entity, World
from engine.motion.components import MotionController
from engine.scene.components import Caption, Captions, FramingTween
from engine.time import MasterClock, Time

if TYPE_CHECKING:
    from engine.audio.playback import PlaybackHandle
    from engine.audio.sources import AudioClip

MODES = ("one_shot", "zero_shot")


def find_avatars(world: World, name: str | None) -> list[tuple[Entity, Avatar]]:
    """Avatars called `name`, or every avatar for None; an error listing the names when none matches."""
    found = [(e, a) for e, a in world.query(Avatar) if name is None or a.name == name]
    if name is not None and not found:
        names = sorted(a.name for _, a in world.query(Avatar))
        raise KeyError(f"no avatar named {name!r} in this scene; avatars: {names or 'none spawned'}")
    return found


def voice_of(world: World, avatar: str | None, voice: str | None) -> str | None:
    """The voice to speak on: `voice` if given, else the named avatar's Voice, else None (the main voice)."""
    if voice is not None or avatar is None:
        return voice
    entity, _ = find_avatars(world, avatar)[0]
    component = world.get(entity, Voice)
    return component.name if component is not None else None


def speak(world: World, clip: AudioClip | str | Path | np.ndarray, *, avatar: str | None = None,
          voice: str | None = None, interrupt: bool = False, caption: str | None = None) -> PlaybackHandle:
    """Queue `clip` on the avatar's voice (interrupt=True cuts what it is saying first); optionally caption it."""
    playback = world.resource(AudioPlayback)
    handle = playback.play(clip, interrupt=interrupt, voice=voice_of(world, avatar, voice))
    if interrupt:
        cut_delayed_output(playback)
    if caption is not None:
        show_caption(world, caption, speech=handle)
    return handle


AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac")


def is_text(clip: Any) -> bool:
    """A `say` of a str that names no audio file (by its suffix) speaks the str itself."""
    return isinstance(clip, str) and not clip.strip().lower().endswith(AUDIO_SUFFIXES)


def speak_stream(world: World, stream: SpeechStream, *, avatar: str | None = None, voice: str | None = None,
                 interrupt: bool = False, caption: str | None = None) -> PlaybackHandle:
    """Queue speech that is still arriving (see SpeechStream); the caption is `caption`, else what the stream's
    pieces of text say as each is heard."""
    playback = world.resource(AudioPlayback)
    handle = playback.play_stream(stream, interrupt=interrupt, voice=voice_of(world, avatar, voice))
    if interrupt:
        cut_delayed_output(playback)
    show_caption(world, caption or "", speech=handle)
    return handle


def speak_text(world: World, text: str, *, avatar: str | None = None, voice: str | None = None,
               interrupt: bool = False) -> PlaybackHandle:
    """Speak `text` with the engine's own voice (the Narrator: Piper, else espeak-ng), sentence by sentence, each
    captioned while it is heard. The voice loads at the first text unless a scene preloaded it (`Scene.speech`)."""
    stream = SpeechStream(world.resource(AudioPlayback).sample_rate, name="text")
    handle = speak_stream(world, stream, avatar=avatar, voice=voice, interrupt=interrupt)
    try:
        narrator(world).speak(text, stream)
    except Exception:
        stream.cancel()
        raise
    return handle


def narrator(world: World) -> Narrator:
    """The engine's voice, made at first use with the scene's SpeechSettings (a stepped clock synthesises each text
    at once, so recordings repeat)."""
    found = world.get_resource(Narrator)
    if found is None:
        settings = world.get_resource(SpeechSettings) or SpeechSettings()
        stepped = world.resource(MasterClock).source == "stepped"
        found = Narrator(settings, world.resource(AudioSettings).sample_rate, blocking=stepped)
        world.insert_resource(found)
    return found


def stop_speech(world: World, avatar: str | None = None, voice: str | None = None) -> None:
    """Silence one avatar / voice, or everything; clears the main caption."""
    playback = world.resource(AudioPlayback)
    playback.stop(voice_of(world, avatar, voice))
    cut_delayed_output(playback)
    show_caption(world, "")


def cut_delayed_output(playback) -> None:
    """Drop the speech already mixed but held back by the lip-sync delay, so the speakers fall silent at the next
    block instead of playing on for the delay (120 ms by default). The delay applies to the whole mix: another voice
    loses at most that much too."""
    # Replacing the line is one attribute store: safe against a device callback running on the old one.
    playback.mixer.delay = DelayLine(playback.mixer.delay.samples)


def normalise_mode(mode: str) -> str:
    normal = str(mode).replace("-", "_")
    if normal not in MODES:
        raise ValueError(f"motion mode must be 'one-shot' or 'zero-shot', got {mode!r}")
    return normal


def set_mode(world: World, mode: str, *, avatar: str | None = None,
             reference: dict[str, np.ndarray] | None = None) -> int:
    """Switch avatars' motion to one-shot (from `reference`, or the model's first frame) or zero-shot; returns how
    many avatars changed. The controller restarts from its new starting state at the next fixed step."""
    mode = normalise_mode(mode)
    changed = 0
    for entity, _ in find_avatars(world, avatar):
        controller = world.get(entity, MotionController)
        if controller is None:
            continue
        controller.mode, controller.reference, controller.memory = mode, reference, None
        changed += 1
    return changed


def scene_framing(text: str) -> str | float:
    """A framing as text (`--framing`, a jobs file) -> a preset name or a zoom number."""
    try:
        return float(text)
    except ValueError:
        return text


def framing_zoom(framing: str | float) -> tuple[float, str]:
    """('default' | 'med' | 'max' | a zoom in [0, 1]) -> (zoom, preset name or '')."""
    if isinstance(framing, str):
        if framing not in FRAMING_PRESETS:
            raise ValueError(f"framing must be one of {sorted(FRAMING_PRESETS)} or a zoom in [0, 1], got {framing!r}")
        return FRAMING_PRESETS[framing], framing
    zoom = float(framing)
    if not 0.0 <= zoom <= 1.0:
        raise ValueError(f"a framing zoom is in [0, 1] (0 default, 0.5 med, 1 max), got {framing!r}")
    return zoom, ""


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def backdrop_look(text: str) -> dict[str, Any] | None:
    """A backdrop's text -> the keyword of `Scene.background` it names, or None for 'plate' (the avatar over the room
    it was recorded in): '#RRGGBB' a colour, 'chroma' pure green for keying, else a picture file."""
    spec = text.strip()
    if spec == "plate":
        return None
    if spec == "chroma":
        return {"chroma": True}
    if spec.startswith("#"):
        digits = spec[1:]
        if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError(f"backdrop {text!r}: a colour is #RRGGBB in hex, like #1e2430")
        return {"color": tuple(int(digits[i:i + 2], 16) / 255.0 for i in (0, 2, 4))}
    path = Path(spec).expanduser()
    if path.suffix.lower() not in PICTURE_SUFFIXES or not path.is_file():
        raise ValueError(f"backdrop {text!r} is not 'plate', 'chroma', a colour (#RRGGBB) or an existing picture "
                         f"({', '.join(PICTURE_SUFFIXES)})")
    return {"image": path}


def start_framing(world: World, framing: str | float, *, over: float = 0.0, avatar: str | None = None) -> int:
    """Ease avatars' framing to a preset or zoom over `over` seconds (0: at once); returns how many avatars move."""
    zoom, preset = framing_zoom(framing)
    if not over >= 0.0:
        raise ValueError(f"a framing transition takes over >= 0 seconds, got {over!r}")
    now = world.resource(Time).elapsed
    moved = 0
    for entity, _ in find_avatars(world, avatar):
        current = world.get(entity, Framing)
        if current is None:
            continue
        current.preset = preset
        if over == 0.0:
            current.zoom = zoom
            world.remove(entity, FramingTween)
        else:
            world.insert(entity, FramingTween(current.zoom, zoom, now, over))
        moved += 1
    return moved


def show_caption(world: World, text: str, *, for_s: float | None = None, slot: str = "main",
                 speech: PlaybackHandle | None = None, **look: Any) -> None:
    """Show `text` in caption `slot` (for `for_s` seconds, while `speech` is heard, or until replaced); '' hides it.
    `look` sets Caption fields (anchor, size, color, box_alpha)."""
    captions = world.get_resource(Captions)
    if captions is None:
        captions = Captions()
        world.insert_resource(captions)
    now = world.resource(Time).elapsed
    previous = captions.slots.get(slot)
    caption = Caption(**{**(vars(previous) if previous is not None else {}), **look})
    caption.text = str(text)
    caption.until_s = None if for_s is None else now + float(for_s)
    caption.speech = speech
    caption.follows_speech = bool(speech is not None and speech.stream is not None and not text)
    captions.slots[slot] = caption


def follow_spoken_captions(world: World) -> None:
    """Captions of streamed speech without text of their own show the piece of text being heard now."""
    captions = world.get_resource(Captions)
    for caption in captions.slots.values() if captions is not None else ():
        if caption.follows_speech and caption.speech is not None:
            caption.text = caption.speech.said
