"""ControlSettings: the control socket's address, token and limits (a light module: no sockets, no msgpack)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class ControlSettings:
    """Resource and CLI config of the control socket, through which another program (a chat or TTS pipeline)
    drives a running engine. Field names carry the `control` prefix so they read as --control, --control-token, ...
    """

    control: str | None = None
    """Listen for control messages on HOST:PORT (e.g. 127.0.0.1:7878; port 0 picks a free one); None: no socket."""
    control_token: str | None = None
    """Shared secret every message must carry; None generates one and prints it at start."""
    control_allow_remote: bool = False
    """Allow a non-loopback HOST (anyone who can reach it and knows the token can make the engine speak and load
    scene files)."""
    control_max_message_mb: float = 16.0
    """Largest message accepted, in MiB (a 16 kHz 16-bit wav is about 1.9 MiB a minute); bigger ones are refused
    and their connection closed."""
    control_max_clip_s: float = 300.0
    """Longest speech clip a `say` may carry, in seconds after decoding."""
    control_max_connections: int = 8
    """Clients connected at once; more are answered with an error and closed."""
    control_queue: int = 64
    """Messages waiting for the frame loop; a `say` arriving when it is full is answered 'busy'."""
    control_idle_timeout_s: float = 600.0
    """A connection that sends nothing for this long is closed."""
    control_allow_load_scene: bool = True
    """Honour `load_scene` (it runs the named Python file in the engine)."""

    def __post_init__(self) -> None:
        if self.control is not None:
            host, _ = parse_address(self.control)
            if not self.control_allow_remote and not is_loopback(host):
                raise ValueError(f"--control {self.control}: {host} is not a loopback address; use 127.0.0.1, or pass "
                                 "--control-allow-remote to listen on the network")
        for name in ("control_max_message_mb", "control_max_clip_s", "control_idle_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ControlSettings.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("control_max_connections", "control_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"ControlSettings.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.control_token is not None and len(self.control_token) < 8:
            raise ValueError("--control-token must be at least 8 characters (or leave it out to get a random one)")

    @property
    def max_bytes(self) -> int:
        return int(self.control_max_message_mb * 1024 * 1024)


def parse_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:7878', 'localhost:7878', ':7878' or '7878' -> (host, port); loopback when no host is given."""
    host, sep, port = str(text).strip().rpartition(":")
    if not sep:
        host = ""
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"a control address is HOST:PORT like 127.0.0.1:7878, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"control port must be in 0..65535, got {number} in {text!r}")
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
