"""World: entities, their dataclass components, typed resources and queries."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar, overload

from engine.ecs.commands import Commands
from engine.ecs.messages import Messages

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")

Entity = int


class World:
    """Entities are integers; each owns at most one component of each type.

    Components live in one dict per type, so a query walks the smallest store and probes the others.
    Resources are singletons keyed by their type.
    """

    def __init__(self) -> None:
        self._next_entity: Entity = 1
        self._alive: set[Entity] = set()
        self._stores: dict[type, dict[Entity, Any]] = {}
        self._resources: dict[type, Any] = {}
        self._messages: dict[type, Messages] = {}
        self.commands = Commands()

    # entities -----------------------------------------------------------------------------------
    def spawn(self, *components: Any) -> Entity:
        entity = self._next_entity
        self._next_entity += 1
        self._alive.add(entity)
        self.insert(entity, *components)
        return entity

    def despawn(self, entity: Entity) -> None:
        self._alive.discard(entity)
        for store in self._stores.values():
            store.pop(entity, None)

    def alive(self, entity: Entity) -> bool:
        return entity in self._alive

    def insert(self, entity: Entity, *components: Any) -> None:
        if entity not in self._alive:
            raise KeyError(f"entity {entity} does not exist (despawned?); cannot insert {components!r}")
        for component in components:
            self._stores.setdefault(type(component), {})[entity] = component

    def remove(self, entity: Entity, component_type: type) -> None:
        self._stores.get(component_type, {}).pop(entity, None)

    def get(self, entity: Entity, component_type: type[T]) -> T | None:
        return self._stores.get(component_type, {}).get(entity)

    def entities(self) -> list[Entity]:
        return sorted(self._alive)

    # queries ------------------------------------------------------------------------------------
    @overload
    def query(self, a: type[A], /) -> Iterator[tuple[Entity, A]]: ...
    @overload
    def query(self, a: type[A], b: type[B], /) -> Iterator[tuple[Entity, A, B]]: ...
    @overload
    def query(self, a: type[A], b: type[B], c: type[C], /) -> Iterator[tuple[Entity, A, B, C]]: ...
    @overload
    def query(self, *types: type) -> Iterator[tuple[Any, ...]]: ...

    def query(self, *types: type) -> Iterator[tuple[Any, ...]]:
        """Yield (entity, component, ...) for every entity that has all `types`, in spawn order."""
        if not types:
            raise TypeError("query needs at least one component type")
        stores = [self._stores.get(t, {}) for t in types]
        smallest = min(stores, key=len)
        # Snapshot the keys so systems may insert or remove components while iterating.
        for entity in sorted(smallest.keys()):
            if all(entity in store for store in stores):
                yield (entity, *(store[entity] for store in stores))

    def single(self, component_type: type[T]) -> tuple[Entity, T]:
        """The one entity with `component_type`; an error if there are none or several."""
        found = list(self.query(component_type))
        if len(found) != 1:
            raise LookupError(f"expected exactly one {component_type.__name__}, found {len(found)}")
        return found[0]

    # resources ----------------------------------------------------------------------------------
    def insert_resource(self, resource: Any) -> None:
        self._resources[type(resource)] = resource

    def resource(self, resource_type: type[T]) -> T:
        try:
            return self._resources[resource_type]
        except KeyError:
            raise KeyError(
                f"resource {resource_type.__name__} is missing: add the plugin that provides it "
                f"or call app.insert_resource({resource_type.__name__}(...))"
            ) from None

    def get_resource(self, resource_type: type[T]) -> T | None:
        return self._resources.get(resource_type)

    def has_resource(self, resource_type: type) -> bool:
        return resource_type in self._resources

    def remove_resource(self, resource_type: type) -> None:
        self._resources.pop(resource_type, None)

    # messages -----------------------------------------------------------------------------------
    def messages(self, message_type: type[T]) -> Messages[T]:
        """The double-buffered channel for `message_type` (made on first use)."""
        channel = self._messages.get(message_type)
        if channel is None:
            channel = self._messages[message_type] = Messages(message_type)
        return channel

    def swap_message_buffers(self) -> None:
        for channel in self._messages.values():
            channel.swap()

    def apply_commands(self) -> None:
        self.commands.apply(self)
