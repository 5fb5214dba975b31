"""Fuzz the control socket as a hostile or careless client would, and measure what it costs the engine.

    syncanim run scenes/kiosk.py --headless --realtime --control 127.0.0.1:7878 --control-token SECRET-TOKEN &
    python scripts/fuzz_control.py --address 127.0.0.1:7878 --token SECRET-TOKEN --pid $! --messages 100000
    python scripts/fuzz_control.py --messages 20000        # starts a headless kiosk of its own and fuzzes that

Messages of every category (random bytes, truncated frames, huge length prefixes, wrong types and tokens, NaN,
unknown types, deep nesting, huge strings and containers, msgpack extensions, say bombs: wavs that declare 1 Hz or
200 channels, flacs whose header hides an hour, the largest clip the limits allow) go out from several connections
while slow clients (one byte every few seconds) and idle ones hold on and reconnect whenever they are closed. At the
end: an authenticated client must still be served, also while --starvation slow clients without the token hold on;
each say bomb alone is measured for the engine's peak memory above idle (needs --pid, or the engine started here).

Prints messages tried, crashes (the engine gone, a reply that never came, a reply that is not a map with `ok`, an
internal error), the replies by outcome, and the engine's peak RSS. Exit status 1 when anything crashed.
tests/scene/test_control_fuzz.py runs the same campaign (10,000 messages) against an in-process engine.
"""
from __future__ import annotations

import io
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from engine.scene.control_settings import parse_address  # noqa: E402
from engine.scene.protocol import HEADER, read_frame  # noqa: E402

REPLY_TIMEOUT_S = 60.0
"""A reply slower than this counts as a hang (a bomb at the limit decodes in a few seconds)."""
CATEGORIES = ("random_bytes", "truncated", "huge_length", "zero_length", "wrong_types", "wrong_token", "nan",
              "unknown_type", "deep_nesting", "huge_strings", "big_containers", "extension", "random_msgpack",
              "mutated", "bomb", "stream", "valid")
WEIGHTS = tuple(0.25 if category == "bomb" else 1.0 for category in CATEGORIES)
"""Bombs a quarter as often as the rest: one at the limits decodes for up to 150 ms, the others take about 1 ms."""


# what to send ----------------------------------------------------------------------------------------------------
@dataclass
class Shot:
    """One message as bytes on the wire, and how the server is expected to take it."""

    category: str
    data: bytes
    fresh: bool = False
    """Send it on a new connection that has not authenticated (it may be closed after)."""
    reply: bool = True
    """The server answers it (False: the frame is cut off and the connection closed by us)."""
    closes: bool = False
    """The server closes the connection after answering (the framing is lost)."""


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def packed(message: object) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def wav_declaring(rate: int, frames: int, channels: int = 1, width: int = 1) -> bytes:
    """A real PCM wav of `frames` silent frames whatever rate and channel count it declares."""
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(width)
        file.setframerate(rate)
        file.writeframes(bytes(frames * channels * width))
    return out.getvalue()


def flac_of_silence(seconds: float, rate: int = 16000, hide_length: bool = False) -> bytes:
    """Silence as flac (it compresses to almost nothing); `hide_length` zeroes the total in STREAMINFO, as a streamed
    flac has it, so only decoding finds out how long it is."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        block = np.zeros((1, rate), np.int16)
        for second in range(int(np.ceil(seconds))):
            frame_ = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame_.sample_rate, frame_.pts = rate, second * rate
            for packet in stream.encode(frame_):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = bytearray(out.getvalue())
    if hide_length:  # after fLaC and the block header: sizes (10 bytes), then rate 20, channels 3, bits 5, total 36
        (bits,) = struct.unpack(">Q", data[18:26])
        data[18:26] = struct.pack(">Q", bits & ~((1 << 36) - 1))
    return bytes(data)


def make_bombs(max_clip_s: float, max_message_bytes: int) -> dict[str, bytes]:
    """Say payloads that cost a careless decoder far more than their size, and the largest honest clip the limits
    allow (a wav filling the message limit, just under the clip limit)."""
    over = max_clip_s + 5.0
    frames = (max_message_bytes - 4096) // 2  # 16-bit mono; the rest of the message is small
    rate = min(384000, max(4000, int(frames / (0.98 * max_clip_s))))
    frames = min(frames, int(rate * 0.98 * max_clip_s))
    return {
        "wav declaring 1 Hz": wav_declaring(1, 4000),
        "wav declaring 2^31 Hz": wav_declaring(2**31 - 1, 4000),
        "wav declaring 200 channels": wav_declaring(16000, 20, channels=200),
        "wav declaring 4 GB": _wav_with_data_size(wav_declaring(16000, 16000, width=2), 0xFFFFFFF0),
        "flac declaring an hour": flac_of_silence(3600, 8000),
        f"flac hiding {over:g} s": flac_of_silence(over, hide_length=True),
        f"flac of {over:g} s at 384 kHz, hidden": flac_of_silence(over, 384000, hide_length=True),
        f"largest honest wav ({frames / rate:.0f} s at {rate} Hz)": wav_declaring(rate, frames, width=2),
    }


def _wav_with_data_size(data: bytes, size: int) -> bytes:
    at = data.index(b"data") + 4
    return data[:at] + struct.pack("<I", size) + data[at + 4:]


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(10 if depth < 3 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 2**63 - 1, -2**63, 2**64 - 1, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, rng.uniform(-10, 10)])
    if kind in (4, 5):
        return "".join(rng.choice("ab \u00e9\u4e2d\U0001f600\x00\n") for _ in range(rng.randrange(12)))
    if kind in (6, 7):
        return rng.randbytes(rng.randrange(16))
    if kind == 8:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_text(rng, 6): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("abcdefgh_") for _ in range(rng.randrange(1, size + 1)))


def deep_body(token: str, depth: int, rng: random.Random) -> bytes:
    """A cue whose data nests `depth` lists (or maps) deep, written as bytes: no Python recursion needed."""
    opener = b"\x91" if rng.random() < 0.5 else b"\x81\xa1k"  # [x] or {"k": x}
    head = packed({"type": "cue", "token": token, "name": "caption"})
    return bytes([head[0] + 1]) + head[1:] + packed("data") + opener * depth + b"\xc0"


class Shots:
    """The campaign's messages: categories drawn in turn with `seed`, so a run can be repeated."""

    def __init__(self, token: str, seed: int, max_message_bytes: int, bombs: dict[str, bytes],
                 gentle: bool = False) -> None:
        self.token = token
        self.gentle = gentle
        self.caption = "fuzz" if gentle else "caption"  # the kiosk shows "caption" cues, over a soak's markers
        self.rng = random.Random(seed)
        self.max_bytes = max_message_bytes
        self.bombs = list(bombs.items())
        self.speech = wav_declaring(16000, 1600, width=2)  # 0.1 s of silence, a valid say

    def __iter__(self) -> Iterator[Shot]:
        while True:
            yield self.draw()

    def valid(self) -> dict:
        rng, token = self.rng, self.token
        choices = [
            {"type": "status"},
            {"type": "cue", "name": self.caption, "data": random_value(rng)},
            {"type": "cue", "name": random_text(rng, 8), "data": random_value(rng)},
            {"type": "say", "wav": self.speech, **({} if self.gentle else {"text": random_text(rng, 40)}),
             "interrupt": rng.random() < 0.3 and not self.gentle},
            *([] if self.gentle else [{"type": "stop"}]),
            {"type": "set_framing", "framing": rng.choice(["default", "max", 0.5, 2]), "over": rng.uniform(0, 2)},
            {"type": "set_mode", "mode": rng.choice(["one-shot", "zero-shot"])},
        ]
        return {**rng.choice(choices), "token": token, "id": rng.randrange(1 << 31)}

    def stream_message(self) -> dict:
        """Speech streams, well and badly made: odd rates and formats, chunks of any size (partial samples, NaN
        floats), ids of streams that are someone else's, ended or never opened, streams opened and never ended."""
        rng = self.rng
        if self.gentle:  # a soak's markers must not wait behind streams left open
            return {"type": "stream_end", "stream": rng.randrange(1, 100)}
        return rng.choice([
            {"type": "stream_start", "rate": rng.choice([8000, 16000, 22050, 24000, 44100, 48000, 0, -1, 1 << 40]),
             "format": rng.choice(["s16", "f32", "u8", ""]), "interrupt": rng.random() < 0.2},
            {"type": "stream_audio", "stream": rng.randrange(1, 100),
             "pcm": rng.randbytes(rng.choice([0, 1, 3, 320, 3200, 32_000]))},
            {"type": "stream_end", "stream": rng.choice([rng.randrange(1, 100), -1, 1 << 62])},
        ])

    def draw(self) -> Shot:  # noqa: C901 (one branch per category, read side by side)
        rng, token = self.rng, self.token
        category = rng.choices(CATEGORIES, WEIGHTS)[0]
        if category == "bomb" and self.gentle:
            category = "valid"
        if category == "random_bytes":
            return Shot(category, frame(rng.randbytes(rng.randrange(1, 600))))
        if category == "truncated":
            whole = frame(packed(self.valid()))
            return Shot(category, whole[:rng.randrange(1, len(whole))], fresh=True, reply=False)
        if category == "huge_length":
            length = rng.choice([self.max_bytes + 1, 2**31, 2**32 - 1, self.max_bytes * 4])
            return Shot(category, HEADER.pack(length) + rng.randbytes(rng.randrange(8)), fresh=True, closes=True)
        if category == "zero_length":
            return Shot(category, HEADER.pack(0), fresh=True, closes=True)
        if category == "wrong_types":
            message = self.valid()
            key = rng.choice([k for k in message if k != "token"] + ["id", "interrupt", "over", "framing"])
            message[key] = random_value(rng)
            return Shot(category, frame(packed(message)))
        if category == "wrong_token":
            message = self.valid()
            message["token"] = rng.choice([None, 5, "", token[:-1], token + "x", rng.randbytes(8), [token]])
            if rng.random() < 0.3:
                del message["token"]
            return Shot(category, frame(packed(message)), fresh=rng.random() < 0.5)
        if category == "nan":
            message = rng.choice([
                {"type": "set_framing", "framing": float("nan")},
                {"type": "set_framing", "framing": "max", "over": rng.choice([float("nan"), float("inf"), -1e308])},
                {"type": "set_framing", "framing": rng.choice([float("inf"), -float("inf"), 0.0, -1.0, 1e308])},
                {"type": "cue", "name": self.caption, "data": [float("nan"), {"x": float("-inf")}]},
                {"type": "status", "id": float("nan")},
            ])
            return Shot(category, frame(packed({**message, "token": token})))
        if category == "unknown_type":
            kind = rng.choice([random_text(rng, 12), 7, None, b"say", ["say"], "SAY", "say\x00", ""])
            return Shot(category, frame(packed({"type": kind, "token": token})))
        if category == "deep_nesting":
            depth = rng.choice([17, 64, 1000, 1023, 1100, 5000, rng.randrange(17, 40)])  # all over the limit
            return Shot(category, frame(deep_body(token, depth, rng)))
        if category == "huge_strings":
            size = rng.choice([2001, 10_000, 150_000, min(self.max_bytes - 100, 4_000_000)])
            text = "x" * size
            message = rng.choice([
                {"type": "say", "wav": self.speech, "text": text},
                {"type": "cue", "name": self.caption, "data": text},
                {"type": "cue", "name": self.caption, "data": ["caption " * 250] * rng.choice([2, 75, 200])},
                {"type": "cue", "name": text[:5000]},
                {"type": "status", "id": text},
                {"type": "status", text[:3000]: 1},
                {"type": "say", "path": text[:4000]},
            ])
            return Shot(category, frame(packed({**message, "token": token})))
        if category == "big_containers":
            data = rng.choice([list(range(300)), {str(i): i for i in range(100)}, [list(range(200))] * 12,
                               [[] for _ in range(250)], [{} for _ in range(250)]])
            return Shot(category, frame(packed({"type": "cue", "token": token, "name": "x", "data": data})))
        if category == "extension":
            data = rng.choice([msgpack.ExtType(rng.randrange(128), rng.randbytes(rng.randrange(20))),
                               msgpack.Timestamp(1, 2)])
            return Shot(category, frame(packed({"type": "cue", "token": token, "name": "x", "data": data})))
        if category == "random_msgpack":
            message = rng.choice([random_value(rng), {**self.valid(), random_text(rng, 5): random_value(rng)}])
            return Shot(category, frame(packed(message)))
        if category == "mutated":
            body = bytearray(packed(self.valid()))
            for _ in range(rng.randrange(1, 5)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            return Shot(category, frame(bytes(body)))
        if category == "stream":
            return Shot(category, frame(packed({**self.stream_message(), "token": token})))
        if category == "bomb":
            _, bomb = rng.choice(self.bombs)
            return Shot(category, frame(packed({"type": "say", "token": token, "wav": bomb, "id": 1})))
        return Shot(category, frame(packed(self.valid())))


# who sends it -----------------------------------------------------------------------------------------------------
@dataclass
class Tally:
    """What the campaign saw (shared by its threads)."""

    tried: int = 0
    outcomes: Counter = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    closed_by_server: int = 0
    slow_cut: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1

    def crash(self, text: str) -> None:
        with self.lock:
            self.crashes.append(text)


def connect(address: tuple[str, int], token: str | None = None) -> socket.socket:
    """A connection; with `token`, authenticated by a first `status` (as a well-behaved client is)."""
    sock = socket.create_connection(address, timeout=REPLY_TIMEOUT_S)
    if token is not None:
        sock.sendall(frame(packed({"type": "status", "token": token})))
        if read_frame(sock, 1 << 24) is None:
            raise ConnectionError("closed before answering status")
    return sock


def classify(body: bytes) -> str:
    reply = msgpack.unpackb(body, raw=False)
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ValueError(f"a reply that is not a map with 'ok': {reply!r:.200}")
    if reply["ok"]:
        return "ok"
    error = reply.get("error")
    if not isinstance(error, str):
        raise ValueError(f"an error reply without its text: {reply!r:.200}")
    if error.startswith("internal error"):
        raise ValueError(f"internal error: {error}")
    return outcome_of(error)


def outcome_of(error: str) -> str:
    """An error's kind, without the values it names ('unknown message type 'x'' -> 'unknown message type _')."""
    general = re.sub(r"b?'[^']*'|b?\"[^\"]*\"|\[[^\]]*\]?|\{[^}]*\}?|-?\d[\d.e+]*|nan|inf", "_", error)
    return re.split(r"[;(]", general, maxsplit=1)[0].strip()[:60]


def fire(address: tuple[str, int], token: str, shots: Iterator[Shot], count: int, tally: Tally,
         progress: Callable[[int], None]) -> None:
    """Send `count` shots in turn, reconnecting whenever the server (or a shot) ends a connection."""
    sock: socket.socket | None = None
    for _ in range(count):
        shot = next(shots)
        try:
            if shot.fresh and sock is not None:
                sock.close()
                sock = None
            if sock is None:
                sock = connect(address, None if shot.fresh else token)
            sock.sendall(shot.data)
            if not shot.reply:
                tally.note(f"{shot.category}: sent")
                sock.close()
                sock = None
            else:
                body = read_frame(sock, 1 << 24)
                if body is None:
                    tally.closed_by_server += 1
                    tally.note(f"{shot.category}: closed")
                    sock.close()
                    sock = None
                else:
                    tally.note(f"{shot.category}: {classify(body)}")
                    if shot.closes or shot.fresh:  # the next shots go out on an authenticated connection
                        sock.close()
                        sock = None
        except TimeoutError:
            tally.crash(f"{shot.category}: no reply within {REPLY_TIMEOUT_S:g} s")
            sock = _drop(sock)
        except (ConnectionError, BrokenPipeError) as error:  # closed by the server (wrong tokens, evicted)
            tally.closed_by_server += 1
            tally.note(f"{shot.category}: closed ({type(error).__name__})")
            sock = _drop(sock)
        except ValueError as error:
            tally.crash(f"{shot.category}: {error}")
            sock = _drop(sock)
        with tally.lock:
            tally.tried += 1
        progress(1)
    _drop(sock)


def _drop(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()
    return None


class Loiterers:
    """Connections without the token that hold on: slow ones send one byte every `every_s` of a message that never
    ends, idle ones nothing; each reconnects after `pause_s` whenever the server closes it."""

    def __init__(self, address: tuple[str, int], slow: int, idle: int, every_s: float = 2.0,
                 pause_s: float = 0.05) -> None:
        self.address, self.every_s, self.pause_s = address, every_s, pause_s
        self.kinds = ["slow"] * slow + ["idle"] * idle
        self.socks: list[socket.socket | None] = [None] * len(self.kinds)
        self.cut = 0
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-loiterers", daemon=True)

    def __enter__(self) -> Loiterers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.socks:
            _drop(sock)

    @property
    def holding(self) -> int:
        return sum(sock is not None for sock in self.socks)

    def _open(self, i: int) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=5)
            sock.setblocking(False)
            if self.kinds[i] == "slow":
                sock.send(HEADER.pack(1000))  # then its body, a byte at a time
            self.socks[i] = sock
            self.connects += 1
        except OSError:
            self.socks[i] = None

    def _closed(self, sock: socket.socket) -> bool:
        try:
            while True:  # drain what the server said (its reason for closing), see whether it closed
                data = sock.recv(4096)
                if not data:
                    return True
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _run(self) -> None:
        next_byte = time.monotonic()
        while not self._stop.is_set():
            dribble = time.monotonic() >= next_byte
            if dribble:
                next_byte = time.monotonic() + self.every_s
            for i, sock in enumerate(self.socks):
                if self._stop.is_set():
                    return
                if sock is None:
                    self._open(i)
                    continue
                try:
                    if self._closed(sock):
                        raise ConnectionError
                    if dribble and self.kinds[i] == "slow":
                        sock.send(b"\x00")
                except OSError:
                    _drop(sock)
                    self.socks[i] = None
                    self.cut += 1
            self._stop.wait(self.pause_s)


def served_while_held(address: tuple[str, int], token: str, tries: int = 20) -> dict:
    """Authenticated clients, one after another: how many were served and how long each took."""
    took, refused = [], []
    for _ in range(tries):
        start = time.perf_counter()
        try:
            with connect(address, token) as sock:
                sock.sendall(frame(packed({"type": "status", "token": token})))
                body = read_frame(sock, 1 << 24)
                if body is not None and msgpack.unpackb(body, raw=False).get("ok"):
                    took.append(time.perf_counter() - start)
                    continue
                refused.append("no reply" if body is None else msgpack.unpackb(body, raw=False).get("error"))
        except OSError as error:
            refused.append(f"{type(error).__name__}: {error}")
    took.sort()
    return {"tries": tries, "served": len(took), "refused": refused[:3],
            "median_ms": round(1000 * took[len(took) // 2], 1) if took else None,
            "max_ms": round(1000 * took[-1], 1) if took else None}


# memory of the engine ---------------------------------------------------------------------------------------------
def rss_mb(pid: int, key: str = "VmRSS") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) / 1024


def reset_peak(pid: int) -> bool:
    """Start VmHWM (peak RSS) afresh from the current RSS (Linux 4.0+; needs to own the process)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_bombs(address: tuple[str, int], token: str, pid: int, bombs: dict[str, bytes]) -> list[dict]:
    """Each bomb alone on an idle engine: its reply, how long it took, and the engine's peak RSS above idle."""
    rows = []
    with connect(address, token) as sock:
        # A short say first: the engine's first decode loads the codecs (tens of MB that are not the bomb's).
        sock.sendall(frame(packed({"type": "say", "token": token, "wav": wav_declaring(16000, 1600, width=2)})))
        read_frame(sock, 1 << 24)
        for name, bomb in bombs.items():
            time.sleep(0.5)  # let the engine settle (and trim its heap)
            peak_known = reset_peak(pid)
            idle = rss_mb(pid)
            start = time.perf_counter()
            sock.sendall(frame(packed({"type": "say", "token": token, "wav": bomb})))
            body = read_frame(sock, 1 << 24)
            seconds = time.perf_counter() - start
            reply = msgpack.unpackb(body, raw=False) if body else {"error": "closed"}
            rows.append({"bomb": name, "bytes": len(bomb), "seconds": round(seconds, 2),
                         "peak_above_idle_mb": round(rss_mb(pid, "VmHWM") - idle, 1) if peak_known else None,
                         "reply": "ok" if reply.get("ok") else str(reply.get("error"))[:140]})
            if reply.get("ok"):
                sock.sendall(frame(packed({"type": "stop", "token": token})))  # do not leave minutes of silence
                read_frame(sock, 1 << 24)
    worst = max(rows, key=lambda row: row["peak_above_idle_mb"] or 0)
    rows.append(at_once(address, token, pid, worst["bomb"], bombs[worst["bomb"]], 3))
    return rows


def at_once(address: tuple[str, int], token: str, pid: int, name: str, bomb: bytes, count: int) -> dict:
    """The same say from `count` connections at the same moment (an engine decoding them side by side adds up)."""
    message = frame(packed({"type": "say", "token": token, "wav": bomb}))
    socks = [connect(address, token) for _ in range(count)]
    time.sleep(0.5)
    peak_known = reset_peak(pid)
    idle = rss_mb(pid)
    start = time.perf_counter()
    senders = [threading.Thread(target=sock.sendall, args=(message,)) for sock in socks]
    for sender in senders:
        sender.start()
    replies = [read_frame(sock, 1 << 24) for sock in socks]
    seconds = time.perf_counter() - start
    for sender in senders:
        sender.join()
    with socks[0] as sock:
        sock.sendall(frame(packed({"type": "stop", "token": token})))
        read_frame(sock, 1 << 24)
    for sock in socks[1:]:
        sock.close()
    oks = sum(bool(body) and msgpack.unpackb(body, raw=False).get("ok") for body in replies)
    return {"bomb": f"{count} at once: {name}", "bytes": len(bomb) * count, "seconds": round(seconds, 2),
            "peak_above_idle_mb": round(rss_mb(pid, "VmHWM") - idle, 1) if peak_known else None,
            "reply": f"{oks} of {count} ok"}


class PeakSampler:
    """The engine's RSS sampled every 0.1 s (VmHWM is reset by measure_bombs, so the campaign keeps its own)."""

    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak, self.start = pid, 0.0, rss_mb(pid) if pid else 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        if self.pid:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (OSError, AttributeError):
                return


# the campaign -----------------------------------------------------------------------------------------------------
@dataclass
class Campaign:
    """One campaign against the engine at `address`."""

    address: str
    token: str
    messages: int = 10_000
    workers: int = 4
    slow_clients: int = 10
    idle_clients: int = 10
    slow_every_s: float = 2.0
    seed: int = 0
    max_clip_s: float = 300.0
    max_message_mb: float = 16.0
    pid: int | None = None
    alive: Callable[[], bool] = lambda: True
    """Whether the engine still runs (its process, or its server thread)."""
    gentle: bool = False
    """Speech the engine is playing is never stopped or interrupted, and no say bombs (fuzzing beside a soak)."""
    settle_s: float = 12.0
    """After the campaign, wait this long before reading the engine's RSS again (0: do not)."""

    def settle(self, address: tuple[str, int]) -> float | None:
        """The engine's RSS once the speech the campaign queued is stopped and the engine has handed freed memory
        back (a live engine trims its heap every 10 s): what the campaign left behind."""
        try:
            with connect(address, self.token) as sock:
                sock.sendall(frame(packed({"type": "stop", "token": self.token})))
                read_frame(sock, 1 << 24)
        except OSError:
            return None
        time.sleep(self.settle_s)
        return round(rss_mb(self.pid), 1)

    def run(self, progress: Callable[[int], None] = lambda n: None) -> dict:
        address = parse_address(self.address)
        max_bytes = int(self.max_message_mb * 1024 * 1024)
        bombs = make_bombs(self.max_clip_s, max_bytes)
        tally = Tally()
        start = time.perf_counter()
        with PeakSampler(self.pid) as memory, \
                Loiterers(address, self.slow_clients, self.idle_clients, self.slow_every_s) as loiterers:
            threads = []
            share = [self.messages // self.workers + (i < self.messages % self.workers) for i in range(self.workers)]
            for i, count in enumerate(share):
                shots = iter(Shots(self.token, self.seed * 1000 + i, max_bytes, bombs, self.gentle))
                threads.append(threading.Thread(target=fire, args=(address, self.token, shots, count, tally,
                                                                   progress), name=f"fuzz-{i}", daemon=True))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - start
            held = loiterers.holding
            final = served_while_held(address, self.token, tries=5)
            loiterers_cut = loiterers.cut
        settled = self.settle(address) if self.pid and self.settle_s else None
        if not self.alive():
            tally.crash("the engine is gone")
        if final["served"] < final["tries"]:
            tally.crash(f"a good message at the end was not served: {final['refused']}")
        return {"messages": tally.tried, "crashes": len(tally.crashes), "crash_samples": tally.crashes[:10],
                "seconds": round(seconds, 1), "closed_by_server": tally.closed_by_server,
                "loiterers_holding_at_end": held, "loiterers_cut": loiterers_cut, "served_at_end": final,
                "peak_rss_mb": round(memory.peak, 1) if self.pid else None,
                "start_rss_mb": round(memory.start, 1) if self.pid else None, "settled_rss_mb": settled,
                "outcomes": dict(tally.outcomes.most_common())}


def starvation(address: str, token: str, slow: int, every_s: float = 2.0, pause_s: float = 0.05) -> dict:
    """`slow` clients without the token hold on (a byte every `every_s`, reconnecting at once when cut) while
    authenticated clients come one after another."""
    where = parse_address(address)
    with Loiterers(where, slow, 0, every_s, pause_s) as loiterers:
        deadline = time.monotonic() + 10
        while loiterers.connects < slow and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(every_s)  # at least one byte from each
        result = served_while_held(where, token)
        result.update(slow_clients=slow, holding=loiterers.holding, cut=loiterers.cut, connects=loiterers.connects)
    return result


# command line -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FuzzOptions:
    """Fuzz a running engine's control socket (or a headless kiosk started here) and report crashes and memory."""

    messages: int = 10_000
    """Messages to send, all categories mixed."""
    address: str | None = None
    """HOST:PORT of a running engine (`syncanim run scenes/kiosk.py --control 127.0.0.1:7878`); None: start a
    headless kiosk on a free port for the campaign."""
    token: str | None = None
    """The engine's control token; default $SYNCANIM_CONTROL_TOKEN."""
    pid: int | None = None
    """The engine's process id, to read its memory (found from the address when left out, on Linux)."""
    workers: int = 4
    """Connections sending at once."""
    slow_clients: int = 20
    """Clients without the token sending a byte every --slow-every-s during the campaign."""
    idle_clients: int = 20
    """Clients without the token that send nothing during the campaign."""
    slow_every_s: float = 2.0
    """Seconds between the bytes of a slow client."""
    starvation: int = 100
    """Slow clients without the token holding on while authenticated ones are served, after the campaign (0: skip)."""
    bombs: bool = True
    """Measure the engine's peak memory for each say bomb alone (needs its pid)."""
    max_clip_s: float = 300.0
    """The engine's --control-max-clip-s (bombs are sized around it)."""
    max_message_mb: float = 16.0
    """The engine's --control-max-message-mb."""
    seed: int = 0
    """Seed of the message draw (the same seed sends the same messages)."""
    gentle: bool = False
    """Never stop or interrupt the speech the engine plays, show no captions, and send no say bombs: fuzzing beside
    a soak, whose drift markers must be heard and seen whole."""
    progress: bool = True
    """Show a progress bar."""


def start_kiosk(token: str) -> tuple[subprocess.Popen, str]:
    """`syncanim run scenes/kiosk.py` headless in real time on a free port; (process, address)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", str(ROOT / "scenes" / "kiosk.py"), "--headless", "--realtime",
         "--size", "128x128", "--control", address, "--control-token", token],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the kiosk exited with {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            connect(parse_address(address), token).close()
            return process, address
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the kiosk did not open its control socket within 180 s")


def pid_listening_on(address: str) -> int | None:
    """The process listening on the TCP port of `address` (Linux /proc; None when not found or not ours)."""
    port = parse_address(address)[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":  # LISTEN
                    inodes.add(parts[9])
        except OSError:
            continue
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                if os.readlink(fd) in {f"socket:[{i}]" for i in inodes}:
                    return int(fd_dir.parent.name)
        except OSError:
            continue
    return None


def main(options: FuzzOptions) -> int:
    from tqdm import tqdm

    token = options.token or os.environ.get("SYNCANIM_CONTROL_TOKEN")
    process = None
    if options.address is None:
        token = token or "fuzz-" + os.urandom(9).hex()
        print("starting a headless kiosk ...", flush=True)
        process, address = start_kiosk(token)
        pid = process.pid
    else:
        if not token:
            raise SystemExit("pass --token (printed by the engine at start) or set $SYNCANIM_CONTROL_TOKEN")
        address = options.address
        pid = options.pid or pid_listening_on(address)
    print(f"engine at {address}, pid {pid or 'unknown (no memory figures)'}", flush=True)
    alive = (lambda: process.poll() is None) if process else \
        (lambda: pid is None or Path(f"/proc/{pid}").exists())
    try:
        bombs = measure_bombs(parse_address(address), token, pid,
                              make_bombs(options.max_clip_s, int(options.max_message_mb * 1024 * 1024))) \
            if options.bombs and pid else []
        for row in bombs:
            print(f"say bomb {row['bomb']!r} ({row['bytes']} bytes): {row['seconds']} s, peak "
                  f"{row['peak_above_idle_mb']} MB above idle; {row['reply']}", flush=True)
        campaign = Campaign(address, token, options.messages, options.workers, options.slow_clients,
                            options.idle_clients, options.slow_every_s, options.seed, options.max_clip_s,
                            options.max_message_mb, pid, alive, gentle=options.gentle,
                            settle_s=0.0 if options.gentle else 12.0)
        with tqdm(total=options.messages, unit="msg", disable=not options.progress) as bar:
            report = campaign.run(bar.update)
        print(f"messages tried {report['messages']}, crashes {report['crashes']}, {report['seconds']} s; engine RSS "
              f"{report['start_rss_mb']} MB at the start, peak {report['peak_rss_mb']} MB (accepted speech queues up "
              f"to --control-max-clip-s per say), {report['settled_rss_mb']} MB once stopped and settled")
        for line in report["crash_samples"]:
            print("  crash:", line)
        print(f"closed by the server {report['closed_by_server']}; loiterers cut {report['loiterers_cut']}, "
              f"holding at the end {report['loiterers_holding_at_end']}; at the end {report['served_at_end']}")
        print("outcomes:", ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()))
        if options.starvation:
            held = starvation(address, token, options.starvation, options.slow_every_s)
            print(f"{held['served']} of {held['tries']} authenticated clients served (median {held['median_ms']} "
                  f"ms, max {held['max_ms']} ms) while {held['slow_clients']} slow clients without the token held on "
                  f"({held['holding']} connected at the end, {held['cut']} cuts, {held['connects']} connects)"
                  + (f"; refused: {held['refused']}" if held["refused"] else ""))
            if held["served"] < held["tries"]:
                report["crashes"] += 1
        return 1 if report["crashes"] or not alive() else 0
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    import tyro

    sys.exit(main(tyro.cli(FuzzOptions)))
