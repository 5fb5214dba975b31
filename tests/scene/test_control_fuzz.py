"""The control socket under a fuzz campaign: 10,000 messages of every category (scripts/fuzz_control.py) with slow
and idle clients holding on, against a kiosk whose frame loop runs meanwhile: nothing crashes, the kiosk's caption
script still runs, a good message is still answered, and memory stays bounded."""
from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from scene_helpers import load_fuzzer, wait_until

from engine.scene import SCENES_DIR
from engine.scene.client import ControlClient
from engine.scene.components import Captions
from engine.scene.control import ControlServer
from engine.scene.control_settings import ControlSettings
from engine.scene.host import host_scene

TOKEN = "fuzz-token-123"


class Errors(logging.Handler):
    """ERROR records from the control server: an unexpected failure in a handler (answered 'internal error')."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


@pytest.mark.slow
def test_ten_thousand_hostile_messages_leave_the_kiosk_running(app, tmp_path, monkeypatch):
    fuzz = load_fuzzer()
    monkeypatch.setenv("SYNCANIM_AVATAR", str(tmp_path / "no_avatar"))
    # Small limits keep the bombs cheap to make and to refuse; the campaign sizes them around these.
    settings = ControlSettings(control="127.0.0.1:0", control_token=TOKEN, control_max_clip_s=3.0,
                               control_max_message_mb=1.0, control_max_pending=8, control_auth_timeout_s=2.0,
                               control_message_timeout_s=2.0)
    app.insert_resource(settings)
    host_scene(app, SCENES_DIR / "kiosk.py")
    app.update()
    server = app.resource(ControlServer)
    errors = Errors()
    logging.getLogger("engine.scene.control").addHandler(errors)
    campaign = fuzz.Campaign(
        f"127.0.0.1:{server.address[1]}", TOKEN, messages=10_000, workers=3, slow_clients=8, idle_clients=8,
        slow_every_s=0.5, seed=1, max_clip_s=settings.control_max_clip_s,
        max_message_mb=settings.control_max_message_mb, pid=os.getpid(), settle_s=0.0,
        alive=lambda: server._thread is not None and server._thread.is_alive())
    result = {}
    fuzzing = threading.Thread(target=lambda: result.update(campaign.run()), daemon=True)
    try:
        fuzzing.start()
        while fuzzing.is_alive():  # the frame loop drains and applies what was accepted, scripts see every cue
            app.update()
            time.sleep(0.02)  # about real time: a stepped clock would otherwise take the CPU from the campaign
        fuzzing.join()
    finally:
        logging.getLogger("engine.scene.control").removeHandler(errors)
    print({k: v for k, v in result.items() if k != "outcomes"})
    assert result["messages"] == 10_000
    assert result["crashes"] == 0, result["crash_samples"]
    assert errors.records == []
    outcomes = result["outcomes"]
    for category in fuzz.CATEGORIES:  # every category was sent, and answered or cut as it should be
        assert sum(n for k, n in outcomes.items() if k.startswith(category + ":")) > 50, category
    assert outcomes.get("valid: ok", 0) > 100
    assert "deep_nesting: ok" not in outcomes and "huge_strings: ok" not in outcomes  # refused, every one
    assert result["served_at_end"]["served"] == 5
    assert outcomes.get("stream: ok", 0) > 10  # some streams were opened and fed, not only refused
    wait_until(lambda: len(server.streams) == 0)  # every stream ended with its connection: none left open
    # Memory: the worst message costs well under 100 MB; 10,000 of them leave no more than that behind.
    assert result["peak_rss_mb"] - result["start_rss_mb"] < 150, result
    for _ in range(3):
        app.update()
    with ControlClient(f"127.0.0.1:{server.address[1]}", token=TOKEN) as client:
        status = client.status()
        assert status["scripts"] == ["show_cued_captions"]  # no message stopped the kiosk's script
        client.cue("caption", "still here")
        app.update()
        app.update()
    assert app.resource(Captions).slots["main"].text == "still here"
