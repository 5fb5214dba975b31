"""Hot reload: the engine hosts one scene at a time and rebuilds it when its file is saved or another is loaded.

`host_scene(app, path)` builds the scene like `build_scene` (a broken scene at start raises SceneError) and adds
`watch_scene` (Stage.FIRST), which polls the file's mtime a few times a second. On a change it loads the new file
first: a syntax or import error is shown in the overlay (Diagnostics) and logged, and the running scene is left as it
was. A file that loads replaces the scene: the old scene's systems (those not from `engine.*`), the entities its build
spawned or marked SceneOwned, its scripts, captions and speech go, then the new `build(app)` runs and its startup
systems run once. If that build raises, the previous scene is built again and the error is shown.

A scene asked for by `load_scene` (control socket) is loaded the same way at the next FIRST stage, only from the
allowed folders (--control-scene-dirs, default the folder of the scene the engine started with); how it went is
kept in `SceneHost.last_load` for `status`. One that is refused or does not import leaves the running scene as it
was: the file watcher keeps following the running scene's own file.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from engine.app import Diagnostics
from engine.audio.playback import AudioPlayback
from engine.components import Background
from engine.ecs import Stage, World
from engine.scene.components import Captions, SceneOwned
from engine.scene.control_settings import ControlSettings, OperatorControl
from engine.scene.loader import SceneError, build_module, build_scene, check_scene_source, load_scene_module
from engine.time import MasterClock

if TYPE_CHECKING:
    from engine.app import App

log = logging.getLogger(__name__)

RELOAD_SOURCE = "scene reload"
"""The Diagnostics key of reload failures (cleared by the next good reload)."""


@dataclass
class SceneLoad:
    """The latest `load_scene` and its outcome (the control status's `last_scene_load`)."""

    path: str
    id: Any = None
    """The request's `id`, so a client can tell its own load from another's."""
    state: str = "pending"
    """'pending' (waits for the next frame), 'loaded' or 'failed'."""
    error: str | None = None
    """Why it failed, naming the file."""

    def as_status(self) -> dict[str, Any]:
        return {**asdict(self), "ok": None if self.state == "pending" else self.state == "loaded"}


@dataclass
class SceneHost:
    """Resource: the hosted scene, what it added to the app, and the hot-reload state."""

    app: App
    path: Path
    module: ModuleType | None = None
    mtime_ns: int = 0
    """mtime of the file when it was last loaded (or last failed to load)."""
    entities: frozenset[int] = frozenset()
    """Entities the scene's build spawned (with those marked SceneOwned, despawned on reload)."""
    systems: tuple[str, ...] = ()
    """Names of the systems the scene added (those it would add again on a rebuild)."""
    watch: bool = True
    """Poll the file and reload it when saved."""
    poll_s: float = 0.25
    """Engine-clock seconds between mtime checks (one stat call each)."""
    next_poll_s: float = 0.0
    pending: Path | None = None
    """A scene asked for by `load_scene` (control socket), loaded at the next FIRST stage."""
    last_load: SceneLoad | None = None
    """The latest `load_scene` and how it went."""
    home: Path | None = None
    """The folder of the scene the engine started with: `load_scene` loads from it unless --control-scene-dirs
    names others."""
    reloads: int = 0
    """Successful reloads so far."""
    failures: list[str] = field(default_factory=list)
    """The latest reload errors (last 8), newest last."""


def file_mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def host_scene(app: App, path: str | Path, *, watch: bool = True, poll_s: float = 0.25) -> ModuleType:
    """Build the scene at `path` into `app` and keep it reloadable; raises SceneError if this first build fails."""
    path = Path(path)
    world = app.world
    host = SceneHost(app, path, watch=watch, poll_s=poll_s, home=path.expanduser().resolve().parent)
    host.mtime_ns = file_mtime(path)
    host.module, host.systems, host.entities = build_tracked(app, path)
    world.insert_resource(host)
    if "engine.scene.host.watch_scene" not in {s.name for s in app.schedule.all_systems()}:
        app.add_system(watch_scene, Stage.FIRST, before=["engine.app.tick_time"])
    return host.module


def build_tracked(app: App, path: Path, module: ModuleType | None = None,
                  ) -> tuple[ModuleType, tuple[str, ...], frozenset[int]]:
    """Build the scene (from `module` if already loaded); return it, the systems it added and the entities it
    spawned."""
    before = {s.name for s in app.schedule.all_systems()}
    alive = set(app.world.entities())
    try:
        if module is None:
            module = build_scene(app, path)
        else:
            build_module(app, module, path)
        app.schedule.check()  # a scene's broken order link is refused with the scene, not at the next frame
    except BaseException:
        for name in _added_systems(app, before):  # a half-built scene leaves nothing behind
            app.schedule.remove(name)
        for entity in set(app.world.entities()) - alive:
            app.world.despawn(entity)
        raise
    keep_operator_control(app.world)
    return module, _added_systems(app, before), frozenset(set(app.world.entities()) - alive)


def keep_operator_control(world: World) -> None:
    """A scene that inserted its own ControlSettings gets back every field the operator set (--control-token, ...):
    the socket opens at startup, after the build, with what the operator asked for."""
    operator = world.get_resource(OperatorControl)
    settings = world.get_resource(ControlSettings)
    if operator is not None and settings is not None:
        merged = operator.over(settings)
        if merged != settings:
            world.insert_resource(merged)


def _added_systems(app: App, before: set[str]) -> tuple[str, ...]:
    # Plugins a scene adds (engine.*) stay: the app remembers them as added and would not add them again.
    return tuple(s.name for s in app.schedule.all_systems()
                 if s.name not in before and not s.fn.__module__.startswith("engine."))


def teardown_scene(world: World, host: SceneHost) -> None:
    """Remove what the hosted scene added: its systems, entities, scripts, captions, look and speech."""
    from engine.scene.timeline import Scripts, close_script

    for name in host.systems:
        host.app.schedule.remove(name)
    host.systems = ()
    owned = {entity for entity, _ in world.query(SceneOwned)}
    for entity in host.entities | owned:
        world.despawn(entity)
    host.entities = frozenset()
    scripts = world.get_resource(Scripts)
    if scripts is not None:
        for run in scripts.running:
            close_script(run)
        scripts.running.clear()
    for resource in (Captions, Background):  # without a Background the compositor draws nothing
        world.remove_resource(resource)
    playback = world.get_resource(AudioPlayback)
    if playback is not None:
        playback.stop()


def startup_names(host: SceneHost) -> set[str]:
    return {system.name for system in host.app.schedule.stage(Stage.STARTUP)}


def run_new_startup_systems(world: World, host: SceneHost, before: set[str]) -> None:
    """The engine's startup stage ran long ago: run the startup systems a rebuild added (the scene's own, and those
    of plugins it added for the first time, e.g. the renderer's) once, now, in stage order."""
    for system in host.app.schedule.stage(Stage.STARTUP):
        if system.name not in before:
            system.fn(world)
    world.apply_commands()


def reload_scene(world: World, host: SceneHost, path: Path) -> bool:
    """Replace the hosted scene with the one at `path`; False (and the old scene kept) when it does not load."""
    diagnostics = world.resource(Diagnostics)
    mtime = file_mtime(path)
    if _same_file(path, host.path):
        host.mtime_ns = mtime  # a broken save is shown once, not retried until it is saved again
    # Another file (load_scene) leaves mtime_ns alone until it has loaded: the watcher keeps following the running
    # scene's file, and a failed load must not look like a change to it (that reload cut speech and reset scripts).
    try:
        module = load_scene_module(path)
    except SceneError as error:
        _failed(diagnostics, host, error)
        return False
    old_module, old_path = host.module, host.path
    teardown_scene(world, host)
    before = startup_names(host)
    try:
        host.module, host.systems, host.entities = build_tracked(host.app, path, module)
        host.path = path
        run_new_startup_systems(world, host, before)
    except Exception as error:
        _failed(diagnostics, host, error)
        teardown_scene(world, host)
        _rebuild(world, host, old_module, old_path)
        return False
    host.mtime_ns = mtime
    host.reloads += 1
    diagnostics.errors.pop(RELOAD_SOURCE, None)
    diagnostics.notice(f"scene {path} loaded (reload {host.reloads})")
    return True


def _rebuild(world: World, host: SceneHost, module: ModuleType | None, path: Path) -> None:
    """Bring the previous scene back after a failed reload (it starts again from its beginning)."""
    if module is None:
        return
    before = startup_names(host)
    try:
        host.module, host.systems, host.entities = build_tracked(host.app, path, module)
        host.path = path
        run_new_startup_systems(world, host, before)
    except Exception as error:  # the old scene no longer builds either: show it, run an empty scene
        world.resource(Diagnostics).report(f"{RELOAD_SOURCE} (previous scene)", error)
        host.module = None


def _same_file(a: Path, b: Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _failed(diagnostics, host: SceneHost, error: BaseException) -> None:
    diagnostics.report(RELOAD_SOURCE, error)
    host.failures = [*host.failures[-7:], str(error)]


def scene_folders(world: World, host: SceneHost) -> tuple[Path, ...]:
    """The folders `load_scene` may load from: --control-scene-dirs, else the folder of the first scene."""
    settings = world.get_resource(ControlSettings)
    if settings is not None and settings.control_scene_dirs:
        return tuple(Path(folder).expanduser().resolve() for folder in settings.control_scene_dirs)
    return (host.home,) if host.home is not None else ()


def load_requested(world: World, host: SceneHost) -> bool:
    """Load the scene `load_scene` asked for, if it is allowed; the outcome goes to `host.last_load` (status) and a
    failure to the overlay. Checked here, just before it runs, on the frame thread."""
    path, host.pending = host.pending, None
    load = host.last_load
    if load is None or load.state != "pending":
        load = host.last_load = SceneLoad(str(path))
    try:
        path = check_scene_source(path, scene_folders(world, host))
    except SceneError as error:
        _failed(world.resource(Diagnostics), host, error)
        load.state, load.error = "failed", str(error)
        return False
    load.path = str(path)
    loaded = reload_scene(world, host, path)
    load.state, load.error = ("loaded", None) if loaded else ("failed", host.failures[-1])
    return loaded


def watch_scene(world: World) -> None:
    """First stage: load a scene asked for by `load_scene`, or reload the hosted file when its mtime changed."""
    host = world.get_resource(SceneHost)
    if host is None:
        return
    if host.pending is not None:
        load_requested(world, host)
        return
    now = world.resource(MasterClock).now
    if not host.watch or now < host.next_poll_s:
        return
    host.next_poll_s = now + host.poll_s
    if file_mtime(host.path) != host.mtime_ns:
        log.info("scene %s changed on disk; reloading", host.path)
        reload_scene(world, host, host.path)
