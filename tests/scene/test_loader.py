"""Scene scripts: loaded by path; every kind of broken script gives a message with the file and the fix."""
import textwrap

import pytest

from engine.app import App
from engine.scene.loader import SceneError, build_scene


def write(tmp_path, source, name="scene.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_build_adds_the_scene_systems(tmp_path):
    path = write(tmp_path, """
        from dataclasses import dataclass

        @dataclass
        class Counter:
            n: int = 0

        def count(world):
            for _, counter in world.query(Counter):
                counter.n += 1

        def build(app):
            app.world.spawn(Counter())
            app.add_system(count)
    """)
    app = App()
    module = build_scene(app, path)
    app.update()
    app.update()
    ((_, counter),) = app.world.query(module.Counter)
    assert counter.n == 2


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "def build(app):\n    x = (\n")
    with pytest.raises(SceneError, match=rf"{path}:\d+: syntax error"):
        build_scene(App(), path)


def test_missing_build_says_what_to_define(tmp_path):
    path = write(tmp_path, "x = 1\n")
    with pytest.raises(SceneError, match=r"has no build\(app\) function"):
        build_scene(App(), path)


def test_error_inside_build_shows_the_scene_line(tmp_path):
    path = write(tmp_path, """
        def build(app):
            avatars = {}
            avatars["presenter"].speak()
    """)
    with pytest.raises(SceneError) as caught:
        build_scene(App(), path)
    message = str(caught.value)
    assert "build(app) raised" in message and str(path) in message
    assert 'avatars["presenter"].speak()' in message and "KeyError: 'presenter'" in message


def test_error_at_import_is_reported(tmp_path):
    path = write(tmp_path, "import no_such_module_here\ndef build(app): pass\n")
    with pytest.raises(SceneError, match="raised while importing(.|\n)*no_such_module_here"):
        build_scene(App(), path)


def test_missing_file(tmp_path):
    with pytest.raises(SceneError, match="does not exist"):
        build_scene(App(), tmp_path / "nope.py")


def test_a_scene_file_a_control_client_names_must_lie_in_an_allowed_folder(tmp_path):
    from engine.scene.loader import check_scene_source

    allowed, outside = tmp_path / "scenes", tmp_path / "tmp"
    allowed.mkdir()
    outside.mkdir()
    inside = write(allowed, "def build(app): pass\n", "good.py")
    deeper = allowed / "sub"
    deeper.mkdir()
    nested = write(deeper, "def build(app): pass\n", "nested.py")
    stranger = write(outside, "def build(app): pass\n", "evil.py")
    assert check_scene_source(inside, [allowed]) == inside.resolve()
    assert check_scene_source(nested, [allowed]) == nested.resolve()
    with pytest.raises(SceneError, match=f"{stranger} is outside the folders scenes may be loaded from "
                                         rf"\({allowed}\); move it into one, or start the engine with "
                                         "--control-scene-dirs FOLDER"):
        check_scene_source(stranger, [allowed])
    (allowed / "link.py").symlink_to(stranger)
    with pytest.raises(SceneError, match="is outside the folders"):
        check_scene_source(allowed / "link.py", [allowed])
    with pytest.raises(SceneError, match="is outside the folders"):
        check_scene_source(allowed / "sub" / ".." / ".." / "tmp" / "evil.py", [allowed])  # no way out by '..'
    with pytest.raises(SceneError, match="is outside the folders"):
        check_scene_source(inside, [])  # no folder allowed: nothing loads
    with pytest.raises(SceneError, match="not an existing .py scene file"):
        check_scene_source(write(allowed, "x", "notes.txt"), [allowed])
    inside.chmod(0o646)
    with pytest.raises(SceneError, match=rf"{inside} is writable by every user \(mode 0646\); run `chmod o-w"):
        check_scene_source(inside, [allowed])
