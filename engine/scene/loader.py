"""Load a scene script by path and call its `build(app)`, turning every failure into a clear SceneError."""
from __future__ import annotations

import importlib.util
import os
import stat
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.app import App


class SceneError(Exception):
    """A scene script could not be loaded or built; the message says where and how to fix it."""


@dataclass(frozen=True)
class SceneArgs:
    """Resource: the command-line options a scene may read (e.g. the --audio file to speak)."""

    path: Path
    audio: Path | None = None
    seconds: float | None = None
    avatar: Path | None = None
    """--avatar: the avatar folder for scenes that show one avatar (engine.scene.api.avatar_folder)."""
    framing: str | None = None
    """--framing: the framing of scenes that take one ('default', 'med', 'max' or a zoom in [0, 1])."""
    backdrop: str | None = None
    """--backdrop: what scenes that take one show behind their avatar (engine.scene.api.backdrop_look)."""
    listen: bool = False
    """--listen: scenes that listen hear the microphone (`Scene.listen`)."""
    listen_file: Path | None = None
    """--listen-file: a recording that stands in for the microphone of scenes that listen."""
    faq: Path | None = None
    """--faq: the questions and answers of scenes that answer questions."""
    mic_device: str | None = None
    """--mic-device: the microphone to open."""


def check_scene_source(path: str | Path, folders: Sequence[str | Path] | None) -> Path:
    """The resolved path of a scene file a control client asked for (`load_scene`), or a SceneError naming the file,
    the reason and the fix. Loading runs the file's code in the engine, so it must be a .py file inside one of
    `folders` (symlinks resolved, so a link cannot lead out), not writable by every user and owned by the engine's
    user (or root): nobody else may have put it there. `folders` None skips the folder check (the control server's
    early answer, before the frame loop has said which folders it allows)."""
    try:
        path = Path(path).expanduser()
    except RuntimeError:  # ~user of no such user
        raise SceneError(f"load_scene: {path} names a home folder that does not exist; send an absolute path") \
            from None
    if path.suffix != ".py" or not path.is_file():
        raise SceneError(f"load_scene: {path} is not an existing .py scene file on the engine machine")
    resolved = path.resolve()
    if folders is not None:
        roots = [Path(folder).expanduser().resolve() for folder in folders]
        if not any(resolved.is_relative_to(root) for root in roots):
            named = ", ".join(str(root) for root in roots) or "none"
            raise SceneError(f"load_scene: {resolved} is outside the folders scenes may be loaded from ({named}); "
                             "move it into one, or start the engine with --control-scene-dirs FOLDER")
    info = resolved.stat()
    if info.st_mode & stat.S_IWOTH:
        raise SceneError(f"load_scene: {resolved} is writable by every user (mode {stat.S_IMODE(info.st_mode):04o}); "
                         f"run `chmod o-w {resolved}`")
    if hasattr(os, "getuid") and info.st_uid not in (os.getuid(), 0):
        raise SceneError(f"load_scene: {resolved} belongs to user id {info.st_uid}, not to the engine's user "
                         f"({os.getuid()}); copy it and load your copy")
    return resolved


def load_scene_module(path: str | Path) -> ModuleType:
    """Execute the scene file as a fresh module (a reload re-executes it)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SceneError(f"scene file {path} does not exist; pass the path of a .py file (see scenes/)")
    name = f"syncanim_scene_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SceneError(f"{path} is not a Python file that can be imported; scenes are .py files")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise SceneError(f"{path}:{error.lineno}: syntax error: {error.msg}; fix the scene and run again") from error
    except Exception as error:
        raise SceneError(f"{path}: raised while importing:\n{_user_traceback(error, path)}") from error
    if not callable(getattr(module, "build", None)):
        raise SceneError(f"{path} has no build(app) function; a scene defines `def build(app): ...`")
    return module


def build_scene(app: App, path: str | Path) -> ModuleType:
    """Load the scene at `path` and let it add its entities, systems and resources to `app`."""
    module = load_scene_module(path)
    build_module(app, module, path)
    return module


def build_module(app: App, module: ModuleType, path: str | Path) -> None:
    """Call an already loaded scene's `build(app)` (hot reload loads first, then builds)."""
    try:
        module.build(app)
    except SceneError:
        raise
    except Exception as error:
        raise SceneError(f"{path}: build(app) raised:\n{_user_traceback(error, Path(path))}") from error


def _user_traceback(error: BaseException, path: Path) -> str:
    """The traceback from the scene's own frames on, so the user sees their line first."""
    frames = traceback.extract_tb(error.__traceback__)
    resolved = str(Path(path).resolve())
    own = [i for i, frame in enumerate(frames) if frame.filename == resolved]
    kept = frames[own[0]:] if own else frames
    return "".join(traceback.format_list(kept)) + f"{type(error).__name__}: {error}"
