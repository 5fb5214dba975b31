"""Hot reload: saving the scene file rebuilds it in the running engine; a broken save keeps the old scene playing."""
from __future__ import annotations

import os
import textwrap

import pytest

from engine.app import Diagnostics
from engine.scene.components import Captions
from engine.scene.host import RELOAD_SOURCE, SceneHost, host_scene
from engine.scene.loader import SceneError

SCENE = """
from dataclasses import dataclass

from engine.scene.api import Scene


@dataclass
class Counter:
    n: int = 0


def count_{tag}(world):
    for _, counter in world.query(Counter):
        counter.n += 1


def greet_{tag}(world):
    world.resource(Greetings).names.append("{tag}")


@dataclass
class Greetings:
    names: list


def build(app):
    scene = Scene(app)
    scene.background(color=(0.0, 0.0, 0.5))
    scene.caption("{tag}")
    app.insert_resource(Greetings([]))
    app.world.spawn(Counter())
    app.add_system(count_{tag})
    app.add_system(greet_{tag}, "startup")
"""


def save(path, source, bump: int) -> None:
    """Write the file with an mtime `bump` seconds later (file systems may keep one mtime for quick saves)."""
    path.write_text(textwrap.dedent(source))
    stamp = 1_700_000_000 + bump
    os.utime(path, (stamp, stamp))


def counters(app):
    return [c.n for e in app.world.entities() for c in [app.world.get(e, app.world.resource(SceneHost).module.Counter)]
            if c is not None]


def step(app, frames=7):
    for _ in range(frames):  # > the 0.25 s poll interval at 25 fps
        app.update()


@pytest.fixture
def hosted(app, tmp_path):
    path = tmp_path / "scene.py"
    save(path, SCENE.format(tag="a"), 0)
    host_scene(app, path)
    step(app)
    return app, path


def test_saving_the_file_rebuilds_the_scene(hosted):
    app, path = hosted
    assert counters(app) == [7] and app.resource(Captions).slots["main"].text == "a"
    engine_entity = app.world.spawn(Captions())  # e.g. one an engine plugin spawned at startup
    save(path, SCENE.format(tag="b"), 10)
    step(app)
    host = app.resource(SceneHost)
    assert host.reloads == 1
    assert app.resource(Captions).slots["main"].text == "b"
    names = {s.name for s in app.schedule.all_systems()}
    assert any(n.endswith("count_b") for n in names) and not any(n.endswith("count_a") for n in names)
    assert len(counters(app)) == 1  # the old scene's entity is gone, the new one counts
    assert app.world.alive(engine_entity)  # what the scene did not spawn stays
    assert host.module.Greetings is type(app.resource(host.module.Greetings))
    assert app.resource(host.module.Greetings).names == ["b"]  # the new scene's startup system ran once
    assert "scene" in app.resource(Diagnostics).notices[-1]


def test_a_syntax_error_is_shown_and_the_previous_scene_keeps_running(hosted):
    app, path = hosted
    save(path, "def build(app):\n    x = (\n", 10)
    step(app)
    error = app.resource(Diagnostics).errors[RELOAD_SOURCE]
    assert f"{path}:" in error.message and "syntax error" in error.message
    assert counters(app) == [14]  # still counting: the old scene was never torn down
    assert app.resource(Captions).slots["main"].text == "a"
    step(app)  # the broken file is not reloaded again and again
    assert error.count == 1
    save(path, SCENE.format(tag="c"), 20)  # fixing it clears the error
    step(app)
    assert RELOAD_SOURCE not in app.resource(Diagnostics).errors
    assert app.resource(Captions).slots["main"].text == "c"


def test_a_build_that_raises_brings_the_previous_scene_back(hosted):
    app, path = hosted
    save(path, SCENE.format(tag="d").replace("app.world.spawn(Counter())", "raise RuntimeError('no avatars')"), 10)
    step(app)
    assert "no avatars" in app.resource(Diagnostics).errors[RELOAD_SOURCE].message
    assert app.resource(Captions).slots["main"].text == "a"
    assert len(counters(app)) == 1 and counters(app)[0] > 0  # rebuilt from its start, running again
    names = {s.name for s in app.schedule.all_systems()}
    assert not any(n.endswith("_d") for n in names)  # the half-built scene left no systems


def test_a_scene_whose_order_link_names_nothing_is_refused_and_the_previous_one_runs(hosted):
    app, path = hosted
    save(path, SCENE.format(tag="f").replace("app.add_system(count_f)", "app.add_system(count_f, after=['greet_x'])"),
         10)
    step(app)
    message = app.resource(Diagnostics).errors[RELOAD_SOURCE].message
    assert "greet_x" in message and "not scheduled" in message
    assert app.resource(Captions).slots["main"].text == "a" and counters(app)[0] > 0
    assert not any(s.name.endswith("_f") for s in app.schedule.all_systems())


def test_load_scene_switches_to_another_file(hosted, tmp_path):
    app, _ = hosted
    other = tmp_path / "other.py"
    save(other, SCENE.format(tag="e"), 0)
    app.resource(SceneHost).pending = other
    app.update()
    assert app.resource(SceneHost).path == other
    assert app.resource(Captions).slots["main"].text == "e"


def test_the_first_build_still_raises(app, tmp_path):
    path = tmp_path / "broken.py"
    save(path, "def build(app)\n", 0)
    with pytest.raises(SceneError, match="syntax error"):
        host_scene(app, path)


FAILING_SCRIPT = """
from engine.scene.api import Scene

STEADY = []


def build(app):
    scene = Scene(app)
    scene.script(breaks)
    scene.script(steady)


def lookup(table):
    return table["missing"]


def breaks(d):
    yield d.wait(0.1)
    lookup({})


def steady(d):
    while True:
        STEADY.append(d.now)
        yield None
"""


def test_a_script_error_is_logged_with_the_scene_file_and_line(app, tmp_path, caplog):
    path = tmp_path / "failing.py"
    save(path, FAILING_SCRIPT, 0)
    line = FAILING_SCRIPT.splitlines().index('    return table["missing"]') + 1
    host_scene(app, path)
    with caplog.at_level("ERROR"):
        step(app, 10)
    error = app.resource(Diagnostics).errors["scene script breaks"]
    assert f"{path}:{line}: KeyError: 'missing'" in error.message
    assert f"{path}:{line}: KeyError" in caplog.text
    assert len(app.resource(SceneHost).module.STEADY) == 10  # the engine and the other script go on
