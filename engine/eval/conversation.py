"""The interactive kiosk's latencies, measured on running engines (wall clock, virtual output, the bundled avatar):

    chunk -> mouth       a speech stream's first chunk sent -> the first presented frame whose jaw opens for it
    text -> audio        `say text=` sent -> the first sample of its speech played
    question -> answer   the end of a recorded visitor's question -> the first sample of the spoken answer
    interrupt -> silence `stop` sent -> the last sample played; and a visitor starting to speak over an answer
                         (barge-in) -> the last sample played

A client thread drives each engine over its control socket, as another process would, while a probe system notes
every frame: its wall time, its clock, the avatar's jawOpen and how much sound had been played. Played samples sit
on the engine clock (sample i plays at i / rate), and each frame says which wall time its clock reading was, so
sounds and sends are compared on one wall clock. The recorded questions are spoken by espeak-ng in a voice none of
the engine's models was made with; the listening path hears them exactly as it would a microphone.
"""
from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.listening import Listening
from engine.audio.speak import SpeechSettings, SpeechSynthesizer
from engine.audio.sources import decode_file
from engine.audio.tap import AudioTap
from engine.display.headless import FrameWallTime, run_headless
from engine.display.settings import DisplaySettings
from engine.ecs import Stage, World
from engine.motion.components import MotionState
from engine.run import RunOptions, assemble_scene
from engine.scene import SCENES_DIR
from engine.scene.client import ControlClient, wav_bytes
from engine.scene.control import ControlServer
from engine.scene.control_settings import TOKEN_ENV, ControlSettings
from engine.time import Time

RATE = 16000
QUESTION_VOICE = "en-gb-scotland+m6"
"""A voice kept out of every model the engine ships (scripts/make_universal_corpus.sh's held-out voices)."""
QUESTIONS = ("Excuse me, where are the toilets?", "Sorry, how much is a ticket?", "Is there a cafe here?")
TEXTS = ("Hello! Welcome to the museum.", "The cafe is on the second floor.", "Good afternoon.",
         "Tickets are twelve euros.", "Please follow me.")
FIRST_QUESTION_S = 14.0
TOKEN = secrets.token_urlsafe(18)
SILENT = 1e-4
"""Samples below this are silence (the mix is exactly zero between clips)."""


@dataclass
class Frame:
    wall: float
    """perf_counter() when the frame was done (composed and presented)."""
    clock_wall: float
    """perf_counter() at which the frame's clock was read (its Time.elapsed)."""
    elapsed: float
    jaw: float
    played: int
    """Samples played up to this frame (the AudioTap's length)."""


@dataclass
class Probe:
    """Resource: every frame's record."""

    frames: list[Frame] = field(default_factory=list)

    def wall_of(self, engine_s: float) -> float:
        """The wall time (perf_counter) at which the engine clock read `engine_s` (from the latest frames)."""
        offsets = [f.clock_wall - f.elapsed for f in self.frames[-50:]]
        return float(np.median(offsets)) + engine_s


def record_frame(world: World) -> None:
    jaw = np.nan
    for _, state in world.query(MotionState):
        jaw = float(state.blendshapes[list(state.blendshape_names).index("jawOpen")])
        break
    world.resource(Probe).frames.append(Frame(time.perf_counter(), world.resource(FrameWallTime).at,
                                              world.resource(Time).elapsed, jaw, len(world.resource(AudioTap))))


@dataclass(frozen=True)
class Session:
    """One engine run: its frames, everything it played, and what the driver noted."""

    probe: Probe
    played: np.ndarray
    notes: dict[str, Any]
    listening: Any = None


def run_session(scene: Path, avatar: Path | None, size: int, seconds: float,
                driver: Callable[[ControlClient, Probe, dict], None], listen_file: Path | None = None) -> Session:
    """Run `scene` headless in real time for `seconds` while `driver(client, probe, notes)` drives it."""
    options = RunOptions(scene=scene, headless=True, seconds=seconds, avatar=avatar, listen_file=listen_file,
                         watch=False, display=DisplaySettings(size=(size, size), realtime=True),
                         control=ControlSettings(control="127.0.0.1:0"))
    previous = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = TOKEN  # as an operator passes it: the engine takes it, and says nothing of a shell's
    try:
        app = assemble_scene(options)
    finally:
        if previous is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = previous
    app.resource(AudioTap).enabled = True
    probe = Probe()
    app.insert_resource(probe)
    app.add_system(record_frame, Stage.LAST)
    notes: dict[str, Any] = {}

    def drive() -> None:
        while len(probe.frames) < 2:
            time.sleep(0.01)
        address = app.resource(ControlServer).address
        with ControlClient(f"127.0.0.1:{address[1]}", token=TOKEN) as client:
            driver(client, probe, notes)

    thread = threading.Thread(target=drive, name="latency-driver", daemon=True)
    thread.start()
    run_headless(app, seconds=seconds, realtime=True)
    thread.join(timeout=10.0)
    return Session(probe, app.resource(AudioTap).samples().copy(), notes, app.world.get_resource(Listening))


# chunk -> mouth -----------------------------------------------------------------------------------------------------
def speech_sample() -> np.ndarray:
    """1.2 s of the bundled demo speech from its first loud sample on (the stream starts with speech)."""
    clip = decode_file(SCENES_DIR.parent / "assets" / "audio" / "01_welcome.wav", RATE)
    onset = int(np.flatnonzero(np.abs(clip) > 0.1)[0])
    return clip[onset:onset + int(1.2 * RATE)]


def drive_streams(client: ControlClient, probe: Probe, notes: dict, repeats: int, chunk_s: float = 0.04) -> None:
    speech, step = speech_sample(), int(chunk_s * RATE)
    notes["sent"] = []
    time.sleep(3.0)  # the avatar idles: its jaw at rest
    for _ in range(repeats):
        with client.say_stream() as writer:
            start = time.perf_counter()
            notes["sent"].append(start)
            for k, begin in enumerate(range(0, len(speech), step)):
                writer.write(speech[begin:begin + step])
                pause = start + (k + 1) * chunk_s - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
        time.sleep(2.0)


def mouth_latencies(session: Session) -> list[float]:
    """Per stream: the first frame done after the send whose jawOpen rises above the idle jaw before it."""
    frames, out = session.probe.frames, []
    for sent in session.notes["sent"]:
        idle = [f.jaw for f in frames if sent - 1.5 <= f.wall < sent]
        threshold = max(idle) + 0.05
        opened = next((f.wall for f in frames if f.wall >= sent and f.jaw > threshold), None)
        out.append(np.nan if opened is None else opened - sent)
    return out


# text -> audio, interrupt -> silence ---------------------------------------------------------------------------------
def drive_texts(client: ControlClient, probe: Probe, notes: dict, texts: tuple[str, ...]) -> None:
    notes["texts"], notes["stops"] = [], []
    time.sleep(2.0)
    for text in texts:
        notes["texts"].append(time.perf_counter())
        client.say(text=text)
        wait_until_quiet(client)
    long_clip = wav_bytes(np.concatenate([speech_sample()] * 3))
    for _ in texts:
        client.say(long_clip)
        time.sleep(1.0)
        notes["stops"].append(time.perf_counter())
        client.stop()
        wait_until_quiet(client)


def wait_until_quiet(client: ControlClient, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    time.sleep(0.3)
    while any(client.status().get("speaking", {}).values()) and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.5)


def first_sound_after(played: np.ndarray, start: int) -> int | None:
    loud = np.flatnonzero(np.abs(played[start:]) > SILENT)
    return None if len(loud) == 0 else start + int(loud[0])


def last_sound_before_silence(played: np.ndarray, start: int, quiet_s: float = 0.3) -> int:
    """The first sample at or after `start` that begins `quiet_s` of silence."""
    run = int(quiet_s * RATE)
    loud = np.concatenate([[0], np.cumsum(np.abs(played) > SILENT)])  # loud samples before each index
    candidates = np.arange(start, max(start, len(played) - run))
    quiet = np.flatnonzero(loud[candidates + run] == loud[candidates])
    return int(candidates[quiet[0]]) if len(quiet) else len(played)


def sample_at(probe: Probe, wall: float) -> int:
    """The sample playing at wall time `wall`."""
    offset = probe.wall_of(0.0)
    return max(0, int(round((wall - offset) * RATE)))


def text_latencies(session: Session) -> list[float]:
    out = []
    for sent in session.notes["texts"]:
        first = first_sound_after(session.played, sample_at(session.probe, sent))
        out.append(np.nan if first is None else session.probe.wall_of(first / RATE) - sent)
    return out


def stop_latencies(session: Session) -> list[float]:
    out = []
    for sent in session.notes["stops"]:
        silent = last_sound_before_silence(session.played, sample_at(session.probe, sent))
        out.append(session.probe.wall_of(silent / RATE) - sent)
    return out


# question -> answer, barge-in --------------------------------------------------------------------------------------
def spoken(text: str, voice: str = QUESTION_VOICE) -> np.ndarray:
    """`text` said by espeak-ng's `voice` at 150 words a minute, silence trimmed, peak 0.6."""
    speech = SpeechSynthesizer(SpeechSettings(voice=f"espeak:{voice}", speed=150 / 175, peak=0.6)).synthesize(text)
    loud = np.flatnonzero(np.abs(speech) > 0.01)
    return speech[loud[0]:loud[-1] + 1]


def question_track(folder: Path) -> tuple[Path, list[tuple[float, float]]]:
    """The visitor's recording: three questions, the second spoken over the first answer (a barge-in), the third
    after a long quiet; (path, [(start_s, end_s) of each question]). The first comes once the concierge has had time
    to prepare its answers, as it has before its first visitor."""
    starts = (FIRST_QUESTION_S, None, None)
    parts, spans, cursor = [], [], 0.0
    for index, text in enumerate(QUESTIONS):
        speech = spoken(text)
        start = starts[index] if starts[index] is not None else cursor + (2.6 if index == 1 else 9.0)
        parts.append(np.zeros(int(round((start - cursor) * RATE)), np.float32))
        parts.append(speech.astype(np.float32))
        spans.append((start, start + len(speech) / RATE))
        cursor = spans[-1][1]
    parts.append(np.zeros(8 * RATE, np.float32))
    path = folder / "questions.wav"
    path.write_bytes(wav_bytes(np.concatenate(parts)))
    return path, spans


def answer_latencies(session: Session, spans: list[tuple[float, float]]) -> dict[str, list[float]]:
    """Question end -> first answer sample (engine time); the barge-in question's onset -> silence."""
    played, answers, barge = session.played, [], []
    for start, end in spans:
        playing = bool(np.any(np.abs(played[int(start * RATE) - RATE // 2:int(start * RATE)]) > SILENT))
        if playing:
            barge.append(last_sound_before_silence(played, int(start * RATE), quiet_s=0.2) / RATE - start)
        first = first_sound_after(played, int(end * RATE))
        answers.append(np.nan if first is None else first / RATE - end)
    return {"answer": answers, "barge_in": barge}


# the whole measurement ---------------------------------------------------------------------------------------------
def summary(values: list[float]) -> dict[str, Any]:
    finite = np.asarray([v for v in values if np.isfinite(v)], np.float64) * 1000.0
    if not len(finite):
        return {"n": 0, "missed": len(values)}
    return {"n": len(finite), "missed": len(values) - len(finite), "median_ms": round(float(np.median(finite)), 1),
            "min_ms": round(float(finite.min()), 1), "max_ms": round(float(finite.max()), 1),
            "all_ms": [round(float(v), 1) for v in finite]}


GOALS_MS = {"chunk_to_mouth": 150.0, "text_to_audio": 400.0, "question_to_answer": 1000.0,
            "interrupt_to_silence": 80.0, "barge_in_to_silence": 80.0}


def measure_conversation(avatar: Path | None, size: int = 192, repeats: int = 5) -> dict[str, Any]:
    """All five latencies (see the module docstring); each entry has its goal."""
    kiosk, concierge = SCENES_DIR / "kiosk.py", SCENES_DIR / "concierge.py"
    streams = run_session(kiosk, avatar, size, 3.0 + repeats * 3.4 + 1.0,
                          lambda c, p, n: drive_streams(c, p, n, repeats))
    texts = TEXTS[:repeats]
    said = run_session(kiosk, avatar, size, 2.0 + len(texts) * 9.0 + 4.0,
                       lambda c, p, n: drive_texts(c, p, n, texts))
    with tempfile.TemporaryDirectory() as folder:
        track, spans = question_track(Path(folder))
        asked = run_session(concierge, avatar, size, spans[-1][1] + 7.0, lambda c, p, n: None, listen_file=track)
    answered = answer_latencies(asked, spans)
    heard = [{"text": h.text, "recognise_ms": round(1000 * h.transcript.seconds, 1)}
             for h in (asked.listening.heard if asked.listening else ())]
    measured = {"chunk_to_mouth": mouth_latencies(streams), "text_to_audio": text_latencies(said),
                "question_to_answer": answered["answer"], "interrupt_to_silence": stop_latencies(said),
                "barge_in_to_silence": answered["barge_in"]}
    return {name: {**summary(values), "goal_ms": GOALS_MS[name]} for name, values in measured.items()} | {
        "size": size, "question_voice": QUESTION_VOICE, "heard": heard}
