"""Control socket: messages reach the frame loop, errors are answered, interrupts cut within one frame, random or
truncated input never crashes the server or leaks a connection, and what a hostile client sends is bounded: audio by
its header and a running cap, messages by size and depth, connections by deadlines and a separate budget for those
not yet authenticated."""
from __future__ import annotations

import os
import select
import socket
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scene_helpers import TOKEN, constant, load_fuzzer, wait_until

from engine.audio.playback import AudioPlayback
from engine.audio.tap import AudioTap
from engine.components import Avatar, Framing
from engine.motion.components import MotionController
from engine.scene import SCENES_DIR
from engine.scene.client import ControlClient, ControlError, wav_bytes
from engine.scene.components import Captions, FramingTween
from engine.scene.control import SCHEMAS, ControlServer
from engine.scene.control_settings import ControlSettings, parse_address
from engine.scene.host import SceneHost, host_scene
from engine.scene.protocol import HEADER, MAX_DEPTH, MAX_TEXT, pack


def test_say_plays_on_the_voice_and_shows_its_text(engine):
    app, _, client = engine
    reply = client.say(wav_bytes(constant(0.3, 0.5)), text="Hello there")
    assert reply["ok"] and reply["duration_s"] == pytest.approx(0.3, abs=0.01)
    app.update()
    assert app.resource(AudioPlayback).busy
    assert app.resource(Captions).slots["main"].text == "Hello there"
    assert client.status()["speaking"] == {"main": True}


def test_speech_waiting_to_play_is_bounded_and_an_interrupting_say_replaces_it(engine_with):
    """Each clip was bounded, their number was not: clips queued back to back grew memory without end."""
    app, _, client = engine_with(control_max_queued_s=2.0)
    assert client.say(wav_bytes(constant(1.5, 0.3)))["ok"]  # not yet applied by the frame loop: counted too
    with pytest.raises(ControlError, match=r"busy: 1.5 s of speech are waiting .*--control-max-queued-s"):
        client.say(wav_bytes(constant(1.0, 0.3)))
    app.update()
    assert client.status()["queued_s"]["main"] == pytest.approx(1.5, abs=0.1)
    with pytest.raises(ControlError, match="busy"):
        client.say(wav_bytes(constant(1.0, 0.3)))
    assert client.say(wav_bytes(constant(1.0, 0.3)), interrupt=True)["ok"]
    app.update()
    assert client.status()["queued_s"]["main"] == pytest.approx(1.0, abs=0.1)


def test_one_connection_flooding_the_queue_leaves_room_for_the_others(engine_with):
    """One client with the token filled all 64 places between two frames: the soak's own says were answered 'busy'."""
    app, server, client = engine_with(control_queue=12)
    flooder = ControlClient(f"127.0.0.1:{server.address[1]}", token=TOKEN)
    try:
        flooder.status()  # two connections with the token: each may hold 12 // 3 = 4
        accepted = 0
        with pytest.raises(ControlError, match=r"busy: this connection has 4 messages waiting .*--control-queue"):
            for _ in range(20):
                flooder.cue("flood")
                accepted += 1
        assert accepted == 4
        assert client.cue("mine")["ok"] and client.set_mode("one-shot")["ok"]
        app.update()  # the frame loop takes them: the flooder's places are free again
        assert flooder.cue("flood")["ok"]
    finally:
        flooder.close()


def test_messages_of_closed_connections_leave_a_place_for_a_client_with_none_waiting(engine_with):
    """Messages stay queued after their connection closes: a client reconnecting between two frames filled the queue
    with them (the soak's own say was answered 'busy' once in an hour of fuzzing)."""
    app, server, client = engine_with(control_queue=12)
    address = f"127.0.0.1:{server.address[1]}"
    for _ in range(4):  # each new connection may hold 12 // 3 = 4
        flooder = ControlClient(address, token=TOKEN)
        try:
            with pytest.raises(ControlError, match="busy"):
                for _ in range(20):
                    flooder.cue("flood")
        finally:
            flooder.close()
    assert server.requests.qsize() < 12
    assert client.cue("mine")["ok"]


def test_status_reports_the_recent_frame_times(engine):
    app, _, client = engine
    for _ in range(5):
        app.update()
    times = client.status()["frame_ms"]
    assert times["frames"] >= 5 and 0 < times["p50"] <= times["p99"] <= times["max"]


def test_say_takes_samples_at_any_rate(engine):
    app, _, client = engine
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(11025) / 22050)
    assert client.say(tone, sample_rate=22050)["duration_s"] == pytest.approx(0.5, abs=0.01)


def test_say_from_a_path_in_the_folders_the_operator_named(engine_with, tmp_path):
    speech = tmp_path / "speech"
    (speech / "greetings").mkdir(parents=True)
    (speech / "greetings" / "hello.wav").write_bytes(wav_bytes(constant(0.2, 0.3)))
    _, _, client = engine_with(control_say_dirs=(speech,))
    assert client.say(path=speech / "greetings" / "hello.wav")["duration_s"] == pytest.approx(0.2, abs=0.01)
    assert client.say(path="greetings/hello.wav")["duration_s"] == pytest.approx(0.2, abs=0.01)  # in the first
    with pytest.raises(ControlError, match="no audio file"):
        client.say(path=speech / "missing.wav")


def test_say_path_outside_the_named_folders_is_refused_alike_whether_the_file_exists_or_not(engine_with, tmp_path):
    speech, private = tmp_path / "speech", tmp_path / "private"
    speech.mkdir()
    private.mkdir()
    secret = private / "secret.wav"
    secret.write_bytes(wav_bytes(constant(0.2, 0.3)))
    (speech / "link.wav").symlink_to(secret)
    _, _, default_client = engine_with()  # no --control-say-dirs: path= refused altogether
    with pytest.raises(ControlError, match="only allowed for files in --control-say-dirs \\(none given\\)"):
        default_client.say(path=secret)
    _, _, client = engine_with(control_say_dirs=(speech,))
    errors = []
    for path in (secret, private / "missing.wav", speech / ".." / "private" / "secret.wav", speech / "link.wav",
                 "/etc/passwd", "/no/such/file.wav", "../private/secret.wav"):
        reply = client.request("say", check=False, path=str(path))
        assert not reply["ok"]
        errors.append(reply["error"])
    assert len(set(errors)) == 1 and "send the audio bytes (wav=)" in errors[0]


FUZZ = load_fuzzer()
wav_declaring, flac_of_silence = FUZZ.wav_declaring, FUZZ.flac_of_silence


def test_a_say_is_refused_by_what_its_header_declares_before_decoding(engine_with):
    _, server, client = engine_with(control_max_clip_s=5.0)
    # 4 KB that declare 1 Hz: 4000 s, 64 M samples at 16 kHz (used to cost 500 MB before the length was checked).
    with pytest.raises(ControlError, match=r"sample rate of 1 Hz is outside 4000\.\.384000 Hz"):
        client.say(wav_declaring(1, 4000))
    with pytest.raises(ControlError, match=r"clip of 60\.0 s \(as its header declares\) is over the limit of 5 s "
                                           r"\(--control-max-clip-s\); send a shorter clip"):
        client.say(flac_of_silence(60))
    with pytest.raises(ControlError, match="200 audio channels is outside 1..64"):
        client.say(wav_declaring(16000, 10, channels=200))
    assert client.say(flac_of_silence(4))["duration_s"] == pytest.approx(4.0, abs=0.01)


def test_a_say_whose_header_hides_its_length_stops_decoding_at_the_limit(engine_with):
    _, _, client = engine_with(control_max_clip_s=3.0)
    with pytest.raises(ControlError, match=r"longer than the limit of 3 s \(decoding stopped at 3\.\d s\)"):
        client.say(flac_of_silence(60, hide_length=True))
    assert client.say(flac_of_silence(2, hide_length=True))["duration_s"] == pytest.approx(2.0, abs=0.01)


def test_an_interrupting_say_cuts_the_voice_within_one_frame(engine):
    app, _, client = engine
    tap = app.resource(AudioTap)
    tap.enabled = True
    origin = app.frame * 640  # the tap holds what is played from now on
    delay = app.resource(AudioPlayback).mixer.delay.samples
    client.say(wav_bytes(constant(3.0, 0.5)))
    first = app.frame
    for _ in range(5):
        app.update()
    client.say(wav_bytes(constant(1.0, -0.25)), interrupt=True)  # answered once it waits for the frame loop
    arrived = app.frame
    for _ in range(delay // 640 + 3):
        app.update()
    played = np.concatenate([np.zeros(origin, np.float32), tap.samples()])
    # Frame `arrived` applies it in UPDATE, after its own audio block: from the very next block on the old speech is
    # gone, also from what the lip-sync delay held back; the new clip follows once through that delay.
    switch = (arrived + 1) * 640
    assert np.allclose(played[(first + 1) * 640 + delay:switch], 0.5, atol=1e-3)  # old speech up to the cut
    assert np.allclose(played[switch:switch + delay], 0.0)
    assert np.allclose(played[switch + delay:switch + delay + 1280], -0.25, atol=1e-3)


def test_stop_set_mode_and_set_framing_reach_the_avatars(engine):
    app, _, client = engine
    controller = MotionController(Path("avatar"), "one_shot", memory="warm")
    framing = Framing()
    app.world.spawn(Avatar(Path("avatar"), "anna"), framing, controller)
    app.update()  # the status snapshot now lists anna
    client.say(wav_bytes(constant(1.0, 0.5)))
    client.stop()
    client.set_mode("zero-shot", avatar="anna")
    client.set_framing("max", over=0.5)
    app.update()
    assert not app.resource(AudioPlayback).busy
    assert controller.mode == "zero_shot" and controller.memory is None  # restarts from the new mode's start
    app.update()
    assert app.world.get(next(e for e, _ in app.world.query(Avatar)), FramingTween).end_zoom == 1.0
    with pytest.raises(ControlError, match="no avatar 'bob'"):
        client.set_mode("one-shot", avatar="bob")


def test_load_scene_and_status(engine, tmp_path):
    app, _, client = engine
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    for path, text in ((first, "one"), (second, "two")):
        path.write_text(f"from engine.scene.api import Scene\n\ndef build(app):\n    Scene(app).caption({text!r})\n")
    host_scene(app, first)
    client.load_scene(second)
    app.update()
    app.update()
    assert app.resource(SceneHost).path == second.resolve()
    status = client.status()
    assert status["scene"] == str(second.resolve()) and status["reloads"] == 1 and status["frame"] >= 2
    with pytest.raises(ControlError, match="not an existing .py scene"):
        client.load_scene(tmp_path / "nope.txt")


@pytest.mark.parametrize("message, error", [
    ({"type": "say", "token": "wrong"}, "unauthorised"),
    ({"type": "dance", "token": TOKEN}, "unknown message type 'dance'"),
    ({"type": "set_mode", "token": TOKEN}, "missing field 'mode'"),
    ({"type": "set_mode", "token": TOKEN, "mode": 3}, "field 'mode' must be str"),
    ({"type": "set_mode", "token": TOKEN, "mode": "sideways"}, "one-shot' or 'zero-shot"),
    ({"type": "set_framing", "token": TOKEN, "framing": "huge"}, "framing must be one of"),
    ({"type": "set_framing", "token": TOKEN, "framing": 0.5, "over": -1}, "'over' is seconds"),
    ({"type": "say", "token": TOKEN}, "exactly one of 'wav'"),
    ({"type": "say", "token": TOKEN, "wav": b"not audio at all"}, "audio not readable"),
    ({"type": "say", "token": TOKEN, "wav": b"", "volume": 3}, "unknown field(s) ['volume']"),
    ({"type": "status", "token": TOKEN, "id": [1]}, "'id' must be"),
    ({"type": "say", "token": TOKEN, "path": "x.wav", "text": "long " * 1000}, "the limit is 2000"),
    ([1, 2, 3], "a message is a msgpack map"),
    ({"type": "cue", "token": TOKEN, "name": "caption", "data": ["caption " * 250] * 75}, "written out; the limit"),
    ({"type": "cue", "token": TOKEN, "name": "x", "data": {"deep": [["x" * 2001]]}}, "2001 characters is over"),
    ({"type": "cue", "token": TOKEN, "name": "x", "data": list(range(300))}, "exceeds max_array_len(256)"),
    ({"type": "cue", "token": TOKEN, "name": "x", "data": [list(range(200))] * 12}, "more than 2048 values"),
    ({"type": "cue", "token": TOKEN, "name": "x", "data": msgpack.ExtType(7, b"")}, "extension type 7"),
    ({"type": "cue", "token": TOKEN, "name": "x", "data": {"x" * 2001: 1}}, "2001 characters is over"),
])
def test_malformed_messages_are_answered_with_an_error(engine, message, error):
    _, server, client = engine
    client.sock.sendall(pack(message))
    reply = msgpack.unpackb(_read_reply(client.sock), raw=False)
    assert reply["ok"] is False and error in reply["error"]
    assert client.status()["ok"]  # the same connection still works


def _read_reply(sock: socket.socket) -> bytes:
    header = _recv(sock, HEADER.size)
    return _recv(sock, HEADER.unpack(header)[0])


def _recv(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "server closed the connection"
        data += chunk
    return data


def test_an_oversized_message_is_refused_and_its_connection_closed(engine):
    _, server, client = engine
    client.sock.sendall(HEADER.pack(50 * 1024 * 1024))
    reply = msgpack.unpackb(_read_reply(client.sock), raw=False)
    assert "over the limit" in reply["error"]
    assert client.sock.recv(1) == b""  # closed by the server
    wait_until(lambda: server.connections == 0)


def test_wrong_tokens_close_the_connection_after_three_tries(engine):
    _, server, client = engine
    for _ in range(3):
        client.sock.sendall(pack({"type": "status", "token": "guess-guess"}))
        assert "unauthorised" in msgpack.unpackb(_read_reply(client.sock), raw=False)["error"]
    assert client.sock.recv(1) == b""


def test_clients_with_the_token_beyond_the_limit_are_turned_away(engine):
    _, server, client = engine
    others = [ControlClient(f"127.0.0.1:{server.address[1]}", token=TOKEN) for _ in range(3)]
    for other in others:
        assert other.status()["ok"]
    idle = [socket.create_connection(server.address) for _ in range(5)]  # without the token: not counted
    with pytest.raises(ControlError, match=r"too many control connections \(4 with the token"):
        ControlClient(f"127.0.0.1:{server.address[1]}", token=TOKEN)  # it authenticates as it connects
    for sock in [*idle, *(o.sock for o in others)]:
        sock.close()
    wait_until(lambda: server.connections == 1)
    assert client.status()["ok"]


def test_connections_without_the_token_never_keep_out_one_with_it(engine_with):
    """Idle and slow connections used to take every slot (a byte every 2 s kept them forever): now they wait in a
    budget of their own, the oldest closed when more arrive."""
    _, server, client = engine_with(control_max_connections=2, control_max_pending=3)
    idle = [socket.create_connection(server.address, timeout=10) for _ in range(4)]
    slow = [socket.create_connection(server.address, timeout=10) for _ in range(6)]
    for sock in slow:
        sock.sendall(HEADER.pack(100)[:2])  # a message begun, never finished
    wait_until(lambda: server.pending <= 3 and server.connections <= 4)
    with ControlClient(f"127.0.0.1:{server.address[1]}", token=TOKEN) as late:
        assert late.status()["ok"] and client.status()["ok"]
    # The first ones were closed to make room, and told why.
    assert "waiting to send a message with the token (--control-max-pending)" in \
        msgpack.unpackb(_read_reply(idle[0]), raw=False)["error"]
    for sock in [*idle, *slow]:
        sock.close()


def test_a_message_must_arrive_whole_by_its_deadline(engine_with):
    _, server, client = engine_with(control_message_timeout_s=0.5)
    assert client.status()["ok"]  # authenticated: only the message deadline applies
    body = msgpack.packb({"type": "status", "token": TOKEN})
    client.sock.settimeout(10)
    client.sock.sendall(HEADER.pack(len(body)))
    reply = None
    for byte in body:  # one byte at a time, each prompt: the message as a whole never ends in time
        if select.select([client.sock], [], [], 0.1)[0]:
            reply = _read_reply(client.sock)  # the server spoke first: its deadline passed
            break
        try:
            client.sock.sendall(bytes([byte]))
        except OSError:  # closed between the look and the send: its reply is waiting
            reply = _read_reply(client.sock)
            break
    assert reply is not None, "the slow message was never cut off"
    error = msgpack.unpackb(reply, raw=False)["error"]
    assert "within 0.5 s of its first byte" in error and "--control-message-timeout-s" in error
    assert client.sock.recv(1) == b""
    wait_until(lambda: server.connections == 0)


@pytest.mark.slow
def test_a_connection_must_authenticate_by_its_deadline(engine_with):
    _, server, client = engine_with(control_auth_timeout_s=0.3)
    assert client.status()["ok"]
    silent = socket.create_connection(server.address, timeout=10)
    error = msgpack.unpackb(_read_reply(silent), raw=False)["error"]
    assert "no whole message with the right token within 0.3 s" in error
    assert silent.recv(1) == b""
    wrong = socket.create_connection(server.address, timeout=10)  # wrong tokens do not authenticate either
    wrong.sendall(pack({"type": "status", "token": "not-the-token"}))
    assert "unauthorised" in msgpack.unpackb(_read_reply(wrong), raw=False)["error"]
    assert "no whole message" in msgpack.unpackb(_read_reply(wrong), raw=False)["error"]
    time.sleep(0.5)
    assert client.status()["ok"]  # the authenticated one is past that deadline and still served


def test_deep_or_huge_cue_data_is_refused_and_the_kiosk_script_keeps_captioning(app, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCANIM_AVATAR", str(tmp_path / "no_avatar"))
    app.insert_resource(ControlSettings(control="127.0.0.1:0", control_token=TOKEN))
    host_scene(app, SCENES_DIR / "kiosk.py")
    app.update()
    deep = None
    for _ in range(1000):
        deep = [deep]
    body = msgpack.packb({"type": "cue", "token": TOKEN, "name": "caption", "data": deep})
    with ControlClient(f"127.0.0.1:{app.resource(ControlServer).address[1]}", token=TOKEN) as client:
        client.sock.sendall(HEADER.pack(len(body)) + body)
        assert f"over the limit of {MAX_DEPTH}" in msgpack.unpackb(_read_reply(client.sock), raw=False)["error"]
        with pytest.raises(ControlError, match="written out"):
            client.cue("caption", ["x" * MAX_TEXT] * 75)
        app.update()
        client.cue("caption", [[["nested"]]] * 3)
        app.update()
        app.update()
        assert client.status()["scripts"] == ["show_cued_captions"]
        from engine.scene.components import Captions
        assert app.resource(Captions).slots["main"].text == str([[["nested"]]] * 3)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# Random frames: raw bytes, msgpack of random values, maps that look like requests, with or without the token.
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=64),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
_requests = st.fixed_dictionaries(
    {"type": st.sampled_from([*SCHEMAS, "bogus"]), "token": st.sampled_from([TOKEN, "nope", 5])},
    optional={"id": _values, "wav": st.binary(max_size=200), "path": st.text(max_size=30), "mode": _values,
              "framing": _values, "over": _values, "avatar": _values, "interrupt": _values, "name": _values,
              "data": _values, "text": _values},
)
_bodies = (st.binary(min_size=1, max_size=300) | _values.map(lambda v: msgpack.packb(v, use_bin_type=True))
           | _requests.map(lambda m: msgpack.packb(m, use_bin_type=True)))


@st.composite
def _sessions(draw):
    """What one client sends: a few framed messages, then maybe a broken tail (cut header or cut body)."""
    frames = [HEADER.pack(len(b)) + b for b in draw(st.lists(_bodies, min_size=0, max_size=4))]
    tail = draw(st.sampled_from(["none", "header", "body", "length"]))
    extra = b""
    if tail == "header":
        extra = HEADER.pack(10)[: draw(st.integers(1, 3))]
    elif tail == "body":
        body = draw(_bodies)
        extra = HEADER.pack(len(body)) + body[: draw(st.integers(0, len(body) - 1))]
    elif tail == "length":
        extra = HEADER.pack(draw(st.sampled_from([0, 2**32 - 1, 2 * 1024 * 1024])))
    return frames, extra


@pytest.mark.slow
def test_fuzzed_and_truncated_messages_never_crash_or_leak(engine):
    app, server, client = engine
    assert client.status()["ok"]  # its handler thread is surely running before the baseline is taken
    threads, fds = threading.active_count(), open_fds()
    counts = {"sessions": 0, "replies": 0}

    @settings(max_examples=500, deadline=None, derandomize=True,  # test_control_fuzz.py sends 10,000 messages
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_sessions())
    def session(sent):
        frames, tail = sent
        with socket.create_connection(server.address, timeout=10) as sock:
            for frame in frames:
                sock.sendall(frame)
                try:
                    reply = msgpack.unpackb(_read_reply(sock), raw=False)
                except (AssertionError, ConnectionError):
                    return  # closed after three wrong tokens: allowed, and counted by the leak checks below
                assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
                assert reply["ok"] or isinstance(reply["error"], str)
                counts["replies"] += 1
            sock.sendall(tail)
        counts["sessions"] += 1
        while not server.requests.empty():  # keep the queue from filling with accepted messages
            app.update()

    session()
    assert counts["sessions"] >= 300 and counts["replies"] >= 300
    wait_until(lambda: server.connections == 1)  # only the fixture's client is left
    # At most: a thread or file another test left behind may end meanwhile; none of ours may stay.
    wait_until(lambda: threading.active_count() <= threads, message=lambda: threading.enumerate())
    wait_until(lambda: open_fds() <= fds, message=lambda: (fds, open_fds(), os.listdir("/proc/self/fd")))
    assert client.status()["ok"]  # still serving


def test_stopping_the_server_joins_its_threads_and_closes_idle_clients():
    before = threading.active_count()
    server = ControlServer(ControlSettings(control="127.0.0.1:0", control_token=TOKEN))
    server.start()
    idle = [socket.create_connection(server.address) for _ in range(3)]
    wait_until(lambda: server.connections == 3)
    server.stop()
    assert threading.active_count() == before and server.connections == 0
    for sock in idle:
        assert sock.recv(1) == b""
        sock.close()


def test_settings_are_checked():
    assert parse_address("127.0.0.1:7878") == ("127.0.0.1", 7878)
    assert parse_address(":9000") == ("127.0.0.1", 9000) and parse_address("9000") == ("127.0.0.1", 9000)
    with pytest.raises(ValueError, match="not a loopback address"):
        ControlSettings(control="0.0.0.0:7878")
    assert ControlSettings(control="0.0.0.0:7878", control_allow_remote=True).control
    with pytest.raises(ValueError, match="HOST:PORT"):
        ControlSettings(control="localhost:http")
    with pytest.raises(ValueError, match="at least 8 characters"):
        ControlSettings(control="127.0.0.1:1", control_token="short")


def test_a_client_authenticates_as_it_connects_so_a_quiet_one_keeps_its_connection(engine_with):
    _, server, _ = engine_with(control_auth_timeout_s=0.3)
    with pytest.raises(ControlError, match="unauthorised"):
        ControlClient(f"127.0.0.1:{server.address[1]}", token="wrong-token")
    with ControlClient(f"127.0.0.1:{server.address[1]}", token=TOKEN) as quiet:
        time.sleep(0.8)  # longer than the engine gives a connection to show its token
        assert quiet.status()["ok"]
