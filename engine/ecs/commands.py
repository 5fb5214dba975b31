"""Deferred entity edits: systems queue spawns and despawns; the app applies them at stage boundaries."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.ecs.world import Entity, World


class Commands:
    """A queue of world edits, applied in the order they were issued.

    Deferring keeps queries stable inside a stage: no system sees an entity appear or vanish halfway
    through the stage, and the renderer never races a despawn.
    """

    def __init__(self) -> None:
        self._queue: list[Callable[[World], None]] = []

    def spawn(self, *components: Any, on_spawn: Callable[[Entity], None] | None = None) -> None:
        """Spawn an entity with `components`; `on_spawn(entity)` runs once it exists."""

        def edit(world: World) -> None:
            entity = world.spawn(*components)
            if on_spawn is not None:
                on_spawn(entity)

        self._queue.append(edit)

    def despawn(self, entity: Entity) -> None:
        self._queue.append(lambda world: world.despawn(entity))

    def insert(self, entity: Entity, *components: Any) -> None:
        def edit(world: World) -> None:
            if world.alive(entity):  # despawned earlier in the same batch: nothing to edit
                world.insert(entity, *components)

        self._queue.append(edit)

    def remove(self, entity: Entity, component_type: type) -> None:
        self._queue.append(lambda world: world.remove(entity, component_type))

    def run(self, edit: Callable[[World], None]) -> None:
        """Queue an arbitrary world edit (e.g. replacing a resource) for the next boundary."""
        self._queue.append(edit)

    def __len__(self) -> int:
        return len(self._queue)

    def apply(self, world: World) -> None:
        # Edits may queue further edits; those run in the same pass.
        while self._queue:
            queue, self._queue = self._queue, []
            for edit in queue:
                edit(world)
