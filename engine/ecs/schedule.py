"""Named stages in a fixed order, and the systems inside each, ordered by explicit before/after.

An order link names a system of the same stage; `check()` (run when the app starts and after a scene is built)
refuses one that names nothing there, unless it is marked `optional(...)`: a neighbour from a plugin the app may
not have added."""
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


class UnknownSystemError(ValueError):
    """A before/after link names no system of its stage (a typo, a renamed or moved system)."""


@dataclass(frozen=True)
class OptionalLink:
    """An order link to a system that may be absent (its plugin not added): kept when it is there, else ignored."""

    target: SystemFn | str


def optional(target: SystemFn | str) -> OptionalLink:
    """Mark a before/after link as optional: `after=[optional("engine.audio.plugin.open_audio")]`."""
    return OptionalLink(target)


Link = SystemFn | str | OptionalLink


@dataclass
class System:
    fn: SystemFn
    name: str
    stage: Stage
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    run_if: Callable[[World], bool] | None = None
    order: int = 0  # insertion order, the tie-breaker that keeps sorting stable
    optional: frozenset[str] = frozenset()
    """Names among before/after that may be absent."""


def system_name(fn_or_name: Link) -> str:
    if isinstance(fn_or_name, OptionalLink):
        return system_name(fn_or_name.target)
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
        before: Iterable[Link] = (),
        after: Iterable[Link] = (),
        run_if: Callable[[World], bool] | None = None,
        name: str | None = None,
    ) -> System:
        name = name or system_name(fn)
        if any(s.name == name for s in self.all_systems()):
            raise ValueError(f"system {name!r} is already scheduled; pass name=... to add it twice")
        before, after = tuple(before), tuple(after)
        optional_names = frozenset(system_name(link) for link in before + after if isinstance(link, OptionalLink))
        system = System(
            fn, name, Stage(stage), tuple(map(system_name, before)), tuple(map(system_name, after)),
            run_if, self._count, optional_names,
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

    def check(self) -> None:
        """Raise UnknownSystemError for a link that names no system of its stage and is not optional, and
        SystemCycleError for a cycle; run before the app starts, so a broken link never silently drops an order."""
        stages = {s.name: s.stage for s in self.all_systems()}
        for system in self.all_systems():
            for kind, names in (("before", system.before), ("after", system.after)):
                for name in names:
                    where = stages.get(name)
                    if where is system.stage or (where is None and name in system.optional):
                        continue
                    found = f"is in stage {where.value}" if where else "is not scheduled"
                    raise UnknownSystemError(
                        f"{system.name} ({system.stage.value}) runs {kind} {name!r}, which {found}: fix the name or "
                        "the stage, or mark the link optional(...) where that system's plugin may be absent")
        for stage in Stage:
            self.stage(stage)

    def stage(self, stage: Stage) -> list[System]:
        cached = self._sorted.get(stage)
        if cached is None:
            cached = self._sorted[stage] = _sort(self._systems[stage])
        return cached


def _sort(systems: list[System]) -> list[System]:
    """Topological order by before/after; ties keep insertion order.

    A constraint naming a system that is not in this stage is ignored here (`Schedule.check` refuses it unless it
    is optional), so a system removed while the engine runs never stops the frame.
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
