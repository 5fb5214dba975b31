"""Streaming speech over the control socket: heard from the first chunk, under-runs are gaps of silence that lose
nothing, any common rate, cut by stop or an interrupting stream, and every stream ends however its client behaves."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from scene_helpers import TOKEN, constant, wait_until

from engine.audio.playback import AudioPlayback
from engine.audio.speak import SpeechSettings
from engine.audio.speech_stream import SpeechStream, StreamClosed
from engine.audio.tap import AudioTap
from engine.scene import SCENES_DIR
from engine.scene.client import ControlClient, ControlError, pcm16_bytes
from engine.scene.components import Captions
from engine.scene.protocol import ProtocolError
from engine.scene.streams import StreamTable

FRAME = 640  # samples a 25 fps frame plays at 16 kHz


def played(app) -> np.ndarray:
    return app.resource(AudioTap).samples()


def run_frames(app, count: int) -> None:
    for _ in range(count):
        app.update()


def test_a_stream_is_heard_from_its_first_chunk_and_an_underrun_loses_nothing(engine):
    app, _, client = engine
    app.resource(AudioTap).enabled = True
    writer = client.say_stream()
    writer.write(constant(0.1, 0.25))
    run_frames(app, 2)
    assert app.resource(AudioPlayback).busy
    run_frames(app, 12)  # past the chunk and the output delay: the voice waits in silence, still open
    assert client.status()["speaking"] == {"main": True}
    assert writer.write(constant(0.1, 0.5))["underruns"] > 0
    writer.close()
    run_frames(app, 12)
    assert not app.resource(AudioPlayback).busy
    audio = played(app)
    first, second = np.flatnonzero(np.isclose(audio, 0.25, atol=1e-3)), np.flatnonzero(np.isclose(audio, 0.5, atol=1e-3))
    assert len(first) == len(second) == 1600  # every sample of both chunks, none doubled or dropped
    assert first[-1] < second[0] - FRAME  # with a gap of silence between them
    assert np.all(audio[first[-1] + 1:second[0]] == 0.0)


def test_chunks_of_any_rate_and_length_play_at_their_duration(engine):
    app, _, client = engine
    app.resource(AudioTap).enabled = True
    rate = 22050
    tone = 0.4 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate).astype(np.float32)  # 1 s
    with client.say_stream(sample_rate=rate) as speech:
        for start in range(0, rate, 220):  # 10 ms chunks
            speech.write(tone[start:start + 220])
    run_frames(app, 40)
    heard = np.flatnonzero(np.abs(played(app)) > 0.05)
    assert (heard[-1] - heard[0]) / 16000 == pytest.approx(1.0, abs=0.01)


def test_stop_and_an_interrupting_stream_cut_it_and_its_next_chunk_says_so(engine):
    app, _, client = engine
    first = client.say_stream()
    first.write(constant(2.0, 0.3))
    run_frames(app, 2)
    second = client.say_stream(interrupt=True)
    second.write(constant(0.2, 0.6))
    run_frames(app, 1)
    with pytest.raises(ControlError, match="cut"):
        first.write(constant(0.1, 0.3))
    client.stop()
    run_frames(app, 1)
    assert not app.resource(AudioPlayback).busy
    with pytest.raises(ControlError, match="cut"):
        second.write(constant(0.1, 0.6))


def test_pieces_of_text_caption_the_speech_as_each_is_heard(engine):
    app, _, client = engine
    client.say_stream([(constant(0.4, 0.3), "Hello there."), (constant(0.4, 0.3), "How can I help?")])
    seen = []
    for _ in range(40):
        app.update()
        slot = app.resource(Captions).slots.get("main")
        if slot is not None and slot.text and (not seen or seen[-1] != slot.text):
            seen.append(slot.text)
    assert seen == ["Hello there.", "How can I help?"]


@pytest.mark.parametrize("fields, error", [
    ({"format": "u8"}, "format 'u8'"),
    ({"rate": 100}, "rate 100 Hz"),
    ({"rate": 10_000_000}, "rate 10000000 Hz"),
])
def test_a_bad_stream_start_is_refused(engine, fields, error):
    _, _, client = engine
    with pytest.raises(ControlError, match=error):
        client.request("stream_start", **fields)


def test_bad_chunks_are_refused_and_the_stream_goes_on(engine):
    app, _, client = engine
    stream_id = client.request("stream_start", format="f32")["stream"]
    with pytest.raises(ControlError, match="whole number of 4-byte samples"):
        client.request("stream_audio", stream=stream_id, pcm=b"\x00" * 6)
    with pytest.raises(ControlError, match="NaN"):
        client.request("stream_audio", stream=stream_id, pcm=np.array([0.1, np.nan], "<f4").tobytes())
    with pytest.raises(ControlError, match="no open stream 99"):
        client.request("stream_audio", stream=99, pcm=b"")
    assert client.request("stream_audio", stream=stream_id, pcm=np.full(160, 0.2, "<f4").tobytes())["ok"]


def test_a_stream_belongs_to_its_connection_and_ends_when_that_closes(engine):
    app, server, client = engine
    other = ControlClient(f"127.0.0.1:{server.address[1]}", token=TOKEN)
    writer = other.say_stream()
    writer.write(constant(0.2, 0.3))
    with pytest.raises(ControlError, match=f"no open stream {writer.stream_id} on this connection"):
        client.request("stream_audio", stream=writer.stream_id, pcm=pcm16_bytes(constant(0.1, 0.3)))
    other.close()
    wait_until(lambda: len(server.streams) == 0)
    run_frames(app, 15)
    assert not app.resource(AudioPlayback).busy  # what had arrived played out, then the stream finished


def test_streams_open_per_connection_are_bounded(engine):
    _, _, client = engine
    for _ in range(4):
        client.request("stream_start")
    with pytest.raises(ControlError, match="busy: 4 streams open on this connection"):
        client.request("stream_start")


def test_a_stream_nobody_feeds_is_ended_and_forgotten():
    table = StreamTable(idle_s=5.0)
    stream_id, stream = table.open(None, 16000, "s16")
    table.append(None, stream_id, pcm16_bytes(constant(0.1, 0.2)))
    assert table.expire(now=1e12) == 1 and len(table) == 0
    assert stream.ended and stream.buffered == 1600
    with pytest.raises(ProtocolError, match="no open stream"):
        table.append(None, stream_id, b"")


def test_waiting_speech_in_one_stream_is_bounded():
    table = StreamTable(max_buffered_s=1.0)
    stream_id, _ = table.open(None, 16000, "s16")
    table.append(None, stream_id, pcm16_bytes(constant(0.8, 0.2)))
    with pytest.raises(ProtocolError, match="busy: the stream would hold 1.1 s"):
        table.append(None, stream_id, pcm16_bytes(constant(0.3, 0.2)))


def test_a_speech_stream_reads_in_order_and_counts_underruns():
    stream = SpeechStream()
    stream.append(np.arange(5, dtype=np.float32), text="one")
    stream.append(np.arange(5, 8, dtype=np.float32), text="two")
    assert stream.read(3).tolist() == [0, 1, 2] and stream.text_at(4) == "one" and stream.text_at(6) == "two"
    assert stream.read(10).tolist() == [3, 4, 5, 6, 7] and stream.underruns == 1 and not stream.finished
    stream.end()
    assert stream.read(4).tolist() == [] and stream.finished and stream.underruns == 1
    with pytest.raises(StreamClosed):
        stream.append(np.zeros(3, np.float32))


def test_say_with_text_only_speaks_it_sentence_by_sentence_with_each_captioned(engine):
    app, _, client = engine
    app.insert_resource(SpeechSettings(voice="espeak"))  # the Piper voice is tested in tests/audio/test_speak.py
    app.resource(AudioTap).enabled = True
    assert client.say(text="Hello there. The cafe is upstairs.")["ok"]
    seen = []
    for _ in range(150):
        app.update()
        slot = app.resource(Captions).slots.get("main")
        if slot is not None and slot.text and (not seen or seen[-1] != slot.text):
            seen.append(slot.text)
    assert seen == ["Hello there.", "The cafe is upstairs."]
    assert np.abs(played(app)).max() > 0.3 and not app.resource(AudioPlayback).busy


def test_say_with_empty_text_and_no_audio_is_refused(engine):
    _, _, client = engine
    with pytest.raises(ControlError, match="exactly one of 'wav'"):
        client.say(text="   ")


@pytest.mark.slow
def test_a_tts_pipeline_in_another_process_is_heard_before_it_has_sent_the_sentence(engine):
    """scripts/say_stream.py streams a sentence at the pace of speech; the engine plays its first chunk while the
    rest of the sentence is still to come."""
    app, server, _ = engine
    app.resource(AudioTap).enabled = True
    sentence = "This sentence is streamed to the kiosk in small pieces while it is being spoken."
    pipeline = subprocess.Popen(
        [sys.executable, str(SCENES_DIR.parent / "scripts" / "say_stream.py"), sentence, "--voice", "espeak",
         "--control", f"127.0.0.1:{server.address[1]}", "--token", TOKEN], stdout=subprocess.PIPE, text=True)
    heard_at, deadline = None, time.time() + 60.0
    while pipeline.poll() is None or heard_at is None:
        app.update()  # about real time: the stepped clock plays 40 ms a frame
        if heard_at is None and np.any(np.abs(played(app)) > 1e-3):
            heard_at = time.time()
        time.sleep(0.04)
        assert time.time() < deadline, "the pipeline did not finish"
    sent = [json.loads(line) for line in pipeline.stdout.read().splitlines()]
    assert pipeline.returncode == 0 and len(sent) > 20
    assert sent[0]["sent"] < heard_at < sent[-1]["sent"] - 1.0  # heard with more than a second still to send

