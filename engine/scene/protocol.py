"""Control protocol wire format: each message is a 4-byte big-endian length, then that many bytes of msgpack (a map).

Requests carry `type`, `token` and an optional `id` (echoed in the reply); replies carry `ok` and either the
result fields or `error`. The message types and their fields are listed in `engine.scene.control.SCHEMAS`; a message
that passed them reaches the frame loop and scene scripts as a `ControlRequest`.
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    from engine.audio.sources import AudioClip
    from engine.audio.speech_stream import SpeechStream

HEADER = struct.Struct(">I")
DEFAULT_PORT = 7878

# What one message may hold apart from its audio bytes. Everything a client sends reaches scene scripts, which print,
# compare and lay it out on the frame thread: a 150 KB caption froze a frame for 4 s, data nested 1000 deep raised
# RecursionError in a script. msgpack itself checks each string's and container's declared length before
# allocating; the hooks in `unpack` count items and depth as containers complete.
MAX_TEXT = 2000
"""Longest string anywhere in a message (captions, names, paths, keys, cue data), in characters."""
MAX_DEPTH = 16
"""Deepest nesting of maps and lists, the message map itself being 1."""
MAX_LIST = 256
"""Most items in one list."""
MAX_MAP = 64
"""Most keys in one map."""
MAX_ITEMS = 2048
"""Most values in all the maps and lists of one message together."""


@dataclass
class ControlRequest:
    """Message: a validated control message for the frame loop (and for scene scripts' `on_message`)."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    """The message's own fields (no token; audio bytes replaced by `clip`)."""
    clip: AudioClip | None = None
    """The decoded speech of a `say` (None for one whose `text` the engine speaks)."""
    stream: SpeechStream | None = None
    """The speech of a `stream_start`, still arriving."""
    id: Any = None


class ProtocolError(ValueError):
    """A message that breaks the protocol; its text is sent back to the client as the error."""


class FrameTooLarge(ProtocolError):
    """The length prefix announces more than the server accepts (the connection is then closed)."""


class Truncated(ConnectionError):
    """The peer closed the connection in the middle of a message."""


class TimedOut(ProtocolError):
    """Nothing arrived in time (`waiting`: before a message began) or a message did not finish by its deadline."""

    def __init__(self, text: str, waiting: bool) -> None:
        super().__init__(text)
        self.waiting = waiting


def pack(message: dict[str, Any]) -> bytes:
    """A map -> one framed message (length prefix + msgpack)."""
    body = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def recv_exactly(sock: socket.socket, count: int, deadline: float | None = None) -> bytearray | None:
    """`count` bytes, or None when the peer closed before sending any; Truncated if it closed halfway. The buffer
    grows as bytes arrive (what the peer sent, never what it announced) and is returned as it is, not copied. With
    a `deadline` (time.monotonic()) all of them must arrive by then, else TimedOut: a per-read timeout alone lets a
    peer hold the connection forever with one byte now and then."""
    chunks = bytearray()
    while len(chunks) < count:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimedOut(f"message incomplete at its deadline ({len(chunks)} of {count} bytes)", False)
            sock.settimeout(left)
        try:
            chunk = sock.recv(min(count - len(chunks), 1 << 20))
        except TimeoutError:
            if deadline is None:
                raise
            raise TimedOut(f"message incomplete at its deadline ({len(chunks)} of {count} bytes)", False) from None
        if not chunk:
            if chunks:
                raise Truncated(f"connection closed after {len(chunks)} of {count} bytes")
            return None
        chunks += chunk
    return chunks


def read_frame(sock: socket.socket, max_bytes: int, *, wait_s: float | None = None, message_s: float | None = None,
               deadline: float | None = None) -> bytearray | None:
    """The next message body, or None at a clean end of the connection.

    Without the keywords the socket's own timeout applies to each read. `wait_s`: longest wait for the first byte;
    `message_s`: from its first byte, the whole message must arrive within this; `deadline` (time.monotonic()): both
    end by then at the latest. TimedOut says which one ran out.
    """
    if wait_s is not None or deadline is not None:
        wait = min(x for x in (wait_s, None if deadline is None else deadline - time.monotonic()) if x is not None)
        if wait <= 0:
            raise TimedOut("no message in time", True)
        sock.settimeout(wait)
        try:
            first = sock.recv(1)
        except TimeoutError:
            raise TimedOut("no message in time", True) from None
        if not first:
            return None
        ends = [x for x in (deadline, None if message_s is None else time.monotonic() + message_s) if x is not None]
        finish = min(ends) if ends else None
        header = first + _recv_rest(sock, HEADER.size - 1, finish)
    else:
        finish = None
        header = recv_exactly(sock, HEADER.size)
        if header is None:
            return None
    (length,) = HEADER.unpack(header)
    if length > max_bytes:
        raise FrameTooLarge(f"message of {length} bytes is over the limit of {max_bytes} bytes "
                            "(--control-max-message-mb); send a path instead of the audio bytes")
    if length == 0:
        raise ProtocolError("empty message; send a msgpack map with 'type' and 'token'")
    return _recv_rest(sock, length, finish)


def _recv_rest(sock: socket.socket, count: int, deadline: float | None) -> bytearray:
    body = recv_exactly(sock, count, deadline)
    if body is None:
        raise Truncated(f"connection closed before the {count} bytes still due")
    return body


def unpack(body: bytes | bytearray) -> dict[str, Any]:
    """msgpack bytes -> a map with string keys, within the limits above; ProtocolError for anything else."""
    limits = _Limits()
    try:
        message = msgpack.unpackb(
            body, raw=False, strict_map_key=True, use_list=True, list_hook=limits.on_list,
            object_pairs_hook=limits.on_map, ext_hook=_refuse_ext, max_str_len=4 * MAX_TEXT,
            max_bin_len=len(body), max_array_len=MAX_LIST, max_map_len=MAX_MAP, max_ext_len=0)
    except ProtocolError:
        raise
    except Exception as error:  # msgpack raises several unrelated types on garbage
        text = str(error) or "nested too deep"  # StackError has no text
        raise ProtocolError(f"not valid msgpack ({type(error).__name__}: {text})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"a message is a msgpack map, got {type(message).__name__}")
    return message


class _Limits:
    """msgpack hooks that refuse a message as soon as a completed container breaks a limit (counts and depth are
    known bottom-up: a container completes after everything in it)."""

    def __init__(self) -> None:
        self.items = 0
        self.depths: dict[int, int] = {}  # id(container) -> its nesting depth; all stay alive while unpacking

    def on_list(self, items: list[Any]) -> list[Any]:
        return self._check(items, items)

    def on_map(self, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
        for key, value in pairs:
            if not isinstance(key, str):
                raise ProtocolError(f"map keys must be strings, got {type(key).__name__}")
            if isinstance(value, str) and len(value) > MAX_TEXT:  # named here, where the field is known
                raise ProtocolError(f"field {key[:40]!r} is {len(value)} characters; the limit is {MAX_TEXT}")
        return self._check(dict(pairs), [value for pair in pairs for value in pair])

    def _check(self, container: Any, values: list[Any]) -> Any:
        self.items += len(values)
        if self.items > MAX_ITEMS:
            raise ProtocolError(f"message holds more than {MAX_ITEMS} values, the limit; send less data")
        depth = 1
        for value in values:
            if isinstance(value, str) and len(value) > MAX_TEXT:
                raise ProtocolError(f"a string of {len(value)} characters is over the limit of {MAX_TEXT}; "
                                    "send shorter text")
            if isinstance(value, (list, dict)):
                depth = max(depth, self.depths.get(id(value), 1) + 1)
        if depth > MAX_DEPTH:
            raise ProtocolError(f"data nested {depth} deep is over the limit of {MAX_DEPTH}; send flatter data")
        self.depths[id(container)] = depth
        return container


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension type {code} is not accepted; send maps, lists, strings and numbers")
