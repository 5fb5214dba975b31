"""Load a scene script by path and call its `build(app)`, turning every failure into a clear SceneError."""
from __future__ import annotations

import importlib.util
import sys
import traceback
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
