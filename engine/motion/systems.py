"""motion_plugin and its systems: load the avatars' motion models at startup, then at every fixed step read each
avatar's feature window, run all avatars that share a model in one batched forward and write their MotionState.

    STARTUP       load_motion (after open_audio, so the engine's FeatureSpec is known and checked)
    FIXED_UPDATE  drive_motion: step n on the clock (at n / 25 s) reads the FeatureRing frame stamped at that time
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.audio.features import FeatureSpec
from engine.audio.plugin import voice_features
from engine.ecs import Entity, Stage, World, optional
from engine.motion.components import MotionClock, MotionController, MotionModels, MotionState
from engine.time import FixedTime

if TYPE_CHECKING:
    from engine.app import App
    from engine.motion.runtime import MotionRuntime


def motion_plugin(app: App) -> None:
    """Insert MotionModels and MotionClock; schedule load_motion (startup) and drive_motion (fixed 25 Hz)."""
    app.world.insert_resource(MotionModels())
    app.world.insert_resource(MotionClock())
    app.add_system(load_motion, Stage.STARTUP, after=[optional("engine.audio.plugin.open_audio")])
    app.add_system(drive_motion, Stage.FIXED_UPDATE)


def _runtime(world: World, avatar: Path) -> MotionRuntime:
    from engine.motion.runtime import MotionRuntime, motion_path

    models = world.resource(MotionModels)
    path = motion_path(avatar).resolve()
    runtime = models.runtimes.get(path)
    if runtime is None:
        runtime = models.runtimes[path] = MotionRuntime.load(path, spec=world.get_resource(FeatureSpec))
    return runtime


def load_motion(world: World) -> None:
    """Startup: load (and check against the engine's features) the model of every MotionController."""
    for _, controller in world.query(MotionController):
        _runtime(world, controller.avatar)


def _window(world: World, entity: Entity, controller: MotionController, time_s: float,
            runtime: MotionRuntime) -> tuple[np.ndarray, int, bool]:
    """(window [W, D], frame, stale) for this avatar at `time_s`; silence (NaN, which the model reads as silence)
    when its voice has no features yet."""
    ring = voice_features(world, entity, controller.voice)
    hit = ring.at(time_s) if ring is not None else None
    if hit is None:
        return np.full((runtime.spec.window_frames, runtime.spec.dim), np.nan, np.float32), -1, True
    frame, stamp, window = hit
    return window, frame, stamp < time_s - 0.5 / runtime.fps


def drive_motion(world: World) -> None:
    """Fixed step: one batched forward per motion model over every avatar using it; write each MotionState."""
    clock = world.resource(MotionClock)
    fixed = world.resource(FixedTime)
    # Steps a stall made the engine skip are skipped here too: counting only the steps run put the lips 2.2 s behind
    # the voice for good after a 2.5 s first frame (models loading) in every wall-clock run.
    time_s = (clock.steps + fixed.skipped_steps) * fixed.step
    clock.steps += 1
    groups: dict[int, tuple[MotionRuntime, list]] = {}
    for entity, controller in world.query(MotionController):
        runtime = _runtime(world, controller.avatar)
        if controller.memory is None:
            controller.memory = runtime.new_memory(controller.mode, controller.seed, controller.reference)
        window, frame, stale = _window(world, entity, controller, time_s, runtime)
        groups.setdefault(id(runtime), (runtime, []))[1].append((entity, controller, window, frame, stale))
    for runtime, members in groups.values():
        out = runtime.step(np.stack([m[2] for m in members]), [m[1].memory for m in members])
        for i, (entity, _, _, frame, stale) in enumerate(members):
            _publish(world, entity, MotionState(out["euler_deg"][i], out["trans"][i], out["blendshapes"][i],
                                                runtime.names, float(out["breath"][i]), frame, time_s, stale))


def _publish(world: World, entity: Entity, state: MotionState) -> None:
    """Overwrite the avatar's MotionState in place; its first one is inserted at the stage boundary (a deferred
    structural edit, so no query in this stage sees the entity change shape)."""
    current = world.get(entity, MotionState)
    if current is None:
        world.commands.insert(entity, state)
        return
    for name in ("euler_deg", "trans", "blendshapes", "blendshape_names", "breath", "frame", "time_s", "stale"):
        setattr(current, name, getattr(state, name))
