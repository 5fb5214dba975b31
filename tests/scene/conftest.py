"""Fixtures for the scene tests: an engine stepped by hand (stepped clock, virtual audio, no GL needed)."""
from __future__ import annotations

import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from scene_helpers import TOKEN, ChatHandler, completion, make_app  # noqa: E402

from engine.scene.api import Scene  # noqa: E402
from engine.scene.client import ControlClient  # noqa: E402
from engine.scene.control import ControlServer, control_plugin  # noqa: E402
from engine.scene.control_settings import ControlSettings  # noqa: E402


@pytest.fixture
def app():
    made = make_app()
    yield made
    made.shutdown()


@pytest.fixture
def engine_with():
    """Start an engine with a control socket on a free loopback port (settings overridable) and a connected client."""
    started = []

    def start(**overrides):
        app = make_app()
        settings = {"control": "127.0.0.1:0", "control_token": TOKEN, "control_max_message_mb": 1.0,
                    "control_max_connections": 4, **overrides}
        app.insert_resource(ControlSettings(**settings))
        app.add_plugin(control_plugin)
        Scene(app).background(color=(0, 0, 0))
        app.update()
        server = app.resource(ControlServer)
        client = ControlClient(f"127.0.0.1:{server.address[1]}", token=TOKEN)
        started.append((app, client))
        assert client.status()["ok"]  # authenticated at once: it holds one of the slots from now on
        return app, server, client

    yield start
    for app, client in started:
        client.close()
        app.shutdown()


@pytest.fixture
def engine(engine_with):
    return engine_with()


@pytest.fixture
def chat_server():
    """A local OpenAI-compatible chat endpoint (`base_url`) that records its requests and answers `response`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    server.block_on_close = False
    server.requests, server.response, server.stall = [], (200, completion("The cafe is upstairs.")), False
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
