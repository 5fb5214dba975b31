"""The frame as it runs: every stage's systems in order, with the resources and components each one read and wrote,
recorded while the app runs real frames (after Bevy's schedule graphs, measured rather than declared).

A system *writes* what it inserts or removes (resources, components, spawned entities) and what it reads and then
changes an attribute of (`world.resource(FrameImage).rgba = ...`); it *reads* the rest it asks the world for. A change
made inside an object without replacing an attribute (a tensor copied into in place) shows as a read.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.ecs.schedule import Stage

if TYPE_CHECKING:
    from engine.app import App
    from engine.ecs.world import World


@dataclass
class Access:
    """What one system touched over the traced frames (type names)."""

    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    ran: int = 0
    """How many times it ran (FIXED_UPDATE may run several times a frame, a `run_if` none)."""


@dataclass(frozen=True)
class SystemRow:
    stage: Stage
    name: str
    access: Access
    after: tuple[str, ...]
    before: tuple[str, ...]
    conditional: bool


def _name(kind: type | Any) -> str:
    return kind.__name__ if isinstance(kind, type) else type(kind).__name__


def _fingerprint(value: Any) -> tuple | None:
    """The identities of an object's attributes: a replaced attribute changes it."""
    attributes = getattr(value, "__dict__", None)
    return None if attributes is None else tuple((k, id(v)) for k, v in attributes.items())


class Tracer:
    """Records, per running system, what it asks of the world (installed by `traced`)."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.accesses: dict[str, Access] = {}
        self.seen: list[tuple[str, Any, tuple | None]] = []
        """(type name, object, fingerprint) of what the current system read, checked for changes when it ends."""

    def access(self) -> Access | None:
        return None if self.current is None else self.accesses.setdefault(self.current, Access())

    def read(self, value: Any, kind: type | None = None) -> Any:
        access = self.access()
        if access is not None and (value is not None or kind is not None):
            name = _name(kind if kind is not None else value)
            access.reads.add(name)
            if value is not None:
                self.seen.append((name, value, _fingerprint(value)))
        return value

    def write(self, *values: Any) -> None:
        access = self.access()
        if access is not None:
            access.writes.update(_name(v) for v in values)

    def run(self, name: str, fn: Callable[[World], None], world: World) -> None:
        self.current, self.seen = name, []
        try:
            fn(world)
        finally:
            access = self.accesses.setdefault(name, Access())
            access.ran += 1
            access.writes.update(kind for kind, value, before in self.seen if _fingerprint(value) != before)
            self.current = None


@contextmanager
def traced(app: App) -> Iterator[Tracer]:
    """Record the accesses of every system that runs inside the block (the world and the schedule as they were
    after it)."""
    tracer = Tracer()
    world, systems = app.world, app.schedule.all_systems()
    originals = {s.name: s.fn for s in systems}
    for system in systems:
        system.fn = lambda w, name=system.name, fn=system.fn: tracer.run(name, fn, w)
    patched = _patch_world(world, tracer)
    try:
        yield tracer
    finally:
        for system in systems:
            system.fn = originals[system.name]
        for attribute in patched:
            delattr(world, attribute)
        _unpatch_commands(world)


def _patch_world(world: World, tracer: Tracer) -> list[str]:
    """Instance attributes that shadow the World's methods with recording ones; returns their names."""
    cls = type(world)

    def resource(kind):
        return tracer.read(cls.resource(world, kind), kind)

    def get_resource(kind):
        return tracer.read(cls.get_resource(world, kind), kind)

    def insert_resource(value):
        tracer.write(value)
        cls.insert_resource(world, value)

    def remove_resource(kind):
        tracer.write(kind)
        cls.remove_resource(world, kind)

    def query(*kinds):
        for row in cls.query(world, *kinds):
            for kind, value in zip(kinds, row[1:], strict=True):
                tracer.read(value, kind)
            yield row
        for kind in kinds:  # an empty query still reads its types
            tracer.read(None, kind)

    def get(entity, kind):
        return tracer.read(cls.get(world, entity, kind), kind)

    def insert(entity, *components):
        tracer.write(*components)
        cls.insert(world, entity, *components)

    def spawn(*components):
        tracer.write(*components)
        return cls.spawn(world, *components)

    replacements = {"resource": resource, "get_resource": get_resource, "insert_resource": insert_resource,
                    "remove_resource": remove_resource, "query": query, "get": get, "insert": insert,
                    "spawn": spawn}
    for attribute, fn in replacements.items():
        setattr(world, attribute, fn)
    commands = world.commands
    commands_cls = type(commands)

    def queued_insert(entity, *components):
        tracer.write(*components)
        commands_cls.insert(commands, entity, *components)

    def queued_spawn(*components, on_spawn=None):
        tracer.write(*components)
        commands_cls.spawn(commands, *components, on_spawn=on_spawn)

    commands.insert, commands.spawn = queued_insert, queued_spawn
    return list(replacements)


def _unpatch_commands(world: World) -> None:
    for attribute in ("insert", "spawn"):
        world.commands.__dict__.pop(attribute, None)


def schedule_rows(app: App, tracer: Tracer) -> list[SystemRow]:
    """Every scheduled system in the order the frame runs them, with what the tracer saw it touch."""
    rows = []
    for stage in Stage:
        for system in app.schedule.stage(stage):
            rows.append(SystemRow(stage, system.name, tracer.accesses.get(system.name, Access()), system.after,
                                  system.before, system.run_if is not None))
    return rows
