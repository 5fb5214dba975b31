"""Control socket: a TCP server thread takes length-prefixed msgpack messages and hands them to the frame loop.

Threads and hand-over:
    server thread(s)   read a frame, check size, token and fields, decode audio (`say`), answer at once, and put a
                       ControlRequest on a bounded queue (full: answered 'busy'); a stream's audio and end go
                       straight into its SpeechStream instead (engine.scene.streams)
    UPDATE drain_control   queue -> ControlRequest messages (all waiting ones, every frame)
    UPDATE apply_control   say / stream_start / stop / set_mode / set_framing / load_scene applied (actions); scene
                           scripts see every message too (`d.on_message(type)`), including `cue`s
    LAST publish_control_status   the frame's state, for `status` replies and avatar / voice name checks

An interrupting `say` is drained and applied in the UPDATE of the first frame after it arrives, so the voice plays
the new clip from the next audio block on. Every malformed message gets an error reply; none can stop the server.

What a client can cost is bounded: a message by its size, depth and string lengths (engine.scene.protocol), a `say` by
its header and a running decode cap, a connection by deadlines (first message with the token, each whole message,
idleness), and connections without the token by a budget of their own, so they never keep out one with it.
"""
from __future__ import annotations

import hmac
import logging
import math
import queue
import secrets
import socket
import socketserver
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.app import Diagnostics, SystemTimings
from engine.audio.playback import AudioPlayback
from engine.audio.settings import AudioSettings
from engine.audio.sources import AudioClip, AudioLimitError, ClipTooLong, decode_file
from engine.components import Avatar, Framing
from engine.ecs import Stage, World, optional
from engine.scene import actions
from engine.scene.actions import framing_zoom, normalise_mode
from engine.scene.control_settings import TOKEN_ENV, ControlSettings, parse_address
from engine.scene.host import SceneHost, SceneLoad, scene_folders
from engine.scene.loader import SceneError, check_scene_source
from engine.scene.protocol import (
    MAX_TEXT, ControlRequest, FrameTooLarge, ProtocolError, TimedOut, Truncated, pack, read_frame, unpack,
)
from engine.scene.streams import StreamTable
from engine.time import Time

if TYPE_CHECKING:
    from engine.app import App

log = logging.getLogger(__name__)

# type -> {field: (accepted python types, required)}; every message also has type, token and optionally id.
SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "say": {"wav": ((bytes,), False), "path": ((str,), False), "interrupt": ((bool,), False),
            "avatar": ((str,), False), "voice": ((str,), False), "text": ((str,), False)},
    "stop": {"avatar": ((str,), False), "voice": ((str,), False)},
    "set_mode": {"mode": ((str,), True), "avatar": ((str,), False)},
    "set_framing": {"framing": ((str, int, float), True), "over": ((int, float), False), "avatar": ((str,), False)},
    "load_scene": {"path": ((str,), True)},
    "status": {},
    "cue": {"name": ((str,), True), "data": ((object,), False)},
    "stream_start": {"rate": ((int,), False), "format": ((str,), False), "interrupt": ((bool,), False),
                     "avatar": ((str,), False), "voice": ((str,), False), "text": ((str,), False)},
    "stream_audio": {"stream": ((int,), True), "pcm": ((bytes,), True), "text": ((str,), False)},
    "stream_end": {"stream": ((int,), True)},
}
STREAM_FEEDS = ("stream_audio", "stream_end")
"""Messages handled on the connection's thread alone: a stream's audio never waits for a frame."""
MAX_TOKEN_FAILURES = 3
"""Wrong tokens on one connection before it is closed (guessing gets slow)."""
MAX_FRAMING_OVER_S = 600.0
SEND_TIMEOUT_S = 10.0
"""Longest a reply may wait for a client that does not read (it holds a thread meanwhile)."""


@dataclass(eq=False)
class _Session:
    """One connection's state: it authenticates with its first message that carries the right token."""

    conn: socket.socket
    auth_deadline: float
    """time.monotonic() by which that message must have arrived whole."""
    authenticated: bool = False
    evicted: bool = False
    waiting: int = 0
    """Its messages on the queue to the frame loop, not yet taken (its share is bounded: `ControlServer.share`)."""
    """Closed to make room for a newer unauthenticated connection (--control-max-pending)."""


class ControlServer:
    """Resource: the listening socket, its threads, the queue to the frame loop and the status snapshot."""

    def __init__(self, settings: ControlSettings, sample_rate: int = 16000) -> None:
        self.settings = settings
        self.sample_rate = sample_rate
        self.token = settings.control_token or secrets.token_urlsafe(18)
        # (the connection that sent it, or None for messages handed in directly, the request)
        self.requests: queue.Queue[tuple[_Session | None, ControlRequest]] = queue.Queue(maxsize=settings.control_queue)
        self._status: dict[str, Any] = {}
        self._status_lock = threading.Lock()
        # Every connection, and those still waiting to authenticate, oldest first (dicts keep insertion order).
        self._sessions: dict[socket.socket, _Session] = {}
        self._pending: dict[socket.socket, _Session] = {}
        self._threads: set[threading.Thread] = set()
        self._connections_lock = threading.Lock()
        # One `say` decodes at a time: each is bounded (--control-max-clip-s), several at once would add up.
        self._decode_lock = threading.Lock()
        self.streams = StreamTable(sample_rate, settings.control_max_queued_s)
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] | None = None

    # lifecycle ----------------------------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        host, port = parse_address(self.settings.control or "127.0.0.1:0")
        self._server = _TCPServer((host, port), _Handler, self)
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="control-accept", daemon=True)
        self._thread.start()
        return self.address

    def stop(self) -> None:
        """Stop accepting, close every connection and join every thread (nothing is left behind)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._connections_lock:
            for conn in self._sessions:
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # wakes the handler blocked in recv
                except OSError:
                    pass
        server.server_close()
        for thread in self.handler_threads():
            thread.join(timeout=5.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def track_thread(self, thread: threading.Thread) -> None:
        with self._connections_lock:
            self._threads = {t for t in self._threads if t.is_alive()} | {thread}

    def handler_threads(self) -> list[threading.Thread]:
        with self._connections_lock:
            return list(self._threads)

    @property
    def connections(self) -> int:
        """Open connections, authenticated or not."""
        with self._connections_lock:
            return len(self._sessions)

    @property
    def pending(self) -> int:
        """Connections that have not yet sent a message with the right token."""
        with self._connections_lock:
            return len(self._pending)

    # status -------------------------------------------------------------------------------------
    def publish_status(self, status: dict[str, Any]) -> None:
        with self._status_lock:
            self._status = status

    def status(self) -> dict[str, Any]:
        with self._status_lock:
            return dict(self._status)

    def status_reply(self) -> dict[str, Any]:
        """The latest status as a client gets it: the frame times summed up here, on the connection's thread, not
        every frame on the frame loop's."""
        status = self.status()
        status["frame_ms"] = summarise_frame_times(status.get("frame_ms", ()))
        return status

    # one message --------------------------------------------------------------------------------
    def handle(self, body: bytes | bytearray, session: _Session | None = None) -> tuple[dict[str, Any], bool | None]:
        """Answer one message body (a bytearray is emptied once unpacked); (reply, whether the token was right: None
        when the message broke the protocol before its token was looked at). A `session` not yet authenticated takes
        a slot first. Never raises."""
        message_id = None
        token_right = None
        try:
            message = unpack(body)
            if isinstance(body, bytearray):  # as read_frame gives it: consumed, so a big say's bytes are not held
                body.clear()                 # twice (here and as its `wav`) while it decodes
            message_id = message.get("id")
            if not isinstance(message_id, (int, str, type(None))) or isinstance(message_id, bool):
                message_id = None
                raise ProtocolError("'id' must be an integer or a string")
            if not self.token_ok(message.get("token")):
                return self.error(message_id, "unauthorised: wrong or missing 'token' (printed at engine start, "
                                              "or the --control-token you gave)"), False
            token_right = True
            if session is not None and not session.authenticated:
                self.admit(session)
            return self.accept(message, message_id, session), True
        except ProtocolError as error:
            return self.error(message_id, str(error)), token_right
        except Exception as error:  # a bug here must cost one reply, not the server
            log.exception("control: unexpected failure handling a message")
            return self.error(message_id, f"internal error: {type(error).__name__}: {error}"), True

    def token_ok(self, token: Any) -> bool:
        if not isinstance(token, str):
            return False
        return hmac.compare_digest(token.encode("utf-8", "replace"), self.token.encode())

    @staticmethod
    def error(message_id: Any, text: str) -> dict[str, Any]:
        return {"ok": False, "id": message_id, "error": text}

    def accept(self, message: dict[str, Any], message_id: Any, session: _Session | None = None) -> dict[str, Any]:
        kind = message.get("type")
        if not isinstance(kind, str) or kind not in SCHEMAS:
            raise ProtocolError(f"unknown message type {kind!r}; types: {', '.join(SCHEMAS)}")
        fields = validate_fields(kind, message)
        if kind == "status":
            return {"ok": True, "id": message_id, **self.status_reply()}
        if kind in STREAM_FEEDS:
            return {"ok": True, "id": message_id, **self.feed_stream(kind, fields, session)}
        self.check_names(fields)
        request = ControlRequest(kind, fields, id=message_id)
        reply: dict[str, Any] = {"ok": True, "id": message_id, "queued": True}
        if kind == "say":
            request.clip = self.decode_speech(fields)
            fields.pop("wav", None)
            if request.clip is not None:
                reply["duration_s"] = request.clip.duration_s
                if not fields.get("interrupt"):
                    self.check_queued(request.clip.duration_s)
        elif kind == "stream_start":
            stream_id, request.stream = self.streams.open(session, fields.pop("rate", self.sample_rate),
                                                          fields.pop("format", "s16"))
            fields["stream"] = reply["stream"] = stream_id
        elif kind == "set_mode":
            fields["mode"] = checked_mode(fields["mode"])
        elif kind == "set_framing":
            check_framing(fields)
        elif kind == "load_scene":
            self.check_scene_path(fields["path"])
        elif kind == "cue":
            check_cue_data(fields)
        try:
            self.submit(request, session)
        except ProtocolError:
            if request.stream is not None:
                self.streams.cancel(fields["stream"])
            raise
        return reply

    def feed_stream(self, kind: str, fields: dict[str, Any], session: _Session | None) -> dict[str, Any]:
        """stream_audio / stream_end, straight into the stream (the voice reads it on the audio thread)."""
        if kind == "stream_end":
            stream = self.streams.end(session, fields["stream"])
        else:
            stream = self.streams.append(session, fields["stream"], fields["pcm"], fields.get("text"))
        return {"buffered_s": round(stream.buffered_s, 4), "underruns": stream.underruns}

    def share(self) -> int:
        """Most messages one connection may have waiting: the queue over (authenticated connections + 1), so there is
        always room for one more client (one client flooding the queue had the soak's own says answered 'busy')."""
        authenticated = sum(session.authenticated for session in self._sessions.values())
        return max(1, self.requests.maxsize // (authenticated + 1))

    def submit(self, request: ControlRequest, session: _Session | None) -> None:
        """Queue a request for the frame loop. A connection takes at most its share, and the last share of places is
        kept for connections with nothing waiting: messages of connections that have closed stay queued until the
        next frame, and a client reconnecting between two frames filled the queue with them."""
        with self._connections_lock:
            if session is not None:
                share, free = self.share(), self.requests.maxsize - self.requests.qsize()
                if session.waiting >= share:
                    raise ProtocolError(f"busy: this connection has {session.waiting} messages waiting for the engine, "
                                        f"its share of the {self.requests.maxsize} places (--control-queue, shared by "
                                        "the connections with the token and one kept free); retry after the next "
                                        "frame")
                if session.waiting and free <= share:
                    raise ProtocolError(f"busy: the last {share} places of the queue are kept for connections with no "
                                        "message waiting, and this one has "
                                        f"{session.waiting}; retry after the next frame")
            try:
                self.requests.put_nowait((session, request))
            except queue.Full:
                raise ProtocolError(f"busy: {self.requests.maxsize} messages are waiting for the engine; retry "
                                    "later") from None
            if session is not None:
                session.waiting += 1

    def take_requests(self) -> list[ControlRequest]:
        """Every message waiting for the frame loop, oldest first; their connections' shares are freed."""
        taken = []
        while True:
            try:
                session, request = self.requests.get_nowait()
            except queue.Empty:
                return taken
            if session is not None:
                with self._connections_lock:
                    session.waiting -= 1
            taken.append(request)

    def check_names(self, fields: dict[str, Any]) -> None:
        """Refuse avatars and voices the running scene does not have (from the latest status)."""
        status = self.status()
        for key, known_key in (("avatar", "avatars"), ("voice", "voices")):
            name = fields.get(key)
            known = status.get(known_key)
            if name is not None and known is not None and name not in known:
                raise ProtocolError(f"no {key} {name!r}; {known_key}: {list(known)}")

    def decode_speech(self, fields: dict[str, Any]) -> AudioClip | None:
        """The clip of a `say` (None: its `text` is to be spoken by the engine's voice). Its cost is bounded
        before and while decoding (the header's rate, channels and length, then a running cap at
        --control-max-clip-s): checking the length after a full decode let a 4 KB wav that declares 1 Hz take 500
        MB."""
        if "wav" not in fields and "path" not in fields and fields.get("text", "").strip():
            return None
        if ("wav" in fields) == ("path" in fields):
            raise ProtocolError("say needs exactly one of 'wav' (audio file bytes) or 'path' (a file on the engine "
                                "machine), or only 'text' for the engine's own voice to speak")
        limit = self.settings.control_max_clip_s
        try:
            if "path" in fields:
                path = self.say_path(fields["path"])
                name = path.name
                with self._decode_lock:
                    samples = decode_file(path, self.sample_rate, max_seconds=limit)
            else:
                name = "control"
                with self._decode_lock:
                    samples = decode_bytes(fields["wav"], self.sample_rate, max_seconds=limit)
        except ProtocolError:
            raise
        except ClipTooLong as error:
            raise ProtocolError(f"say: {error} (--control-max-clip-s); send a shorter clip") from None
        except AudioLimitError as error:
            raise ProtocolError(f"say: {error}") from None
        except Exception as error:
            raise ProtocolError(f"say: audio not readable ({type(error).__name__}: {error}); send wav, flac or mp3")\
                from None
        if len(samples) == 0 or not np.all(np.isfinite(samples)):
            raise ProtocolError("say: the audio is empty or not finite")
        return AudioClip(samples, self.sample_rate, name)

    def check_queued(self, seconds: float) -> None:
        """Refuse a `say` that would leave more than --control-max-queued-s of speech waiting: the voices' queues (as
        the latest frame published them) and the says not yet handed to the frame loop. Each clip is bounded, the
        number of clips was not: queued speech grew by 19 MB per accepted 300 s clip."""
        with self.requests.mutex:
            unapplied = sum(r.clip.duration_s for _, r in self.requests.queue if r.clip is not None)
        waiting = sum(self.status().get("queued_s", {}).values()) + unapplied
        limit = self.settings.control_max_queued_s
        if waiting + seconds > limit:
            raise ProtocolError(f"busy: {waiting:.1f} s of speech are waiting and this clip is {seconds:.1f} s, over "
                                f"the limit of {limit:g} s (--control-max-queued-s); retry later, or interrupt")

    def say_path(self, text: str) -> Path:
        """The file a `say path=` names, when it lies in --control-say-dirs (a relative path: in the first of
        them). Outside them the refusal is the same whether or not the file exists, so a client can neither play nor
        find out about files the operator did not name."""
        folders = [Path(folder).expanduser().resolve() for folder in self.settings.control_say_dirs]
        refusal = ProtocolError(
            "say: path= is only allowed for files in --control-say-dirs "
            f"({', '.join(map(str, folders)) if folders else 'none given'}); send the audio bytes (wav=) instead, or "
            "start the engine with --control-say-dirs FOLDER")
        if not folders:
            raise refusal
        try:
            resolved = (folders[0] / Path(text).expanduser()).resolve()  # an absolute path replaces folders[0]
        except (OSError, RuntimeError, ValueError):  # a NUL byte, an unknown ~user, a symlink loop
            raise refusal from None
        if not any(resolved.is_relative_to(folder) for folder in folders):
            raise refusal
        if not resolved.is_file():
            raise ProtocolError(f"say: no audio file {text!r} in --control-say-dirs; send the path of a wav, flac "
                                "or mp3 file there")
        return resolved

    def check_scene_path(self, text: str) -> None:
        """Refuse at once what the frame loop would refuse (it checks again just before loading): the folders are
        --control-scene-dirs, else those the latest status names (none yet: only the frame loop checks them)."""
        if not self.settings.control_allow_load_scene:
            raise ProtocolError("load_scene is disabled on this engine (--no-control-allow-load-scene)")
        folders = self.settings.control_scene_dirs or self.status().get("scene_dirs")
        try:
            check_scene_source(text, folders)
        except SceneError as error:
            raise ProtocolError(str(error)) from None

    # connections --------------------------------------------------------------------------------
    def add_connection(self, conn: socket.socket) -> bool:
        """Take a new connection. Until its first message with the right token it counts only against the small
        --control-max-pending budget, and when that is full the connection waiting longest is closed: connections
        without the token can never keep out one with it (eight idle ones used to hold every slot)."""
        with self._connections_lock:
            if self._server is None:
                return False
            while len(self._pending) >= self.settings.control_max_pending:
                oldest = self._pending.pop(next(iter(self._pending)))
                oldest.evicted = True
                try:
                    oldest.conn.shutdown(socket.SHUT_RD)  # wakes its handler, which may still send why
                except OSError:
                    pass
            session = _Session(conn, time.monotonic() + self.settings.control_auth_timeout_s)
            self._sessions[conn] = self._pending[conn] = session
            return True

    def admit(self, session: _Session) -> None:
        """Move a connection that sent the right token into the authenticated slots (--control-max-connections)."""
        with self._connections_lock:
            if session.evicted or session.conn not in self._pending:
                raise ProtocolError(self.evicted_text())
            authenticated = sum(other.authenticated for other in self._sessions.values())
            if authenticated >= self.settings.control_max_connections:
                raise ProtocolError(f"busy: too many control connections ({authenticated} with the token, the limit "
                                    "of --control-max-connections); close one or raise the limit")
            del self._pending[session.conn]
            session.authenticated = True

    def drop_connection(self, conn: socket.socket) -> None:
        with self._connections_lock:
            session = self._sessions.pop(conn, None)
            self._pending.pop(conn, None)
        if session is not None:
            self.streams.end_owned_by(session)  # what arrived still plays

    def evicted_text(self) -> str:
        return (f"closed: over {self.settings.control_max_pending} connections were waiting to send a message with "
                "the token (--control-max-pending); send the first message as soon as you connect")

    def timeout_text(self, error: TimedOut, session: _Session) -> str:
        settings = self.settings
        if not session.authenticated:
            return (f"closed: no whole message with the right token within {settings.control_auth_timeout_s:g} s of "
                    "connecting (--control-auth-timeout-s); send the first message at once")
        if error.waiting:
            return f"closed: idle for {settings.control_idle_timeout_s:g} s (--control-idle-timeout-s)"
        return (f"closed: {error} (a message must arrive whole within {settings.control_message_timeout_s:g} s of "
                "its first byte, --control-message-timeout-s); send each message in one go")

    def serve_connection(self, conn: socket.socket) -> None:
        """Read and answer messages until the client leaves, breaks the framing or misses a deadline: the first
        message with the token by --control-auth-timeout-s, each message whole within --control-message-timeout-s
        of its first byte, the next one within --control-idle-timeout-s."""
        with self._connections_lock:
            session = self._sessions.get(conn)
        if session is None:
            return
        settings = self.settings
        failures = 0
        while self._server is not None:
            try:
                if session.authenticated:
                    body = read_frame(conn, settings.max_bytes, wait_s=settings.control_idle_timeout_s,
                                      message_s=settings.control_message_timeout_s)
                else:
                    body = read_frame(conn, settings.max_bytes, message_s=settings.control_message_timeout_s,
                                      deadline=session.auth_deadline)
            except TimedOut as error:
                self.send(conn, self.error(None, self.evicted_text() if session.evicted
                                           else self.timeout_text(error, session)))
                return
            except (FrameTooLarge, ProtocolError) as error:
                self.send(conn, self.error(None, str(error)))
                return  # the stream position is lost: the client must reconnect
            except (Truncated, OSError):
                body = None
            if body is None:
                if session.evicted:
                    self.send(conn, self.error(None, self.evicted_text()))
                return
            reply, token_right = self.handle(body, session)
            failures += token_right is False
            if not self.send(conn, reply) or failures >= MAX_TOKEN_FAILURES:
                return
            if token_right and not session.authenticated:
                return  # refused a slot: the reply said why

    def send(self, conn: socket.socket, reply: dict[str, Any]) -> bool:
        try:
            conn.settimeout(SEND_TIMEOUT_S)
            conn.sendall(pack(_plain(reply)))
        except (OSError, ValueError, TypeError):
            return False
        return True


def _plain(value: Any) -> Any:
    """Only msgpack-able values in replies (status fields from the engine may be numpy scalars)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def validate_fields(kind: str, message: dict[str, Any]) -> dict[str, Any]:
    schema = SCHEMAS[kind]
    fields = {k: v for k, v in message.items() if k not in ("type", "token", "id")}
    unknown = sorted(set(fields) - set(schema))
    if unknown:
        raise ProtocolError(f"{kind}: unknown field(s) {unknown}; fields: {sorted(schema) or 'none'}")
    for name, (types, required) in schema.items():
        if name not in fields:
            if required:
                raise ProtocolError(f"{kind}: missing field {name!r}")
            continue
        value = fields[name]
        if value is None and not required:
            del fields[name]
            continue
        if types != (object,) and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            names = " or ".join(t.__name__ for t in types)
            raise ProtocolError(f"{kind}: field {name!r} must be {names}, got {type(value).__name__}")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ProtocolError(f"{kind}: field {name!r} is {len(value)} characters; the limit is {MAX_TEXT}")
    return fields


def check_cue_data(fields: dict[str, Any]) -> None:
    """A cue's data, written out, is at most MAX_TEXT characters: scripts show it as a caption (laid out on the
    frame thread: 150 KB froze a frame for 4 s) and print or compare it."""
    size = len(str(fields.get("data")))  # bounded: unpack limits every string, the item count and the depth
    if size > MAX_TEXT:
        raise ProtocolError(f"cue: 'data' is {size} characters written out; the limit is {MAX_TEXT}: send less, or "
                            "several cues")


def checked_mode(mode: str) -> str:
    try:
        return normalise_mode(mode)
    except ValueError as error:
        raise ProtocolError(f"set_mode: {error}") from None


def check_framing(fields: dict[str, Any]) -> None:
    try:
        framing_zoom(fields["framing"])
    except (ValueError, TypeError) as error:
        raise ProtocolError(f"set_framing: {error}") from None
    over = float(fields.get("over", 0.0))
    if not (0.0 <= over <= MAX_FRAMING_OVER_S) or math.isnan(over):
        raise ProtocolError(f"set_framing: 'over' is seconds in [0, {MAX_FRAMING_OVER_S:.0f}], got {over!r}")
    fields["over"] = over


def decode_bytes(data: bytes, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Audio file bytes (wav, flac, mp3, ...) -> mono float32 [N] at `sample_rate`, through the engine's file decoder
    (a private temporary file: ffmpeg probes formats best from a seekable file); `max_seconds` bounds the work
    (engine.audio.sources.decode_file)."""
    with tempfile.TemporaryDirectory(prefix="syncanim-say-") as folder:
        path = Path(folder) / "speech"
        path.write_bytes(data)
        return decode_file(path, sample_rate, max_seconds)


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    # socketserver's backlog of 5 drops the SYNs of a burst (100 clients connecting at once): each waits 1-3 s for
    # its retry, a client with the token among them too.
    request_queue_size = 128
    # Daemon threads, joined by ControlServer.stop: a crash that never reaches stop() must not keep the process
    # alive waiting on idle clients.
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name="control-connection", daemon=True)
        self.control.track_thread(thread)
        thread.start()

    def __init__(self, address: tuple[str, int], handler: type, control: ControlServer) -> None:
        self.control = control
        super().__init__(address, handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.control.add_connection(request)  # False only while stopping

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would only print the traceback to stderr; a bug here ends one connection, never the server.
        log.exception("control: a connection from %s failed", client_address)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        control: ControlServer = self.server.control
        try:
            control.serve_connection(self.request)
        finally:
            control.drop_connection(self.request)


# systems -------------------------------------------------------------------------------------------
def start_control(world: World) -> None:
    """Startup: open the socket and print where it listens and the token to use."""
    settings = world.resource(ControlSettings)
    audio = world.get_resource(AudioSettings)
    server = ControlServer(settings, audio.sample_rate if audio else 16000)
    host, port = server.start()
    world.insert_resource(server)
    publish_status(world, server)
    hidden = f" (the one given by --control-token, --control-token-file or ${TOKEN_ENV})" \
        if settings.control_token else ""
    print(f"control: listening on {host}:{port}; token {server.token if not hidden else '***'}{hidden}", flush=True)


def drain_control(world: World) -> None:
    """Move every waiting control message into the ControlRequest channel."""
    server = world.get_resource(ControlServer)
    if server is None:
        return
    channel = world.messages(ControlRequest)
    for request in server.take_requests():
        channel.send(request)


def publish_control_status(world: World) -> None:
    """Last stage: give the server thread this frame's state for `status` replies and name checks."""
    server = world.get_resource(ControlServer)
    if server is not None:
        server.streams.expire()
        publish_status(world, server)


def apply_control(world: World) -> None:
    """Carry out this frame's control messages; one that fails is reported (overlay) and the rest go on."""
    for request in world.messages(ControlRequest).read(apply_control):
        f = request.fields
        try:
            if request.type == "say" and request.clip is None:
                actions.speak_text(world, f["text"], avatar=f.get("avatar"), voice=f.get("voice"),
                                   interrupt=f.get("interrupt", False))
            elif request.type == "say":
                actions.speak(world, request.clip, avatar=f.get("avatar"), voice=f.get("voice"),
                              interrupt=f.get("interrupt", False), caption=f.get("text"))
            elif request.type == "stream_start":
                actions.speak_stream(world, request.stream, avatar=f.get("avatar"), voice=f.get("voice"),
                                     interrupt=f.get("interrupt", False), caption=f.get("text"))
            elif request.type == "stop":
                actions.stop_speech(world, avatar=f.get("avatar"), voice=f.get("voice"))
            elif request.type == "set_mode":
                actions.set_mode(world, f["mode"], avatar=f.get("avatar"))
            elif request.type == "set_framing":
                actions.start_framing(world, f["framing"], over=f.get("over", 0.0), avatar=f.get("avatar"))
            elif request.type == "load_scene":
                request_scene(world, Path(f["path"]), request.id)
        except Exception as error:
            if request.stream is not None:
                request.stream.cancel()  # its next chunk is refused with the reason to start again
            world.resource(Diagnostics).report(f"control {request.type}", error)


def request_scene(world: World, path: Path, request_id: Any = None) -> None:
    """Hand the scene to the host, which loads it at the next FIRST stage; the client was answered 'queued' and
    reads the outcome from `status` (`last_scene_load`): waiting for it would block a stepped engine."""
    host = world.get_resource(SceneHost)
    if host is None:
        raise RuntimeError("load_scene: this engine was not started with a hosted scene (syncanim run SCENE.py)")
    host.pending = path
    host.last_load = SceneLoad(str(path), request_id)


def publish_status(world: World, server: ControlServer) -> None:
    from engine.scene.timeline import Scripts

    time = world.resource(Time)
    scripts = world.get_resource(Scripts)
    playback = world.get_resource(AudioPlayback)
    host = world.get_resource(SceneHost)
    avatars = {a.name: {"zoom": round(f.zoom, 4) if (f := world.get(e, Framing)) else None}
               for e, a in world.query(Avatar)}
    server.publish_status({
        "frame": time.frame, "time_s": round(time.elapsed, 4),
        "scene": str(host.path) if host else None, "reloads": host.reloads if host else 0,
        "scene_dirs": [str(folder) for folder in scene_folders(world, host)] if host else None,
        "last_scene_load": host.last_load.as_status() if host and host.last_load else None,
        "voices": list(playback.voices) if playback else [],
        "speaking": {n: bool(v.busy) for n, v in playback.mixer.voices.items()} if playback else {},
        "queued_s": {n: round(v.queued_s, 3) for n, v in playback.mixer.voices.items()} if playback else {},
        "avatars": avatars, "queued": server.requests.qsize(), "streams": len(server.streams),
        "scripts": [run.name for run in scripts.running] if scripts else [],
        "errors": {k: v.message for k, v in world.resource(Diagnostics).errors.items()},
        "frame_ms": recent_frame_times(world),
    })


def recent_frame_times(world: World) -> tuple[float, ...]:
    """The work (ms) of the last frames (up to 300, 12 s at 25 fps), without the wait for the next one."""
    timings = world.get_resource(SystemTimings)
    return tuple(timings.frame_ms) if timings is not None else ()


def summarise_frame_times(times: tuple[float, ...]) -> dict[str, float]:
    """p50, p99 and max of frame times (ms) and their count: a frame loop falling behind its rate shows here first."""
    if not times:
        return {}
    recent = np.asarray(times, np.float64)
    p50, p99 = np.percentile(recent, [50, 99])
    return {"frames": len(recent), "p50": round(float(p50), 2), "p99": round(float(p99), 2),
            "max": round(float(recent.max()), 2)}


def control_plugin(app: App) -> None:
    """Open the control socket at startup (ControlSettings.control must be set) and drain it every frame."""
    settings = app.world.get_resource(ControlSettings)
    if settings is None or settings.control is None:
        raise ValueError("control_plugin needs ControlSettings(control='127.0.0.1:PORT') inserted first")
    app.add_system(start_control, Stage.STARTUP, after=[optional("engine.audio.plugin.open_audio")])
    app.add_system(drain_control, Stage.UPDATE)
    app.add_system(apply_control, Stage.UPDATE, after=[drain_control])
    app.add_system(publish_control_status, Stage.LAST)

    def stop() -> None:
        server = app.world.get_resource(ControlServer)
        if server is not None:
            server.stop()

    app.on_shutdown(stop)


__all__ = ["SCHEMAS", "ControlRequest", "ControlServer", "ControlSettings", "apply_control", "control_plugin",
           "drain_control", "publish_control_status", "start_control"]
