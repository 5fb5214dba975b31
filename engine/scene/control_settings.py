"""ControlSettings: the control socket's address, token and limits (a light module: no sockets, no msgpack)."""
from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class ControlSettings:
    """Resource and CLI config of the control socket, through which another program (a chat or TTS pipeline)
    drives a running engine. Field names carry the `control` prefix so they read as --control, --control-token, ...
    """

    control: str | None = None
    """Listen for control messages on HOST:PORT (e.g. 127.0.0.1:7878; port 0 picks a free one); None: no socket."""
    control_token: str | None = None
    """Shared secret every message must carry; None takes --control-token-file, else $SYNCANIM_CONTROL_TOKEN, else
    generates one and prints it at start. A token given here is visible to every local user in the process list."""
    control_token_file: Path | None = None
    """Read the token from this file (first line); it must be readable by its owner only (chmod 600)."""
    control_allow_remote: bool = False
    """Allow a non-loopback HOST (anyone who can reach it and knows the token can make the engine speak and load
    scene files)."""
    control_max_message_mb: float = 16.0
    """Largest message accepted, in MiB (a 16 kHz 16-bit wav is about 1.9 MiB a minute); bigger ones are refused
    and their connection closed."""
    control_max_clip_s: float = 300.0
    """Longest speech clip a `say` may carry, in seconds after decoding."""
    control_max_queued_s: float = 600.0
    """Most speech waiting to be played, all voices together, in seconds (about 38 MB at 16 kHz); a `say` that would
    queue more is answered 'busy' (an interrupting one replaces what its voice had queued)."""
    control_max_connections: int = 8
    """Clients connected with the token at once; one more is answered 'busy' and closed. Connections that have not
    yet sent the token never take these slots (see --control-max-pending)."""
    control_max_pending: int = 16
    """Connections that have not yet sent a message with the right token; when one more arrives, the one waiting
    longest is closed, so clients without the token cannot keep out one with it."""
    control_auth_timeout_s: float = 10.0
    """A new connection must send a whole message with the right token within this, or it is closed."""
    control_message_timeout_s: float = 30.0
    """From its first byte, a message must arrive whole within this (a per-read timeout alone let a client hold a
    connection forever with one byte every few seconds)."""
    control_queue: int = 64
    """Messages waiting for the frame loop; a `say` arriving when it is full is answered 'busy'."""
    control_idle_timeout_s: float = 600.0
    """A connection that sends nothing for this long is closed."""
    control_say_dirs: tuple[Path, ...] = ()
    """Folders `say path=FILE` may play audio files from (subfolders included; a relative FILE is in the first).
    Empty, the default: path= is refused and clients send the audio bytes (wav=), so no client can make the engine
    read, or learn which files exist, outside folders the operator named."""
    control_allow_load_scene: bool = True
    """Honour `load_scene` (it runs the named Python file in the engine), for files in --control-scene-dirs."""
    control_scene_dirs: tuple[Path, ...] = ()
    """Folders `load_scene` may load scene files from (subfolders included); empty: the folder of the scene the
    engine was started with."""

    def __post_init__(self) -> None:
        if self.control is not None:
            host, _ = parse_address(self.control)
            if not self.control_allow_remote and not is_loopback(host):
                raise ValueError(f"--control {self.control}: {host} is not a loopback address; use 127.0.0.1, or pass "
                                 "--control-allow-remote to listen on the network")
        for name in ("control_max_message_mb", "control_max_clip_s", "control_max_queued_s", "control_idle_timeout_s",
                     "control_auth_timeout_s", "control_message_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ControlSettings.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("control_max_connections", "control_queue", "control_max_pending"):
            if getattr(self, name) < 1:
                raise ValueError(f"ControlSettings.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.control_token is not None and len(self.control_token) < 8:
            raise ValueError("--control-token must be at least 8 characters (or leave it out to get a random one)")
        if self.control_token_file is not None:
            if self.control_token is not None:
                raise ValueError(f"--control-token and --control-token-file {self.control_token_file} both give a "
                                 "token; pass only one")
            read_token_file(self.control_token_file)  # refused at start, not when the socket opens
        for folder in self.control_scene_dirs:
            if not Path(folder).expanduser().is_dir():
                raise ValueError(f"--control-scene-dirs {folder}: no such folder; name an existing folder of scene "
                                 "files")
        for folder in self.control_say_dirs:
            if not Path(folder).expanduser().is_dir():
                raise ValueError(f"--control-say-dirs {folder}: no such folder; name an existing folder of audio "
                                 "files")

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


TOKEN_ENV = "SYNCANIM_CONTROL_TOKEN"
"""Environment variable with the control token (read by the engine and, by default, by ControlClient)."""
MAX_TOKEN_FILE_BYTES = 4096


class ControlSettingsError(ValueError):
    """A control setting that cannot be used (a token file others can read, a bad $SYNCANIM_CONTROL_TOKEN); the
    message names the value and the fix."""


def read_token_file(path: str | Path) -> str:
    """The token in `path` (its first line); refused unless only its owner may read it: a token in a file others
    can read is as public as one on the command line."""
    path = Path(path).expanduser()
    flag = f"--control-token-file {path}"
    try:
        info = path.stat()
    except OSError as error:
        raise ControlSettingsError(
            f"{flag}: {error.strerror}; write the token into it with "
            f"`(umask 077; python -c 'import secrets; print(secrets.token_urlsafe(18))' > {path})`") from None
    if not stat.S_ISREG(info.st_mode):
        raise ControlSettingsError(f"{flag} is not a regular file; pass a file holding the token")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ControlSettingsError(f"{flag} has mode {mode:04o}: group or other users can read or change it; run "
                                   f"`chmod 600 {path}`")
    if info.st_size > MAX_TOKEN_FILE_BYTES:
        raise ControlSettingsError(f"{flag} is {info.st_size} bytes; it holds one line, the token")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ControlSettingsError(f"{flag} is not readable text ({error}); write the token into it as one line") \
            from None
    token = lines[0].strip() if lines else ""
    if len(token) < 8:
        raise ControlSettingsError(f"{flag}: the token on its first line must be at least 8 characters, got "
                                   f"{len(token)}")
    return token


def with_token(settings: ControlSettings, environ: dict[str, str] | None = None) -> ControlSettings:
    """`settings` with the token filled in from --control-token-file, else $SYNCANIM_CONTROL_TOKEN (when neither
    nor --control-token gives one, the server makes up a random one)."""
    environ = os.environ if environ is None else environ
    if settings.control_token_file is not None:
        return replace(settings, control_token=read_token_file(settings.control_token_file), control_token_file=None)
    if settings.control_token is None and environ.get(TOKEN_ENV):
        token = environ[TOKEN_ENV].strip()
        if len(token) < 8:
            raise ControlSettingsError(f"${TOKEN_ENV} must be at least 8 characters, got {len(token)}")
        return replace(settings, control_token=token)
    return settings


def changed_fields(settings: ControlSettings) -> frozenset[str]:
    """Fields of `settings` that differ from the defaults (what an operator evidently set)."""
    default = ControlSettings()
    return frozenset(f.name for f in fields(settings) if getattr(settings, f.name) != getattr(default, f.name))


@dataclass(frozen=True)
class OperatorControl:
    """Resource: the control settings the operator gave (command line, token file, environment) and which fields
    they set. A scene that opens its own control socket gets its own defaults only for the other fields."""

    settings: ControlSettings
    given: frozenset[str]

    def over(self, scene: ControlSettings) -> ControlSettings:
        """`scene`'s settings with every field the operator set taken from the operator."""
        return replace(scene, **{name: getattr(self.settings, name) for name in self.given})
