"""Control protocol wire format: each message is a 4-byte big-endian length, then that many bytes of msgpack (a map).

Requests carry `type`, `token` and an optional `id` (echoed in the reply); replies carry `ok` and either the
result fields or `error`. The message types and their fields are listed in `engine.scene.control.SCHEMAS`; a message
that passed them reaches the frame loop and scene scripts as a `ControlRequest`.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    from engine.audio.sources import AudioClip

HEADER = struct.Struct(">I")
DEFAULT_PORT = 7878


@dataclass
class ControlRequest:
    """Message: a validated control message for the frame loop (and for scene scripts' `on_message`)."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    """The message's own fields (no token; audio bytes replaced by `clip`)."""
    clip: AudioClip | None = None
    """The decoded speech of a `say`."""
    id: Any = None


class ProtocolError(ValueError):
    """A message that breaks the protocol; its text is sent back to the client as the error."""


class FrameTooLarge(ProtocolError):
    """The length prefix announces more than the server accepts (the connection is then closed)."""


class Truncated(ConnectionError):
    """The peer closed the connection in the middle of a message."""


def pack(message: dict[str, Any]) -> bytes:
    """A map -> one framed message (length prefix + msgpack)."""
    body = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def recv_exactly(sock: socket.socket, count: int) -> bytes | None:
    """`count` bytes, or None when the peer closed before sending any; Truncated if it closed halfway."""
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(min(count - len(chunks), 1 << 20))
        if not chunk:
            if chunks:
                raise Truncated(f"connection closed after {len(chunks)} of {count} bytes")
            return None
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: socket.socket, max_bytes: int) -> bytes | None:
    """The next message body, or None at a clean end of the connection."""
    header = recv_exactly(sock, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > max_bytes:
        raise FrameTooLarge(f"message of {length} bytes is over the limit of {max_bytes} bytes "
                            "(--control-max-message-mb); send a path instead of the audio bytes")
    if length == 0:
        raise ProtocolError("empty message; send a msgpack map with 'type' and 'token'")
    body = recv_exactly(sock, length)
    if body is None:
        raise Truncated(f"connection closed before a message of {length} bytes")
    return body


def unpack(body: bytes) -> dict[str, Any]:
    """msgpack bytes -> a map with string keys; ProtocolError for anything else."""
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"not valid msgpack ({type(error).__name__}: {error})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"a message is a msgpack map, got {type(message).__name__}")
    if not all(isinstance(key, str) for key in message):
        raise ProtocolError("message keys must be strings")
    return message
