"""The Scene API: what a scene script's `build(app)` calls to set up avatars, a background, captions and scripts.

    from engine.scene.api import Scene

    def build(app):
        scene = Scene(app)
        scene.background(color=(0.1, 0.1, 0.12))          # or image=PATH, chroma=True, transparent=True
        scene.avatar("avatars/anna", name="anna", mode="one-shot", framing="default")
        scene.script(main)

    def main(d):                                          # a generator: see engine.scene.timeline
        yield d.say("hello.wav", avatar="anna", caption="Hello!")
        yield d.frame("max", over=1.0)

Avatars need a trained avatar folder (motion.safetensors and nerf.safetensors from `syncanim train`); spawning one
without it is a SceneError that says what to run. The first avatar adds the NeRF renderer's plugin. Backgrounds and captions are drawn into the frame, so they are recorded and captured.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.app import Diagnostics
from engine.audio.features import FeatureSpec, settings_for
from engine.audio.listening import Listening, ListeningSettings, listening_plugin
from engine.audio.narrator import Narrator
from engine.audio.plugin import Voice
from engine.audio.settings import AudioSettings
from engine.audio.speak import SpeechSettings
from engine.components import ActiveRenderer, Avatar, Background, Framing
from engine.io.checkpoint import CheckpointError, read_metadata
from engine.motion.components import MotionController
from engine.motion.config import MOTION_FILE
from engine.motion.systems import motion_plugin
from engine.nerf.settings import (
    HeadScale, NerfRenderSettings, Precision, QualitySettings, check_head_scale, check_precision,
)
from engine.nerf.train_config import NERF_FILE
from engine.scene import actions
from engine.scene.components import SceneOwned, ScreenRect
from engine.scene.control_settings import ControlSettings, OperatorControl, changed_fields
from engine.scene.loader import SceneArgs, SceneError
from engine.scene.plugin import conversation_plugin, scene_plugin
from engine.scene.timeline import start_script

if TYPE_CHECKING:
    from engine.app import App


AVATAR_ENV = "SYNCANIM_AVATAR"
"""Environment variable naming the avatar folder for scenes that show one avatar."""


def avatar_folder(app: App, default: Path) -> Path:
    """The avatar a one-avatar scene shows: `--avatar DIR` (SceneArgs), else $SYNCANIM_AVATAR, else `default`."""
    import os

    args = app.world.get_resource(SceneArgs)
    if args is not None and args.avatar is not None:
        return Path(args.avatar).expanduser()
    if os.environ.get(AVATAR_ENV):
        return Path(os.environ[AVATAR_ENV]).expanduser()
    return default


def open_control(app: App, address: str, **defaults: Any) -> str | None:
    """Open the control socket from a scene (a kiosk listens even without --control): at `address` unless the
    operator gave --control, with the scene's `defaults` (ControlSettings fields, e.g. control_max_connections=2)
    only for the settings the operator did not set; every control flag on the command line wins. Returns the
    address it listens on (None: the operator passed --control None)."""
    from engine.scene.control import control_plugin

    world = app.world
    current = world.get_resource(ControlSettings) or ControlSettings()
    operator = world.get_resource(OperatorControl) or OperatorControl(current, changed_fields(current))
    try:
        settings = operator.over(replace(ControlSettings(), control=address, **defaults))
    except (TypeError, ValueError) as error:
        raise SceneError(f"open_control({address!r}, ...): {error}") from None
    world.insert_resource(settings)
    if settings.control is not None:
        app.add_plugin(control_plugin)
    return settings.control


def check_avatar_folder(folder: Path) -> None:
    """A SceneError naming the command to run when `folder` is not a trained avatar."""
    train = (f"make one with `syncanim preprocess VIDEO -o DATA_DIR` then "
             f"`syncanim train DATA_DIR -o {folder} --preset cpu`")
    if not folder.is_dir():
        raise SceneError(f"avatar folder {folder} does not exist; {train}")
    for name, what in ((MOTION_FILE, "motion model"), (NERF_FILE, "trained renderer")):
        if not (folder / name).is_file():
            raise SceneError(f"avatar folder {folder} has no {what} ({name} is missing); {train}")


def hear_as_trained(app: App, folder: Path, name: str) -> None:
    """Before the engine starts, switch its speech features to the ones the avatar in `folder` was trained on (mel,
    whisper, ...), so any avatar plays without audio settings in the scene. Two avatars of one engine must agree."""
    world = app.world
    if world.has_resource(FeatureSpec):
        return  # audio is open: the model loader checks the features and names any difference
    try:
        stored = read_metadata(folder / MOTION_FILE).get("features")
    except CheckpointError:
        return  # the model loader reports the file at startup
    if stored is None:
        return
    settings = world.resource(AudioSettings)
    wanted = settings_for(FeatureSpec.from_dict(stored), settings)
    if wanted == settings:
        return
    others = [avatar.name for _, avatar in world.query(Avatar)]
    if others:
        def kind(s: AudioSettings) -> str:
            return f"{s.extractor} ({s.window_frames} frames, look-ahead {s.lookahead_frames})"

        raise SceneError(f"avatar {name!r} ({folder}) was trained on {kind(wanted)} speech features, avatar "
                         f"{others[0]!r} on {kind(settings)} or other settings of them; an engine hears with one "
                         f"kind: retrain one with the other's (`syncanim train --features {settings.extractor}`)")
    world.insert_resource(wanted)


def add_renderer(app: App) -> None:
    """Add the NeRF renderer's plugin (it announces itself with the ActiveRenderer resource) unless one is there."""
    if app.world.has_resource(ActiveRenderer):
        return
    try:
        from engine.nerf.plugin import nerf_plugin
    except ImportError as error:
        raise SceneError(f"avatars need the NeRF renderer, which does not import here ({error}); reinstall the "
                         "project with `make setup`") from error
    app.add_plugin(nerf_plugin)


class Scene:
    """Builds a scene into `app`: call from `build(app)`. Every method may be called again on a hot reload."""

    def __init__(self, app: App) -> None:
        self.app = app
        app.add_plugin(scene_plugin)
        if not app.world.has_resource(Background):
            app.world.insert_resource(Background())

    def background(self, color: tuple[float, float, float] | None = None, *, image: str | Path | None = None,
                   chroma: bool | tuple[float, float, float] = False, transparent: bool = False) -> Background:
        """Pick one: a colour (RGB in [0, 1]), a picture covering the canvas, a chroma-key colour (True: pure
        green) for keying in OBS, or transparent (alpha kept in the window and screenshots, for OBS). The display
        follows it (letterbox bars, the window's transparency): it wins over `--background`."""
        chosen = sum(x is not None and x is not False for x in (color, image, chroma or None, transparent or None))
        if chosen > 1:
            raise SceneError("background(): pass only one of color=, image=, chroma=, transparent=")
        if image is not None:
            path = Path(image).expanduser()
            if not path.is_file():
                raise SceneError(f"background image {path} does not exist; pass a PNG or JPEG file")
            look = Background("image", image=path)
        elif chroma is not False:
            key = (0.0, 1.0, 0.0) if chroma is True else tuple(float(c) for c in chroma)
            look = Background("chroma", color=key)
        elif transparent:
            look = Background("transparent")
        else:
            rgb = tuple(float(c) for c in (color or (0.0, 0.0, 0.0)))
            if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
                raise SceneError(f"background color is 3 floats in [0, 1], got {color!r}")
            look = Background("color", color=rgb)
        self.app.world.insert_resource(look)
        return look

    def voices(self, *names: str) -> tuple[str, ...]:
        """Declare the scene's voices, before spawning avatars on them: each is a stream of its own that only its
        avatars' lips follow (the first is the main voice, which `--mic` replaces). The engine builds them when it
        starts, so a reload that changes them keeps the running scene and asks for a restart."""
        if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise SceneError(f"voices(): give distinct non-empty names, like voices('left', 'right'); got {names!r}")
        settings = self.app.world.resource(AudioSettings)
        if names == settings.voices:
            return names
        if self.app.started:
            raise SceneError(f"voices{names}: the engine started with the voices {settings.voices} and builds them "
                             "only then; restart it to change them")
        self.app.world.insert_resource(replace(settings, voices=names))
        return names

    def backdrop(self, spec: str) -> Background | None:
        """What shows behind the avatars, as text (`syncanim run --backdrop`): 'plate' keeps each avatar over the room
        it was recorded in; a colour (#RRGGBB), 'chroma' or a picture file is drawn behind the avatars, cut out along
        their own outline."""
        try:
            look = actions.backdrop_look(spec)
        except ValueError as error:
            raise SceneError(str(error)) from None
        settings = self.app.world.get_resource(NerfRenderSettings) or NerfRenderSettings()
        self.app.world.insert_resource(replace(settings, background=look is None))
        return None if look is None else self.background(**look)

    def avatar(self, folder: str | Path, *, name: str = "avatar", voice: str | None = None,
               mode: str = "one-shot", reference: dict[str, Any] | None = None, framing: str | float = "default",
               rect: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0), seed: int = 0,
               head_scale: HeadScale | None = None, precision: Precision | None = None) -> str:
        """Spawn the avatar trained in `folder`, speaking on `voice` (default: the main voice), moving one-shot
        (from `reference`: euler_deg, trans, blendshapes; default the first training frame) or zero-shot, framed
        'default' / 'med' / 'max' (or a zoom in [0, 1]), drawn in `rect` = (x, y, width, height) of the canvas
        (normalised, origin top-left). `head_scale` (1: full quality; 'auto': half-resolution head on a CPU above
        128x128) and `precision` ('float32', 'bfloat16', 'auto') set how finely it is rendered (None: the engine's
        setting); `syncanim run --head-scale/--precision` wins over them. Returns `name`, which scripts and control
        messages use."""
        folder = Path(folder).expanduser()
        try:
            for value, check, where in ((head_scale, check_head_scale, "head_scale="),
                                        (precision, check_precision, "precision=")):
                if value is not None:
                    check(value, f"avatar {name!r}: {where}")
        except ValueError as error:
            raise SceneError(str(error)) from None
        check_avatar_folder(folder)
        if any(a.name == name for _, a in self.app.world.query(Avatar)):
            raise SceneError(f"an avatar named {name!r} already exists; give each avatar its own name=")
        hear_as_trained(self.app, folder, name)
        add_renderer(self.app)
        voices = self.app.world.resource(AudioSettings).voices
        voice = voice or voices[0]
        if voice not in voices:
            raise SceneError(f"avatar {name!r}: no voice {voice!r}; the engine's voices are {list(voices)}: declare "
                             "them first with scene.voices(...)")
        zoom, preset = actions.framing_zoom(framing)
        self.app.add_plugin(motion_plugin)
        self.app.world.spawn(
            Avatar(folder, name), Voice(voice), SceneOwned(), Framing(zoom, preset), ScreenRect(*rect),
            MotionController(folder, actions.normalise_mode(mode), reference, seed, voice),
            QualitySettings(head_scale, precision),
        )
        return name

    def speech(self, voice: str | None = None, *, preload: bool = True, prepare: Iterable[str] = ()) -> SpeechSettings:
        """The voice the engine speaks text with (`d.say("Hello!")`, `say text=`): 'joe' (Piper), a Piper .onnx file,
        or 'espeak[:VOICE]'; None keeps the operator's (--speech-voice). `preload` loads it now rather than at the
        first text (about a second), so a visitor's first answer is not kept waiting; the sentences of `prepare`
        (a kiosk's answers) are synthesised in the background and start at once when said."""
        world = self.app.world
        settings = world.get_resource(SpeechSettings) or SpeechSettings()
        if voice is not None and voice != settings.voice:
            try:
                settings = replace(settings, voice=voice)
            except ValueError as error:
                raise SceneError(f"speech({voice!r}): {error}") from None
            world.insert_resource(settings)
            old = world.get_resource(Narrator)
            if old is not None:  # the next text loads the new voice
                old.close()
                world.remove_resource(Narrator)
        if preload:
            actions.narrator(world).preload()
        actions.narrator(world).prepare(prepare)
        return settings

    def listen(self, *, barge_in: bool = True) -> bool:
        """Hear visitors: the microphone (`syncanim run --listen`) or a recording standing in for it
        (`--listen-file`). Scripts get what they say (`d.on_heard()`) and when they start (`d.on_speech_start()`);
        with `barge_in` a visitor who starts to speak stops the avatars, whose own voice never counts (the listener
        knows what is played). Returns False, with a notice, when the run was given neither."""
        args = self.app.world.get_resource(SceneArgs)
        if args is None or (args.listen_file is None and not args.listen):
            self.app.world.resource(Diagnostics).warn(
                "this scene listens, but was given nothing to hear: run it with --listen (the microphone) or "
                "--listen-file QUESTION.wav")
            return False
        if self.app.started and not self.app.world.has_resource(Listening):
            raise SceneError("listen(): the engine opens its microphone at start; restart it to listen")
        self.app.world.insert_resource(ListeningSettings(args.listen_file, args.mic_device, barge_in))
        self.app.add_plugin(listening_plugin)
        self.app.add_plugin(conversation_plugin)
        return True

    def caption(self, text: str, *, for_s: float | None = None, slot: str = "main", **look: Any) -> None:
        """Show a caption now (anchor='bottom'|'top', size=fraction of the height, color=(r, g, b) 0..255)."""
        actions.show_caption(self.app.world, text, for_s=for_s, slot=slot, **look)

    def script(self, script: Callable[..., Any], *, name: str | None = None) -> None:
        """Run `script(director)` from the first frame: a generator function yields steps (see timeline)."""
        start_script(self.app.world, script, name=name)
