"""Soak the kiosk: a headless real-time `syncanim run scenes/kiosk.py` fed espeak-ng speech over its control socket
every few seconds (random texts, voices and intervals, sometimes interrupting, sometimes asking `status`), its memory
sampled every 5 s, and audio/video drift measured in the recording at the end.

    python scripts/soak_kiosk.py --minutes 30 --out-dir out/soak30
    python scripts/soak_kiosk.py --minutes 5 --avatar /tmp/soakav --size 128x128 --out-dir out/soak_avatar
    python scripts/soak_kiosk.py --minutes 30 --stream --out-dir out/soak_stream   # speech streams, not clips
    python scripts/soak_kiosk.py --out-dir out/soak30 --analyse-only     # measure a finished soak again

Writes OUT_DIR/soak.json (every sample, message and marker), OUT_DIR/soak.png (memory over time with the warm-up
marked, and the marker offsets), OUT_DIR/kiosk.mp4 and OUT_DIR/engine.log; prints the memory growth after warm-up
and the drift, the frame times and the fuzzing's count (--fuzz). Needs espeak-ng (apt install espeak-ng). With an
avatar the engine renders all the time: other work on the machine shows in its frame times.

Memory: the engine's resident set (VmRSS from /proc/PID/status, no psutil) every `sample_s`; growth after warm-up is
the median of the last minute against the median of the first minute after warm-up. Frame times: the engine's
`status` every `sample_s` gives the work of its last 300 frames (p50, p99, max); the report keeps each window.
Drift: the recording's stream lengths (PyAV), and the offset between known markers heard and seen: every
`marker_every_s` an interrupting `say` of a 1 kHz tone with the caption MARKER_TEXT; its sound onset is found in the
audio track and its caption onset in the frames, each by its timestamp. A kiosk that keeps sound and picture together gives offsets in [0, 1 frame) (the
caption shows for the frame in which its speech starts) from the first marker to the last.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from engine.display.settings import Size  # noqa: E402
from engine.scene.control_settings import TOKEN_ENV  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KIOSK = ROOT / "scenes" / "kiosk.py"
MARKER_TEXT = "MARKER MARKER MARKER"
MARKER_HZ = 1000.0
MARKER_S = 0.4
SENTENCES = (
    "Welcome to the museum.", "The east wing is closed today for restoration.",
    "Our guided tour starts at eleven o'clock.", "Please do not touch the paintings.",
    "The cafe on the second floor serves lunch until three.", "Lockers are next to the main entrance.",
    "Tickets for the planetarium are sold at the information desk.", "Photography without flash is allowed.",
    "The gift shop has postcards of every painting in this room.", "Children under twelve enter for free.",
    "Thank you for visiting, and have a lovely afternoon.", "Hello!", "One moment, please.",
    "The next talk, about the history of the harbour, begins in ten minutes in the lecture hall downstairs.",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-029")


@dataclass(frozen=True)
class SoakOptions:
    """Soak a headless real-time kiosk fed by its control socket; write soak.json and soak.png."""

    minutes: float = 30.0
    """How long the kiosk runs (engine time, which follows the wall clock)."""
    port: int = 7979
    """Control port on 127.0.0.1 (must be free)."""
    out_dir: Path = Path("out/soak")
    """Where kiosk.mp4, engine.log, soak.json and soak.png go."""
    avatar: Path | None = None
    """An avatar folder for the kiosk (--avatar); default: the kiosk's own (captions only when none is trained)."""
    size: Size | None = None
    """Canvas size (--size WxH); default: the engine's."""
    seed: int = 0
    """Seeds the texts, voices, intervals and interrupts."""
    interval_s: tuple[float, float] = (2.0, 6.0)
    """A message every uniform(min, max) seconds."""
    interrupt_p: float = 0.15
    """Chance that a `say` interrupts what is being said."""
    status_p: float = 0.25
    """Chance that a round also asks for `status`."""
    marker_every_s: float = 30.0
    """Seconds between drift markers (a tone with a caption, interrupting)."""
    sample_s: float = 5.0
    """Seconds between memory samples."""
    warmup_s: float | None = None
    """Memory growth is measured from here on (default: a fifth of the run, at least 60 s and at most 300 s)."""
    engine_args: tuple[str, ...] = ()
    """More options for `syncanim run` (e.g. --fps 20)."""
    stream: bool = False
    """Stream the speech (and the markers) with speech streams instead of whole `say` clips: chunks of 10-100 ms
    sent a little faster than real time, as a TTS pipeline sends them, now and then stalling mid-sentence (an
    under-run)."""
    fuzz: bool = False
    """Fuzz the control socket beside the soak: `scripts/fuzz_control.py --gentle` campaigns of fuzz_messages
    back to back (slow and idle clients without the token included), their output in OUT_DIR/fuzz.log."""
    fuzz_messages: int = 2000
    """Messages per fuzz campaign."""
    analyse_only: bool = False
    """Run no engine: measure OUT_DIR's kiosk.mp4 and memory samples again from its soak.json."""


@dataclass
class Sample:
    t_s: float
    """Seconds since the engine process started."""
    rss_mb: float
    hwm_mb: float
    children_mb: float
    """Resident memory of its child processes (the h264 encoder)."""
    threads: int


@dataclass
class FrameTimes:
    t_s: float
    """Seconds since the engine process started."""
    frame: int
    p50: float
    p99: float
    max: float
    """Work of the engine's last `frames` frames (ms), from its `status`."""
    frames: int


@dataclass
class Sent:
    t_s: float
    kind: str
    engine_s: float | None = None
    """Engine time from the `status` asked just before (markers)."""
    interrupt: bool = False
    text: str = ""
    ok: bool = True
    error: str = ""


@dataclass
class SoakRun:
    command: list[str]
    samples: list[Sample] = field(default_factory=list)
    frame_times: list[FrameTimes] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    engine_rc: int | None = None
    engine_tail: str = ""
    socket_s: float = 0.0
    """Seconds after the process started that its control socket opened (startup done)."""


# -- the engine process --------------------------------------------------------------------------------------------
def engine_command(options: SoakOptions, out: Path) -> list[str]:
    seconds = options.minutes * 60.0
    command = [sys.executable, "-m", "engine", "run", str(KIOSK), "--headless", "--realtime", "--seconds",
               f"{seconds:g}", "--out", str(out), "--control", f"127.0.0.1:{options.port}"]
    if options.avatar is not None:
        command += ["--avatar", str(options.avatar)]
    if options.size is not None:
        command += ["--size", f"{options.size[0]}x{options.size[1]}"]
    return command + list(options.engine_args)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads of a process from /proc/PID/status; {} once it has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            found[key] = int(value.split()[0])
    return found


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc/*/stat: its 4th field is the parent)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def sample_memory(pid: int, start: float, every_s: float, samples: list[Sample], stop: threading.Event) -> None:
    while not stop.is_set():
        status = proc_status(pid)
        if not status:
            return
        children = sum(proc_status(child).get("VmRSS", 0) for child in child_pids(pid))
        samples.append(Sample(round(time.monotonic() - start, 2), status.get("VmRSS", 0) / 1024,
                              status.get("VmHWM", 0) / 1024, children / 1024, status.get("Threads", 0)))
        stop.wait(every_s)


def sample_frame_times(options: SoakOptions, token: str, start: float, times: list[FrameTimes],
                       stop: threading.Event) -> None:
    """The engine's recent frame times from `status`, every `sample_s` on one connection (a refused or lost one is
    opened again: the sampling must not end the soak)."""
    from engine.scene.client import ControlClient

    client = None
    while not stop.wait(options.sample_s):
        try:
            client = client or ControlClient(f"127.0.0.1:{options.port}", token=token, timeout=30.0)
            status = client.status()
        except Exception:  # noqa: BLE001 (a busy or closing engine: try again at the next sample)
            if client is not None:
                client.close()
            client = None
            continue
        recent = status.get("frame_ms") or {}
        if recent:
            times.append(FrameTimes(round(time.monotonic() - start, 2), int(status["frame"]), recent["p50"],
                                    recent["p99"], recent["max"], recent["frames"]))
    if client is not None:
        client.close()


def frame_time_summary(times: list[FrameTimes], fps: float) -> dict[str, Any]:
    """The frame-time windows after the start-up: the median and the worst p99, the longest frame, and how many
    windows had a p99 over the frame's budget (1/fps)."""
    steady = [t for t in times if t.frame >= 250]  # the first 10 s compile kernels and fill caches
    if not steady:
        return {"windows": 0}
    p99 = np.array([t.p99 for t in steady])
    budget = 1e3 / fps
    return {"windows": len(steady), "window_frames": max(t.frames for t in steady), "budget_ms": round(budget, 2),
            "p50_median_ms": round(float(np.median([t.p50 for t in steady])), 2),
            "p99_median_ms": round(float(np.median(p99)), 2), "p99_worst_ms": round(float(p99.max()), 2),
            "max_ms": round(max(t.max for t in steady), 2),
            "windows_p99_over_budget": int(np.sum(p99 > budget))}


def wait_for_socket(port: int, process: subprocess.Popen, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the engine exited with {process.returncode} before opening its control socket")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the engine did not open 127.0.0.1:{port} within {timeout_s:.0f} s")


# -- what is sent -------------------------------------------------------------------------------------------------
def espeak(text: str, voice: str) -> bytes:
    result = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", "165", text], capture_output=True)
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"espeak-ng failed: {result.stderr.decode(errors='replace')[-300:]}")
    return result.stdout


def marker_tone(rate: int = 16000) -> np.ndarray:
    t = np.arange(round(MARKER_S * rate)) / rate
    ramp = np.minimum(1.0, np.minimum(t, MARKER_S - t) / 0.002)  # 2 ms ramps: no click, a sharp onset
    return (0.6 * ramp * np.sin(2 * np.pi * MARKER_HZ * t)).astype(np.float32)


def feed(options: SoakOptions, token: str, run: SoakRun, start: float, process: subprocess.Popen,
         stop: threading.Event) -> None:
    """Send the kiosk messages until it exits: say (espeak-ng, sometimes interrupting), status, and markers."""
    from engine.scene.client import ControlClient, wav_bytes
    from engine.scene.control import decode_bytes

    rng = random.Random(options.seed)
    address = f"127.0.0.1:{options.port}"
    end = start + options.minutes * 60.0
    next_marker = start + 30.0  # after the start-up's first, unsteady frames
    marker = wav_bytes(marker_tone())
    while not stop.is_set() and process.poll() is None and time.monotonic() < end - 2.0:
        now = time.monotonic()
        record: Sent | None = None
        try:
            # A connection per round, as a TTS pipeline would: connections come and go all run long.
            with ControlClient(address, token=token, timeout=30.0) as client:
                if now >= next_marker:
                    engine_s = float(client.status()["time_s"])
                    record = Sent(now - start, "marker", engine_s, True, MARKER_TEXT)
                    if options.stream:
                        stream_speech(client, marker_tone(), MARKER_TEXT, True, rng, stalls=False)
                    else:
                        client.say(marker, interrupt=True, text=MARKER_TEXT)
                    next_marker = now + options.marker_every_s
                else:
                    text = " ".join(rng.sample(SENTENCES, rng.choice((1, 1, 2))))
                    interrupt = rng.random() < options.interrupt_p
                    record = Sent(now - start, "stream" if options.stream else "say", None, interrupt, text)
                    speech = espeak(text, rng.choice(VOICES))
                    if options.stream:
                        stream_speech(client, decode_bytes(speech, 16000), text, interrupt, rng)
                    else:
                        client.say(speech, interrupt=interrupt, text=text)
                    if rng.random() < options.status_p:
                        client.status()
                        run.sent.append(Sent(time.monotonic() - start, "status"))
        except Exception as error:  # noqa: BLE001 (recorded: a refused or failed message is a finding)
            if record is None:
                record = Sent(now - start, "connect")
            record.ok, record.error = False, f"{type(error).__name__}: {error}"
        if record is not None:
            run.sent.append(record)
        stop.wait(rng.uniform(*options.interval_s))


def stream_speech(client: Any, samples: np.ndarray, text: str, interrupt: bool, rng: random.Random,
                  stalls: bool = True) -> None:
    """Send `samples` as a speech stream: chunks of 10-100 ms at 1.25x real time, one stall of 0.3 s in a fifth of
    the streams (the voice under-runs and resumes)."""
    stall_at = rng.uniform(0.3, 0.7) * len(samples) if stalls and rng.random() < 0.2 else None
    with client.say_stream(interrupt=interrupt, text=text) as speech:
        begin, sent = time.monotonic(), 0
        while sent < len(samples):
            size = int(rng.uniform(0.01, 0.1) * 16000)
            speech.write(samples[sent:sent + size])
            sent += size
            if stall_at is not None and sent >= stall_at:
                time.sleep(0.3)
                stall_at, begin = None, begin + 0.3
            pause = begin + sent / 16000 / 1.25 - time.monotonic()
            if pause > 0:
                time.sleep(pause)


# -- measuring the recording --------------------------------------------------------------------------------------
def caption_signal(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Per frame: its time (s) and the share of near-white pixels in the bottom fifth (caption letters: luma over
    200, read from the decoded Y plane without a colour conversion); the fps."""
    import av

    times, whites = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate)
        for frame in container.decode(stream):
            plane = frame.planes[0]  # Y of yuv420p, rows padded to line_size
            luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
            whites.append(float((luma[plane.height * 4 // 5:] > 200).mean()))
            times.append(float(frame.pts * frame.time_base))
    return np.asarray(times), np.asarray(whites), fps


def audio_track(path: Path) -> tuple[float, np.ndarray, int]:
    """(time of the first sample, mono float32 samples, rate) of the recording's audio."""
    import av

    parts, first = [], None
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        for frame in container.decode(stream):
            if first is None:
                first = float(frame.pts * frame.time_base)
            parts.append(frame.to_ndarray().mean(axis=0).astype(np.float32))
    return first or 0.0, np.concatenate(parts) if parts else np.zeros(0, np.float32), rate


def stream_lengths(path: Path) -> dict[str, float]:
    """Frames, fps and the stream durations (container metadata and decoded) of the recording."""
    import av

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        meta = {
            "video_stream_s": float(video.duration * video.time_base) if video.duration else None,
            "audio_stream_s": float(audio.duration * audio.time_base) if audio.duration else None,
        }
    return meta


def tone_onset(audio: np.ndarray, rate: int, lo: int, hi: int) -> int | None:
    """First sample in [lo, hi) where the marker tone starts: 5 ms windows whose energy is mostly at MARKER_HZ."""
    lo, hi = max(0, lo), min(len(audio), hi)
    win = rate // 200
    segment = audio[lo:hi]
    n = len(segment) // win
    if n < 2:
        return None
    blocks = segment[:n * win].reshape(n, win).astype(np.float64)
    t = np.arange(win) / rate
    c, s = np.cos(2 * np.pi * MARKER_HZ * t), np.sin(2 * np.pi * MARKER_HZ * t)
    tonal = 2 * (np.square(blocks @ c) + np.square(blocks @ s)) / win**2  # power at the tone's frequency
    power = np.mean(np.square(blocks), axis=1) + 1e-12
    tone = (tonal / power > 0.7) & (power > 0.02)
    held = 8  # 40 ms of tone in a row: a vowel's formant near 1 kHz does not hold that pure that long
    runs = np.convolve(tone.astype(int), np.ones(held, int), "valid") == held
    hits = np.flatnonzero(runs)
    if not len(hits):
        return None
    first = lo + hits[0] * win
    # Refine to the first sample of the tone: scan back within the window before it for where sound starts.
    back = audio[max(lo, first - win):first + win]
    loud = np.flatnonzero(np.abs(back) > 0.05)
    return max(lo, first - win) + int(loud[0]) if len(loud) else first


def caption_onset(times: np.ndarray, whites: np.ndarray, t0: float, heard: float) -> float | None:
    """Time of the frame where the marker's caption appears: after the quietest frame between the message (t0) and
    its sound (the interrupt hides the caption before it until the sound starts), the first frame at least halfway
    from that level to the level shown while the marker is heard."""
    gap = np.flatnonzero((times >= t0) & (times <= heard))
    shown = np.flatnonzero((times >= heard + 0.1) & (times <= heard + 0.3))
    if not len(gap) or not len(shown):
        return None
    low_at = gap[np.argmin(whites[gap])]
    low, high = float(whites[low_at]), float(np.median(whites[shown]))
    if high - low < 0.002:
        return None
    threshold = low + 0.5 * (high - low)
    for i in range(low_at, shown[-1] + 1):
        if whites[i] >= threshold:
            return float(times[i])
    return None


def measure_markers(path: Path, markers: list[Sent]) -> list[dict[str, Any]]:
    """For each marker: when it was heard and when its caption was seen in the recording, and the difference."""
    times, whites, fps = caption_signal(path)
    start, audio, rate = audio_track(path)
    found = []
    for marker in markers:
        if marker.engine_s is None or not marker.ok:
            continue
        t0 = marker.engine_s
        onset = tone_onset(audio, rate, round((t0 - start) * rate), round((t0 + 3.0 - start) * rate))
        heard = None if onset is None else start + onset / rate
        seen = None if heard is None else caption_onset(times, whites, t0, heard)
        found.append({
            "sent_engine_s": round(t0, 4), "heard_s": None if heard is None else round(heard, 4),
            "seen_s": seen, "offset_ms": None if heard is None or seen is None else round((heard - seen) * 1e3, 2),
        })
    return found


# -- the report ---------------------------------------------------------------------------------------------------
def memory_growth(samples: list[Sample], warmup_s: float, end_s: float | None = None) -> dict[str, Any]:
    """RSS after warm-up: the median of the first minute after it against the median of the last minute before
    `end_s` (when the run ended and the engine began saving)."""
    after = [s for s in samples if s.t_s >= warmup_s and (end_s is None or s.t_s <= end_s)]
    if len(after) < 4:
        return {"growth_pct": None, "reason": f"only {len(after)} samples after the warm-up"}
    window = max(2, int(60 / max(1e-9, after[1].t_s - after[0].t_s)))
    first = float(np.median([s.rss_mb for s in after[:window]]))
    last = float(np.median([s.rss_mb for s in after[-window:]]))
    peak = max(s.rss_mb for s in after)
    return {"baseline_mb": round(first, 2), "end_mb": round(last, 2), "peak_after_warmup_mb": round(peak, 2),
            "growth_pct": round(100 * (last - first) / first, 3),
            "peak_growth_pct": round(100 * (peak - first) / first, 3),
            "window_samples": window}


def drift_summary(markers: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    """Two views of each marker, both from the recording's own timestamps.

    offset (sound - caption): the caption shows for the frame whose sound contains the marker's onset, so with sound
    and picture together it lies in [0, 1 frame] (plus a millisecond of measuring); a frame of drift would push it out.
    phase (sound onset - the nearest frame start): the kiosk starts a clip at a frame boundary (audio is played frame
    by frame), so the phase stays put while the audio track keeps step with the video; drift moves it. Its trend over
    the run (a Theil-Sen line, and the median of the last quarter of the markers against the first) is the drift. A
    marker applied in a frame that started late begins off the grid by that lateness: counted, not drift.
    """
    measured = [m for m in markers if m["offset_ms"] is not None]
    if not measured:
        return {"markers_measured": 0, "markers_sent": len(markers)}
    frame_ms = 1e3 / fps
    t = np.array([m["sent_engine_s"] for m in measured])
    offset = np.array([m["offset_ms"] for m in measured])
    heard = np.array([m["heard_s"] for m in measured])
    phase = (heard - np.round(heard * fps) / fps) * 1e3
    quarter = max(1, len(phase) // 4)
    slope = theil_sen_slope(t, phase) if len(t) >= 3 else 0.0
    fitted = slope * float(t[-1] - t[0]) if len(t) >= 3 else None
    residual = phase - slope * t
    off_grid = int(np.sum(np.abs(residual - np.median(residual)) > 2.0))
    return {
        "markers_measured": len(measured), "markers_sent": len(markers), "frame_ms": round(frame_ms, 2),
        "offset_ms_min": round(float(offset.min()), 2), "offset_ms_max": round(float(offset.max()), 2),
        "offset_ms_mean": round(float(offset.mean()), 2),
        "within_one_frame": bool(np.all((offset > -1.0) & (offset < frame_ms + 1.0))),
        "phase_ms_min": round(float(phase.min()), 2), "phase_ms_max": round(float(phase.max()), 2),
        "phase_ms_std": round(float(phase.std()), 3),
        "drift_ms_fit": None if fitted is None else round(fitted, 3),
        "drift_ms_quarters": round(float(np.median(phase[-quarter:]) - np.median(phase[:quarter])), 3),
        "markers_off_grid": off_grid,
    }


def theil_sen_slope(x: np.ndarray, y: np.ndarray) -> float:
    """The median of the slopes between every two points: a trend that one late frame (a marker applied off the
    frame grid) does not bend."""
    i, j = np.triu_indices(len(x), 1)
    keep = x[j] != x[i]
    return float(np.median((y[j] - y[i])[keep] / (x[j] - x[i])[keep])) if keep.any() else 0.0


def plot(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples = report["memory"]["samples"]
    figure = Figure(figsize=(9, 8.5), dpi=100)
    FigureCanvasAgg(figure)
    top, bottom, frames = figure.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1, 1]})
    t = np.array([s["t_s"] for s in samples]) / 60
    top.plot(t, [s["rss_mb"] for s in samples], label="engine RSS")
    top.plot(t, [s["rss_mb"] + s["children_mb"] for s in samples], ":", label="engine + encoder RSS")
    warm = report["memory"]["warmup_s"] / 60
    top.axvspan(0, warm, color="0.85", label=f"warm-up ({warm:.1f} min)")
    growth = report["memory"]["growth"].get("growth_pct")
    top.set_title(f"kiosk soak, {report['options']['minutes']:g} min: RSS growth after warm-up "
                  f"{'n/a' if growth is None else f'{growth:+.2f} %'}")
    top.set_ylabel("MB")
    top.legend(loc="lower right")
    top.grid(alpha=0.3)
    markers = [m for m in report["drift"]["markers"] if m["offset_ms"] is not None]
    frame_ms = report["drift"]["summary"].get("frame_ms", 40.0)
    minutes = [m["sent_engine_s"] / 60 for m in markers]
    bottom.plot(minutes, [m["offset_ms"] for m in markers], "o", ms=3, label="sound - caption")
    heard = np.array([m["heard_s"] for m in markers], float)
    phase = (heard - np.round(heard * 1e3 / frame_ms) * frame_ms / 1e3) * 1e3
    bottom.plot(minutes, phase, "-", color="tab:red", label="sound onset - nearest frame start (drift)")
    bottom.axhspan(0, frame_ms, color="tab:green", alpha=0.12, label="one frame")
    bottom.set_ylabel("ms")
    bottom.legend(loc="center right", fontsize=8)
    bottom.grid(alpha=0.3)
    windows = report.get("frame_times", {}).get("windows", [])
    t = np.array([w["t_s"] for w in windows]) / 60
    for key, style in (("p50", "-"), ("p99", "-"), ("max", ":")):
        frames.plot(t, [w[key] for w in windows], style, label=f"frame work {key} (each over the frames before)")
    frames.axhline(frame_ms, color="tab:green", lw=1, label="budget (one frame)")
    frames.set_yscale("log")  # start-up frames take seconds, steady ones tens of ms
    frames.set_ylabel("ms")
    frames.set_xlabel("minutes (memory, frame times: since the engine process started; markers: engine time, from "
                      "its first frame)")
    frames.legend(loc="upper right", fontsize=8)
    frames.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def run_soak(options: SoakOptions) -> dict[str, Any]:
    """Run the soak; returns the report written to out_dir/soak.json (and its plot, soak.png)."""
    import secrets

    if shutil.which("espeak-ng") is None:
        raise RuntimeError("the soak speaks with espeak-ng; install it (apt install espeak-ng)")
    out_dir = options.out_dir.expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(18)
    mp4 = out_dir / "kiosk.mp4"
    run = SoakRun(engine_command(options, mp4))
    seconds = options.minutes * 60.0
    warmup_s = options.warmup_s if options.warmup_s is not None else min(300.0, max(60.0, seconds / 5))
    print("engine:", " ".join(run.command), flush=True)
    log = open(out_dir / "engine.log", "w")  # noqa: SIM115 (the engine writes to it while it runs)
    start = time.monotonic()
    # the token travels in the environment: a command line is visible to every local user
    process = subprocess.Popen(run.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, TOKEN_ENV: token})
    stop = threading.Event()
    fuzzed: list[int] = []  # exit status of each fuzz campaign
    sampler = threading.Thread(target=sample_memory, args=(process.pid, start, options.sample_s, run.samples, stop),
                               daemon=True)
    sampler.start()
    timer = threading.Thread(target=sample_frame_times, args=(options, token, start, run.frame_times, stop),
                             daemon=True)
    try:
        wait_for_socket(options.port, process)
        run.socket_s = time.monotonic() - start  # the first frame follows at once: engine time 0 is about here
        timer.start()
        fuzzer = threading.Thread(target=fuzz_beside, args=(options, token, process, out_dir, fuzzed, stop),
                                  daemon=True)
        if options.fuzz:
            fuzzer.start()
        feed(options, token, run, start, process, stop)
        run.engine_rc = process.wait(timeout=seconds + 600)
    finally:
        stop.set()
        if fuzzer.is_alive():
            fuzzer.join(timeout=120)
        if process.poll() is None:
            process.terminate()  # SIGTERM: the engine saves what it recorded
            run.engine_rc = process.wait(timeout=120)
        sampler.join(timeout=10)
        if timer.is_alive():
            timer.join(timeout=40)
        log.close()
    wall_s = time.monotonic() - start
    engine_log = (out_dir / "engine.log").read_text(errors="replace")
    run.engine_tail = "\n".join(line for line in engine_log.splitlines()[-6:])
    report: dict[str, Any] = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "command": " ".join(run.command), "engine_rc": run.engine_rc,
        "wall_s": round(wall_s, 1), "engine_tail": run.engine_tail,
        "messages": {kind: sum(1 for s in run.sent if s.kind == kind)
                     for kind in ("say", "stream", "marker", "status")},
        "failed_messages": [asdict(s) for s in run.sent if not s.ok][:20],
        "interrupts": sum(1 for s in run.sent if s.kind in ("say", "stream") and s.interrupt),
        "startup_s": round(run.socket_s, 2),
        "fuzz": {"campaigns": len(fuzzed), "messages": len(fuzzed) * options.fuzz_messages,
                 "failed_campaigns": sum(1 for rc in fuzzed if rc != 0), "log": "fuzz.log"} if options.fuzz else None,
        "memory": {"warmup_s": warmup_s, "samples": [asdict(s) for s in run.samples],
                   "growth": memory_growth(run.samples, warmup_s, run.socket_s + seconds)},
        "frame_times": {"windows": [asdict(t) for t in run.frame_times]},
    }
    report["sent"] = [asdict(s) for s in run.sent]
    measure_recording(report, mp4, [s for s in run.sent if s.kind == "marker"])
    (out_dir / "soak.json").write_text(json.dumps(report, indent=1))
    plot(report, out_dir / "soak.png")
    return report


def fuzz_beside(options: SoakOptions, token: str, process: subprocess.Popen, out_dir: Path, fuzzed: list[int],
                stop: threading.Event) -> None:
    """Run gentle fuzz campaigns against the soaked engine until the soak ends; each exit status goes to `fuzzed`
    (1: the campaign saw a crash or the engine stopped answering). A campaign that meets the engine's planned end
    (it closes its socket, then writes the recording for a minute) is not counted."""
    end = time.monotonic() + options.minutes * 60.0  # started once the socket opened: engine time 0 is about now
    with open(out_dir / "fuzz.log", "w") as log:
        while not stop.is_set() and process.poll() is None and time.monotonic() < end:
            command = [sys.executable, str(ROOT / "scripts" / "fuzz_control.py"), "--address",
                       f"127.0.0.1:{options.port}", "--pid", str(process.pid), "--messages",
                       str(options.fuzz_messages), "--gentle", "--no-bombs", "--starvation", "0", "--no-progress",
                       "--seed", str(len(fuzzed))]
            campaign = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, TOKEN_ENV: token})
            if time.monotonic() < end - 1.0:  # an engine that died before its end counts: the campaign saw it
                fuzzed.append(campaign.returncode)


def measure_recording(report: dict[str, Any], mp4: Path, markers: list[Sent]) -> None:
    """Fill report['recording'] (frames, stream lengths), report['drift'] (markers heard and seen) and the frame
    times' summary from `mp4`."""
    from engine.io.video import probe

    if not mp4.is_file():
        report["recording"] = {"path": str(mp4), "error": "the engine wrote no recording"}
        report["drift"] = {"markers": [], "summary": {"markers_measured": 0, "markers_sent": len(markers)}}
        summarise_frame_times(report, 25.0)
        return
    info = probe(mp4)
    found = measure_markers(mp4, markers)
    report["recording"] = {"path": str(mp4), "frames": info.frames, "fps": info.fps,
                           "video_s": round(info.duration_s, 4), "audio_decoded_s": info.audio_duration_s,
                           "decoded_difference_ms": round(((info.audio_duration_s or 0) - info.duration_s) * 1e3, 2),
                           **stream_lengths(mp4)}
    report["drift"] = {"markers": found, "summary": drift_summary(found, info.fps)}
    summarise_frame_times(report, info.fps)


def summarise_frame_times(report: dict[str, Any], fps: float) -> None:
    if "frame_times" in report:  # soaks before frame times were sampled have none
        windows = [FrameTimes(**t) for t in report["frame_times"]["windows"]]
        report["frame_times"]["summary"] = frame_time_summary(windows, fps)


def analyse_again(out_dir: Path) -> dict[str, Any]:
    """Measure OUT_DIR's recording and memory samples again (after a change to the measuring), from its soak.json."""
    out_dir = out_dir.expanduser().resolve()
    report = json.loads((out_dir / "soak.json").read_text())
    if "sent" in report:
        markers = [Sent(**s) for s in report["sent"] if s["kind"] == "marker"]
    else:
        markers = [Sent(0.0, "marker", m["sent_engine_s"]) for m in report["drift"]["markers"]]
    memory = report["memory"]
    samples = [Sample(**s) for s in memory["samples"]]
    end_s = report.get("startup_s", 0.0) + report["options"]["minutes"] * 60.0
    memory["growth"] = memory_growth(samples, memory["warmup_s"], end_s)
    measure_recording(report, out_dir / "kiosk.mp4", markers)
    (out_dir / "soak.json").write_text(json.dumps(report, indent=1))
    plot(report, out_dir / "soak.png")
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    growth = report["memory"]["growth"]
    drift = report["drift"]["summary"]
    recording = report["recording"]
    lines = [f"engine exit {report['engine_rc']}; {report['messages']} messages, {report['interrupts']} interrupting, "
             f"{len(report['failed_messages'])} failed"]
    if "frames" in recording:
        lines.append(f"recording: {recording['frames']} frames = {recording['video_s']:.2f} s video, audio "
                     f"{recording['audio_decoded_s']:.3f} s decoded (stream durations: video "
                     f"{recording['video_stream_s']} s, audio {recording['audio_stream_s']} s)")
    if growth.get("growth_pct") is not None:
        lines.append(f"RSS growth after warm-up: {growth['growth_pct']:+.2f} % ({growth['baseline_mb']:.1f} -> "
                     f"{growth['end_mb']:.1f} MB; peak {growth['peak_growth_pct']:+.2f} %)")
    else:
        lines.append(f"RSS growth after warm-up: n/a ({growth.get('reason')})")
    if drift.get("markers_measured"):
        fit = "n/a" if drift["drift_ms_fit"] is None else f"{drift['drift_ms_fit']:+.2f} ms"
        lines.append(f"drift over the run: {fit} (fitted), {drift['drift_ms_quarters']:+.2f} ms (last quarter against "
                     f"the first): marker onset - nearest frame start {drift['phase_ms_min']:.2f}.."
                     f"{drift['phase_ms_max']:.2f} ms ({drift['markers_measured']} of {drift['markers_sent']} markers; "
                     f"{drift['markers_off_grid']} applied in a late frame)")
        lines.append(f"sound - caption: {drift['offset_ms_min']:.1f}..{drift['offset_ms_max']:.1f} ms (mean "
                     f"{drift['offset_ms_mean']:.1f}; one frame = {drift['frame_ms']:.0f} ms; within one frame: "
                     f"{drift['within_one_frame']})")
    else:
        lines.append("drift: no marker measured")
    frames = report.get("frame_times", {}).get("summary", {})
    if frames.get("windows"):
        lines.append(f"frame work (windows of {frames['window_frames']} frames, {frames['windows']} sampled): p99 "
                     f"median {frames['p99_median_ms']:.1f} ms, worst {frames['p99_worst_ms']:.1f} ms; p50 median "
                     f"{frames['p50_median_ms']:.1f} ms; longest frame {frames['max_ms']:.1f} ms; budget "
                     f"{frames['budget_ms']:.0f} ms, p99 over it in {frames['windows_p99_over_budget']} windows")
    return lines


__all__ = ["SoakOptions", "analyse_again", "run_soak", "summary_lines", "memory_growth", "drift_summary", "tone_onset",
           "caption_onset", "proc_status", "frame_time_summary"]


def main(options: SoakOptions) -> int:
    report = analyse_again(options.out_dir) if options.analyse_only else run_soak(options)
    for line in summary_lines(report):
        print(line, flush=True)
    print(f"wrote {options.out_dir / 'soak.json'} and {options.out_dir / 'soak.png'}")
    return 0 if report["engine_rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(tyro.cli(SoakOptions)))
