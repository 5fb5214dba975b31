"""What the control socket may do to the hosted scene: the operator's control flags reach the socket a scene opens,
`load_scene` loads only from the allowed folders and says how the load went, a failed load leaves the running scene
playing, and the token can come from a private file or the environment instead of the process list."""
from __future__ import annotations

import textwrap

import pytest
from scene_helpers import make_app

from engine.audio.playback import AudioPlayback
from engine.cli import main, parse
from engine.run import assemble_scene
from engine.scene import SCENES_DIR
from engine.scene.client import ControlClient, ControlError
from engine.scene.control import ControlServer, control_plugin
from engine.scene.control_settings import TOKEN_ENV, ControlSettings, read_token_file, with_token
from engine.scene.host import SceneHost, host_scene
from engine.scene.protocol import DEFAULT_PORT
from engine.scene.timeline import Scripts
from engine.time import MasterClock

TOKEN = "scene-token-123"

RUNNING = """
import numpy as np

from engine.scene.api import Scene

TICKS = []


def build(app):
    Scene(app).script(main)


def main(d):
    yield d.say(np.full(16000 * 30, 0.25, np.float32), wait=False)  # 30 s of speech: still heard at the end
    while True:
        TICKS.append(d.now)
        yield None
"""

OTHER = """
from engine.scene.api import Scene


def build(app):
    Scene(app).caption("other")
"""

TOUCHES = """
from pathlib import Path

Path({marker!r}).write_text("ran")  # top-level code: runs as soon as the file is loaded


def build(app):
    pass
"""


def write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    path.chmod(mode)
    return path


@pytest.fixture
def kiosk(tmp_path):
    """An engine hosting scenes/running.py (a script speaking 30 s of sound) with a control socket, and a client."""
    app = make_app()
    app.insert_resource(ControlSettings(control="127.0.0.1:0", control_token=TOKEN))
    app.add_plugin(control_plugin)
    scene = write(tmp_path / "scenes" / "running.py", RUNNING)
    host_scene(app, scene)
    app.update()
    client = ControlClient(f"127.0.0.1:{app.resource(ControlServer).address[1]}", token=TOKEN)
    yield app, client, scene
    client.close()
    app.shutdown()


def steps(app, frames):
    for _ in range(frames):
        app.update()


def script_state(app):
    host = app.resource(SceneHost)
    return host.module, app.resource(Scripts).running[0].generator, len(host.module.TICKS)


# load_scene: only from the allowed folders -------------------------------------------------------------------------
def test_load_scene_refuses_a_file_outside_the_scene_folder_without_running_it(kiosk, tmp_path):
    app, client, scene = kiosk
    marker = tmp_path / "ran.txt"
    evil = write(tmp_path / "elsewhere" / "evil.py", TOUCHES.format(marker=str(marker)))  # e.g. in /tmp
    with pytest.raises(ControlError, match=f"{evil} is outside the folders scenes may be loaded from.*"
                                           "--control-scene-dirs"):
        client.load_scene(evil)
    link = scene.parent / "link.py"
    link.symlink_to(evil)  # a link in the allowed folder does not lead out of it
    with pytest.raises(ControlError, match="is outside the folders"):
        client.load_scene(link)
    steps(app, 10)
    assert not marker.exists()
    assert app.resource(SceneHost).path == scene and app.resource(SceneHost).reloads == 0


def test_the_frame_loop_checks_the_folder_again_before_loading(kiosk, tmp_path):
    """The server's early answer relies on the published status; the load itself is checked where it runs."""
    app, client, scene = kiosk
    marker = tmp_path / "ran.txt"
    evil = write(tmp_path / "elsewhere" / "evil.py", TOUCHES.format(marker=str(marker)))
    app.resource(SceneHost).pending = evil
    steps(app, 2)
    assert not marker.exists()
    load = client.status()["last_scene_load"]
    assert load["ok"] is False and load["state"] == "failed" and "is outside the folders" in load["error"]


@pytest.mark.parametrize("mode, says", [(0o666, "writable by every user (mode 0666); run `chmod o-w")])
def test_load_scene_refuses_a_scene_file_every_user_may_change(kiosk, mode, says):
    app, client, scene = kiosk
    shared = write(scene.parent / "shared.py", OTHER, mode=mode)
    with pytest.raises(ControlError, match=f"{shared} is {says.replace('(', '.').replace(')', '.')}"):
        client.load_scene(shared)


def test_named_scene_folders_replace_the_default(tmp_path):
    app = make_app()
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    app.insert_resource(ControlSettings(control="127.0.0.1:0", control_token=TOKEN, control_scene_dirs=(allowed,)))
    app.add_plugin(control_plugin)
    scene = write(tmp_path / "scenes" / "running.py", RUNNING)
    host_scene(app, scene)
    app.update()
    with ControlClient(f"127.0.0.1:{app.resource(ControlServer).address[1]}", token=TOKEN) as client:
        assert client.status()["scene_dirs"] == [str(allowed.resolve())]
        with pytest.raises(ControlError, match="outside the folders"):
            client.load_scene(write(scene.parent / "sibling.py", OTHER))  # the scene's own folder is not named
        other = write(allowed / "deeper" / "other.py", OTHER)
        client.load_scene(other)
        steps(app, 2)
        assert app.resource(SceneHost).path == other.resolve()
    app.shutdown()


# load_scene: the real outcome, and a failure leaves the scene alone ------------------------------------------------
@pytest.mark.parametrize("source, reason", [
    ("def build(app)\n", "syntax error"),
    ("raise RuntimeError('import went wrong')\n", "import went wrong"),
    ("x = 1\n", "has no build(app) function"),
])
def test_a_failed_load_is_reported_and_leaves_the_running_scene_playing(kiosk, source, reason):
    app, client, scene = kiosk
    steps(app, 5)
    module, generator, ticks = script_state(app)
    broken = write(scene.parent / "broken.py", source)
    reply = client.load_scene(broken)
    assert reply["ok"] and reply["queued"]  # accepted: the frame loop loads it
    steps(app, 20)  # > the file watcher's 0.25 s poll
    load = client.status()["last_scene_load"]
    assert load == {"path": str(broken.resolve()), "id": reply["id"], "state": "failed", "ok": False,
                    "error": load["error"]}
    assert str(broken.resolve()) in load["error"] and reason in load["error"]
    assert any(reason in text for text in client.status()["errors"].values())  # not hidden by a watcher reload
    host = app.resource(SceneHost)
    assert host.path == scene and host.reloads == 0
    assert script_state(app) == (module, generator, ticks + 20)  # the same script, never restarted
    assert app.resource(AudioPlayback).busy  # its speech was not cut


def test_a_good_load_is_reported_with_its_request_id(kiosk):
    app, client, scene = kiosk
    other = write(scene.parent / "other.py", OTHER)
    reply = client.load_scene(other)
    app.update()  # applied in UPDATE, loaded in the next frame's FIRST stage
    assert client.status()["last_scene_load"] == {"path": str(other.resolve()), "id": reply["id"],
                                                  "state": "pending", "ok": None, "error": None}
    app.update()
    load = client.status()["last_scene_load"]
    assert (load["ok"], load["state"], load["id"], load["error"]) == (True, "loaded", reply["id"], None)
    assert app.resource(SceneHost).path == other.resolve()


# the operator's control flags reach the socket a scene opens ------------------------------------------------------
def test_the_kiosk_keeps_every_control_flag_given_without_control(tmp_path):
    options = parse(["run", str(SCENES_DIR / "kiosk.py"), "--headless", "--avatar", str(tmp_path / "no_avatar"),
                     "--control-token", "SECRET-123", "--no-control-allow-load-scene",
                     "--control-max-connections", "2"])
    app = assemble_scene(options)  # built, not started: no socket on the kiosk's fixed port
    settings = app.resource(ControlSettings)
    assert settings.control == f"127.0.0.1:{DEFAULT_PORT}"  # the kiosk's own default where none was given
    assert (settings.control_token, settings.control_allow_load_scene, settings.control_max_connections) == (
        "SECRET-123", False, 2)
    app.shutdown()


SELF_OPENED = """
from engine.scene.api import Scene, open_control
from engine.scene.control import control_plugin
from engine.scene.control_settings import ControlSettings


def build(app):
    {open}
    Scene(app).caption("listening")
"""


@pytest.mark.parametrize("opens", [
    'open_control(app, "127.0.0.1:0", control_max_connections=5, control_allow_load_scene=True)',
    # a scene written before open_control: it replaces the settings wholesale, and still gets the operator's
    'app.insert_resource(ControlSettings(control="127.0.0.1:0")); app.add_plugin(control_plugin)',
])
def test_a_scene_that_opens_its_own_socket_serves_it_with_the_operators_settings(tmp_path, opens):
    scene = write(tmp_path / "own_socket.py", SELF_OPENED.format(open=opens))
    app = assemble_scene(parse(["run", str(scene), "--headless", "--control-token", "SECRET-123",
                                "--no-control-allow-load-scene", "--control-max-connections", "1"]))
    app.insert_resource(MasterClock("stepped", 25))
    app.update()
    try:
        server = app.resource(ControlServer)
        assert server.token == "SECRET-123"
        with ControlClient(f"127.0.0.1:{server.address[1]}", token="SECRET-123") as client:
            with pytest.raises(ControlError, match="load_scene is disabled"):
                client.load_scene(scene)
            with pytest.raises(ControlError, match="too many control connections"):
                ControlClient(f"127.0.0.1:{server.address[1]}", token="SECRET-123")  # --control-max-connections 1
    finally:
        app.shutdown()


# the token without the process list -------------------------------------------------------------------------------
def test_the_token_file_must_be_readable_by_its_owner_only(tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-123\n")
    token_file.chmod(0o644)
    with pytest.raises(ValueError, match=f"--control-token-file {token_file} has mode 0644: group or other users "
                                         f"can read or change it; run `chmod 600 {token_file}`"):
        read_token_file(token_file)
    with pytest.raises(SystemExit) as stop:  # refused while parsing the command line
        main(["run", "scenes/test_card.py", "--headless", "--control-token-file", str(token_file)])
    assert stop.value.code == 2 and "chmod 600" in " ".join(capsys.readouterr().err.split())
    token_file.chmod(0o600)
    assert read_token_file(token_file) == "from-a-file-123"
    with pytest.raises(ValueError, match="pass only one"):
        ControlSettings(control_token="on-the-line-1", control_token_file=token_file)


@pytest.mark.parametrize("source", ["file", "environment"])
def test_the_socket_takes_the_token_from_a_file_or_the_environment(tmp_path, monkeypatch, source):
    args = ["run", "scenes/test_card.py", "--headless", "--control", "127.0.0.1:0"]
    if source == "file":
        token_file = tmp_path / "token"
        token_file.write_text("from-a-file-123\n")
        token_file.chmod(0o600)
        args += ["--control-token-file", str(token_file)]
        monkeypatch.setenv(TOKEN_ENV, "ignored-env-123")  # the file, named on purpose, wins
        expected = "from-a-file-123"
    else:
        monkeypatch.setenv(TOKEN_ENV, "from-the-env-123")
        expected = "from-the-env-123"
    app = assemble_scene(parse(args))
    app.insert_resource(MasterClock("stepped", 25))
    app.update()
    try:
        server = app.resource(ControlServer)
        assert server.token == expected
        with ControlClient(f"127.0.0.1:{server.address[1]}", token=expected) as client:
            assert client.status()["ok"]
    finally:
        app.shutdown()


def test_an_environment_token_reaches_the_kiosk_too(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-the-env-123")
    app = assemble_scene(parse(["run", str(SCENES_DIR / "kiosk.py"), "--headless",
                                "--avatar", str(tmp_path / "no_avatar")]))
    assert app.resource(ControlSettings).control_token == "from-the-env-123"
    app.shutdown()


def test_a_short_environment_token_is_refused():
    with pytest.raises(ValueError, match=f"\\${TOKEN_ENV} must be at least 8 characters"):
        with_token(ControlSettings(), {TOKEN_ENV: "short"})
    assert with_token(ControlSettings(control_token="given-on-line"), {TOKEN_ENV: "from-env-123"}).control_token == \
        "given-on-line"
