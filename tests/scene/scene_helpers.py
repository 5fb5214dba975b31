"""Helpers shared by the scene tests (imported by name; conftest puts this folder on sys.path)."""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from http.server import BaseHTTPRequestHandler

import numpy as np

from engine.app import App
from engine.audio.plugin import audio_plugin
from engine.audio.settings import AudioSettings
from engine.display.plugin import display_plugin
from engine.display.settings import DisplaySettings
from engine.time import MasterClock

FPS = 25.0
SAMPLES_PER_FRAME = 640


def make_app(size=(160, 120), voices=("main",), strict=True) -> App:
    """App with a stepped 25 fps clock, virtual audio output and a display canvas of `size` (no runner)."""
    app = App(strict=strict)
    app.insert_resource(MasterClock("stepped", FPS))
    app.insert_resource(AudioSettings(output="virtual", voices=tuple(voices)))
    app.add_plugin(audio_plugin)
    app.insert_resource(DisplaySettings(size=size))
    app.add_plugin(display_plugin)
    return app


TOKEN = "test-token-123"
"""The control token of the engines the `engine` fixtures start."""


def wait_until(condition, timeout=5.0, message=lambda: ""):
    """Threads run on their own: poll (no timing is asserted, only that it happens)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"condition not reached {message()}")
        time.sleep(0.005)


def constant(seconds: float, value: float, rate: int = 16000) -> np.ndarray:
    """A clip that is recognisable sample by sample: `value` throughout."""
    return np.full(round(seconds * rate), value, np.float32)


def load_fuzzer():
    """scripts/fuzz_control.py as a module (its message builders and campaign)."""
    from engine.scene import SCENES_DIR

    spec = importlib.util.spec_from_file_location("fuzz_control", SCENES_DIR.parent / "scripts" / "fuzz_control.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def completion(text: str) -> bytes:
    """An OpenAI-style chat completion's body whose answer is `text`."""
    return json.dumps({"id": "x", "object": "chat.completion",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}).encode()


class ChatHandler(BaseHTTPRequestHandler):
    """Records each request and answers with the server's `response` (status, body), after `release` when stalling."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers),
                                     "body": json.loads(self.rfile.read(length))})
        if self.server.stall:
            self.server.release.wait(5)
        status, body = self.server.response
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (the timeout test)
            pass

    def log_message(self, *args):
        pass
