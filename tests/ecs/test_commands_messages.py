"""Deferred commands apply at stage boundaries; messages are double-buffered and read once per reader."""
from dataclasses import dataclass

from engine.app import App
from engine.ecs import Messages, Stage


@dataclass
class Marker:
    value: int = 0


@dataclass
class Ping:
    n: int


def test_spawn_is_invisible_until_the_stage_ends():
    app = App()
    seen = {}

    def spawner(world):
        if app.frame == 0:
            world.commands.spawn(Marker(1))
        seen["same_stage"] = len(list(world.query(Marker)))

    def same_stage_reader(world):
        seen["same_stage_later"] = len(list(world.query(Marker)))

    def next_stage_reader(world):
        seen["next_stage"] = len(list(world.query(Marker)))

    app.add_system(spawner, Stage.UPDATE)
    app.add_system(same_stage_reader, Stage.UPDATE, after=[spawner])
    app.add_system(next_stage_reader, Stage.POST_UPDATE)
    app.update()
    assert seen == {"same_stage": 0, "same_stage_later": 0, "next_stage": 1}


def test_despawn_and_insert_are_deferred_and_insert_after_despawn_is_ignored():
    app = App()
    entity = app.world.spawn(Marker(1))

    def edit(world):
        world.commands.despawn(entity)
        world.commands.insert(entity, Marker(2))
        assert world.alive(entity)

    app.add_system(edit)
    app.update()
    assert not app.world.alive(entity)


def test_on_spawn_callback_receives_the_new_entity():
    app = App()
    got = []
    app.world.commands.spawn(Marker(9), on_spawn=got.append)
    app.update()
    assert app.world.get(got[0], Marker) == Marker(9)


def test_reader_before_and_after_the_writer_each_see_each_message_exactly_once():
    app = App()
    early, late = [], []

    def read_early(world):
        early.extend(m.n for m in world.messages(Ping).read(read_early))

    def write(world):
        world.messages(Ping).send(Ping(app.frame))

    def read_late(world):
        late.extend(m.n for m in world.messages(Ping).read(read_late))

    app.add_system(read_early)
    app.add_system(write, after=[read_early])
    app.add_system(read_late, after=[write])
    for _ in range(4):
        app.update()
    assert late == [0, 1, 2, 3]
    assert early == [0, 1, 2]  # each one frame later, none lost, none twice


def test_unread_messages_expire_after_two_frames():
    channel = Messages(Ping)
    channel.send(Ping(1))
    channel.swap()
    assert [m.n for m in channel.peek()] == [1]
    channel.swap()
    assert channel.peek() == [] and channel.read("late reader") == []


def test_wrong_message_type_is_refused():
    import pytest

    with pytest.raises(TypeError, match="Ping"):
        Messages(Ping).send(Marker())
