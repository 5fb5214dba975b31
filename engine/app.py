"""App: the world, the schedule and the plugins; `app.update()` runs exactly one frame."""
from __future__ import annotations

import logging
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.ecs import Schedule, Stage, World
from engine.ecs.schedule import FRAME_STAGES, Link, SystemFn
from engine.time import FixedTime, MasterClock, Time

log = logging.getLogger(__name__)
T = TypeVar("T")
Plugin = Callable[["App"], None]


@dataclass
class AppExit:
    """Message: a system asks the runner to stop after this frame."""

    reason: str = "exit requested"


@dataclass
class SystemTimings:
    """Resource: how long each system and each whole frame took, for the overlay and `bench`."""

    startup_ms: dict[str, float] = field(default_factory=dict)
    """Startup systems run once; kept apart so they do not swamp the per-frame figures."""
    last_ms: dict[str, float] = field(default_factory=dict)
    mean_ms: dict[str, float] = field(default_factory=dict)
    stage_ms: dict[str, float] = field(default_factory=dict)
    frame_ms: deque[float] = field(default_factory=lambda: deque(maxlen=300))
    smoothing: float = 0.05
    """Weight of the newest sample in the running means."""

    def record(self, name: str, ms: float) -> None:
        self.last_ms[name] = ms
        previous = self.mean_ms.get(name)
        self.mean_ms[name] = ms if previous is None else previous + self.smoothing * (ms - previous)


@dataclass
class SystemError_:
    count: int
    message: str
    traceback: str


@dataclass
class Diagnostics:
    """Resource: failures the engine survived (shown in the overlay, logged once each)."""

    errors: dict[str, SystemError_] = field(default_factory=dict)
    notices: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    def report(self, source: str, error: BaseException) -> None:
        entry = self.errors.get(source)
        text = f"{type(error).__name__}: {error}"
        if entry is None or entry.message != text:
            log.error("%s failed: %s", source, text)
            self.errors[source] = SystemError_(1, text, traceback.format_exc())
        else:
            entry.count += 1

    def notice(self, text: str) -> None:
        log.info(text)
        self.notices.append(text)

    def warn(self, text: str) -> None:
        """A notice of something the engine goes on without (an avatar, clips, a device): logged as a warning."""
        log.warning(text)
        self.notices.append(text)


def tick_time(world: World) -> None:
    """Advance Time from the master clock (first system of every frame)."""
    clock_time = world.resource(MasterClock).tick()
    frame_time = world.resource(Time)
    frame_time.delta = clock_time - frame_time.elapsed
    frame_time.elapsed = clock_time


class App:
    """Plugins add systems and resources; a runner calls `update()` once per displayed frame.

    strict=True (tests, offline tools) lets a failing system raise. strict=False (the live engine)
    records the failure in Diagnostics and keeps the frame loop going: one broken part must not
    blank a kiosk. Startup systems always raise: an engine that cannot start should say so.
    """

    def __init__(self, *, strict: bool = True) -> None:
        self.world = World()
        self.schedule = Schedule()
        self.strict = strict
        self.frame = 0
        self.exit_reason: str | None = None
        self._plugins: set[Plugin] = set()
        self._started = False
        self._shutdown_hooks: list[Callable[[], None]] = []
        for resource in (Time(), FixedTime(), MasterClock(), SystemTimings(), Diagnostics()):
            self.world.insert_resource(resource)
        self.add_system(tick_time, Stage.FIRST)

    # building -----------------------------------------------------------------------------------
    def add_plugin(self, plugin: Plugin) -> App:
        """Run `plugin(app)` once; adding the same plugin again does nothing."""
        if plugin not in self._plugins:
            self._plugins.add(plugin)
            plugin(self)
        return self

    def has_plugin(self, plugin: Plugin) -> bool:
        return plugin in self._plugins

    def add_system(
        self,
        fn: SystemFn,
        stage: Stage = Stage.UPDATE,
        *,
        before: Iterable[Link] = (),
        after: Iterable[Link] = (),
        run_if: Callable[[World], bool] | None = None,
        name: str | None = None,
    ) -> App:
        self.schedule.add(fn, stage, before=before, after=after, run_if=run_if, name=name)
        return self

    def insert_resource(self, resource: Any) -> App:
        self.world.insert_resource(resource)
        return self

    def resource(self, resource_type: type[T]) -> T:
        return self.world.resource(resource_type)

    def on_shutdown(self, hook: Callable[[], None]) -> App:
        """Register a cleanup (close a window, an audio stream); hooks run last-registered first."""
        self._shutdown_hooks.append(hook)
        return self

    # running ------------------------------------------------------------------------------------
    def startup(self) -> None:
        """Run the startup stage (done by the first update() if not called before)."""
        if self._started:
            return
        self.schedule.check()
        self._started = True
        self._run_stage(Stage.STARTUP, strict=True)

    def update(self) -> None:
        """Run one frame: every stage in order, FIXED_UPDATE as many times as the clock says."""
        self.startup()
        timings = self.world.resource(SystemTimings)
        frame_start = time.perf_counter()
        for stage in FRAME_STAGES:
            stage_start = time.perf_counter()
            if stage is Stage.FIXED_UPDATE:
                steps = self.world.resource(FixedTime).accumulate(self.world.resource(Time).delta)
                for _ in range(steps):
                    self._run_stage(stage, strict=self.strict)
            else:
                self._run_stage(stage, strict=self.strict)
            timings.stage_ms[stage.value] = (time.perf_counter() - stage_start) * 1e3
        for request in self.world.messages(AppExit).read(self):
            self.exit_reason = request.reason
        self.world.swap_message_buffers()
        timings.frame_ms.append((time.perf_counter() - frame_start) * 1e3)
        self.frame += 1
        self.world.resource(Time).frame = self.frame

    def _run_stage(self, stage: Stage, *, strict: bool) -> None:
        timings = self.world.resource(SystemTimings)
        for system in self.schedule.stage(stage):
            if system.run_if is not None and not system.run_if(self.world):
                continue
            start = time.perf_counter()
            try:
                system.fn(self.world)
            except Exception as error:
                if strict:
                    raise
                self.world.resource(Diagnostics).report(system.name, error)
            elapsed_ms = (time.perf_counter() - start) * 1e3
            if stage is Stage.STARTUP:
                timings.startup_ms[system.name] = elapsed_ms
            else:
                timings.record(system.name, elapsed_ms)
        # Stage boundary: deferred edits become visible to the next stage.
        self.world.apply_commands()

    @property
    def started(self) -> bool:
        """Whether STARTUP has run (the first update): what it built from the settings is fixed from then on."""
        return self._started

    @property
    def should_exit(self) -> bool:
        return self.exit_reason is not None

    def request_exit(self, reason: str) -> None:
        self.world.messages(AppExit).send(AppExit(reason))

    def shutdown(self) -> None:
        while self._shutdown_hooks:
            hook = self._shutdown_hooks.pop()
            try:
                hook()
            except Exception:  # cleanup must reach every hook
                log.exception("shutdown hook %r failed", hook)
