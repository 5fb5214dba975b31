"""Named stages in a fixed order, and the systems inside each, ordered by explicit before/after."""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.ecs.world import World

SystemFn = Callable[["World"], None]


class Stage(str, Enum):
    """The frame's stages, in the order they run (STARTUP only once, FIXED_UPDATE 0..n times)."""

    STARTUP = "startup"
    FIRST = "first"
    PRE_UPDATE = "pre_update"
    FIXED_UPDATE = "fixed_update"
    UPDATE = "update"
    POST_UPDATE = "post_update"
    EXTRACT = "extract"
    RENDER = "render"
    PRESENT = "present"
    LAST = "last"


FRAME_STAGES = [s for s in Stage if s is not Stage.STARTUP]


class SystemCycleError(ValueError):
    """before/after constraints inside one stage form a cycle."""


@dataclass
class System:
    fn: SystemFn
    name: str
    stage: Stage
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    run_if: Callable[[World], bool] | None = None
    order: int = 0  # insertion order, the tie-breaker that keeps sorting stable


def system_name(fn_or_name: SystemFn | str) -> str:
    if isinstance(fn_or_name, str):
        return fn_or_name
    return f"{fn_or_name.__module__}.{fn_or_name.__qualname__}"


@dataclass
class Schedule:
    """Holds the systems of every stage and sorts each stage once, when it changes."""

    _systems: dict[Stage, list[System]] = field(default_factory=lambda: {s: [] for s in Stage})
    _sorted: dict[Stage, list[System] | None] = field(default_factory=dict)
    _count: int = 0

    def add(
        self,
        fn: SystemFn,
        stage: Stage,
        *,
        before: Iterable[SystemFn | str] = (),
        after: Iterable[SystemFn | str] = (),
        run_if: Callable[[World], bool] | None = None,
        name: str | None = None,
    ) -> System:
        name = name or system_name(fn)
        if any(s.name == name for s in self.all_systems()):
            raise ValueError(f"system {name!r} is already scheduled; pass name=... to add it twice")
        system = System(
            fn, name, Stage(stage), tuple(map(system_name, before)), tuple(map(system_name, after)),
            run_if, self._count,
        )
        self._count += 1
        self._systems[system.stage].append(system)
        self._sorted[system.stage] = None
        return system

    def remove(self, fn_or_name: SystemFn | str) -> None:
        name = system_name(fn_or_name)
        for stage, systems in self._systems.items():
            kept = [s for s in systems if s.name != name]
            if len(kept) != len(systems):
                self._systems[stage] = kept
                self._sorted[stage] = None

    def all_systems(self) -> list[System]:
        return [s for systems in self._systems.values() for s in systems]

    def stage(self, stage: Stage) -> list[System]:
        cached = self._sorted.get(stage)
        if cached is None:
            cached = self._sorted[stage] = _sort(self._systems[stage])
        return cached


def _sort(systems: list[System]) -> list[System]:
    """Topological order by before/after; ties keep insertion order.

    A constraint naming a system that is not in this stage is ignored, so plugins can order
    themselves against optional neighbours.
    """
    by_name = {s.name: s for s in systems}
    successors: dict[str, set[str]] = {s.name: set() for s in systems}
    for s in systems:
        for other in s.before:
            if other in by_name:
                successors[s.name].add(other)
        for other in s.after:
            if other in by_name:
                successors[other].add(s.name)
    indegree = {name: 0 for name in by_name}
    for succ in successors.values():
        for name in succ:
            indegree[name] += 1
    ready = [(by_name[n].order, n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    ordered: list[System] = []
    while ready:
        _, name = heapq.heappop(ready)
        ordered.append(by_name[name])
        for nxt in successors[name]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, (by_name[nxt].order, nxt))
    if len(ordered) != len(systems):
        stuck = sorted(n for n, d in indegree.items() if d > 0)
        raise SystemCycleError(f"before/after constraints form a cycle among: {', '.join(stuck)}")
    return ordered
