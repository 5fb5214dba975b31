"""World: entities, components, queries, resources."""
from dataclasses import dataclass

import pytest

from engine.ecs import World


@dataclass
class Position:
    x: float = 0.0


@dataclass
class Velocity:
    dx: float = 0.0


def test_query_returns_only_entities_with_every_component_in_spawn_order():
    world = World()
    a = world.spawn(Position(1), Velocity(2))
    world.spawn(Position(5))
    c = world.spawn(Velocity(3), Position(7))
    found = [(e, p.x, v.dx) for e, p, v in world.query(Position, Velocity)]
    assert found == [(a, 1, 2), (c, 7, 3)]


def test_despawn_removes_every_component():
    world = World()
    e = world.spawn(Position(), Velocity())
    world.despawn(e)
    assert not world.alive(e)
    assert list(world.query(Position)) == []
    with pytest.raises(KeyError, match="does not exist"):
        world.insert(e, Position())


def test_insert_replaces_component_of_the_same_type():
    world = World()
    e = world.spawn(Position(1))
    world.insert(e, Position(2))
    assert world.get(e, Position).x == 2
    world.remove(e, Position)
    assert world.get(e, Position) is None


def test_missing_resource_error_names_the_type_and_the_fix():
    world = World()
    with pytest.raises(KeyError, match="Position is missing.*insert_resource"):
        world.resource(Position)
    world.insert_resource(Position(3))
    assert world.resource(Position).x == 3


def test_single_requires_exactly_one():
    world = World()
    with pytest.raises(LookupError, match="found 0"):
        world.single(Position)
    e = world.spawn(Position(4))
    assert world.single(Position) == (e, Position(4))
