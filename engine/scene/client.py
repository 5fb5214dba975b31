"""ControlClient: drive a running engine over its control socket (`syncanim run SCENE.py --control 127.0.0.1:PORT`).

    from engine.scene.client import ControlClient

    with ControlClient("127.0.0.1:7878", token="...") as engine:
        engine.say(wav_bytes, interrupt=True, text="Hello!")   # or engine.say(path="/tmp/hello.wav")
        engine.say(text="Hello!")                              # the engine's own voice speaks it
        with engine.say_stream(sample_rate=22050) as speech:   # speech still being made: heard from chunk one
            for samples in tts_chunks:
                speech.write(samples)
        engine.set_framing("max", over=1.0)
        print(engine.status())

Every call returns the engine's reply (a dict with `ok`); a reply with ok=False raises ControlError unless
check=False. The token defaults to $SYNCANIM_CONTROL_TOKEN.
"""
from __future__ import annotations

import io
import itertools
import os
import socket
import time
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from engine.scene.control_settings import TOKEN_ENV, parse_address
from engine.scene.protocol import pack, read_frame, unpack

MAX_REPLY_BYTES = 16 * 1024 * 1024


class ControlError(RuntimeError):
    """The engine answered a message with an error."""


class ControlClient:
    """One connection to a running engine; messages are answered in order."""

    def __init__(self, address: str = "127.0.0.1:7878", token: str | None = None, timeout: float = 10.0) -> None:
        self.token = token or os.environ.get(TOKEN_ENV)
        if not self.token:
            raise ValueError(f"no control token: pass token= (printed by the engine at start) or set ${TOKEN_ENV}")
        host, port = parse_address(address)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._ids = itertools.count(1)
        try:  # authenticate at once: the engine closes connections that wait long without the token
            self.status()
        except Exception:
            self.sock.close()
            raise

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def request(self, type: str, *, check: bool = True, **fields: Any) -> dict[str, Any]:
        """Send one message and wait for its reply."""
        message_id = next(self._ids)
        message = {"type": type, "token": self.token, "id": message_id,
                   **{k: v for k, v in fields.items() if v is not None}}
        self.sock.sendall(pack(message))
        body = read_frame(self.sock, MAX_REPLY_BYTES)
        if body is None:
            raise ConnectionError("the engine closed the control connection")
        reply = unpack(body)
        if check and not reply.get("ok"):
            raise ControlError(reply.get("error", "unknown error"))
        return reply

    def say(self, wav: bytes | np.ndarray | None = None, *, path: str | Path | None = None, interrupt: bool = False,
            avatar: str | None = None, voice: str | None = None, text: str | None = None,
            sample_rate: int = 16000) -> dict[str, Any]:
        """Speak audio file bytes (wav/flac/mp3), mono samples [N] in [-1, 1] at `sample_rate` (a TTS model's
        output), or a file on the engine machine (`path`); `text` is shown as a caption while it is heard."""
        if isinstance(wav, np.ndarray):
            wav = wav_bytes(wav, sample_rate)
        return self.request("say", wav=wav, path=None if path is None else str(path), interrupt=interrupt,
                            avatar=avatar, voice=voice, text=text)

    def say_stream(self, chunks: Iterable[np.ndarray | bytes | tuple[np.ndarray | bytes, str]] | None = None, *,
                   sample_rate: int = 16000, interrupt: bool = False, avatar: str | None = None,
                   voice: str | None = None, text: str | None = None) -> SpeechWriter | dict[str, Any]:
        """Speak audio while it is still being made (a TTS pipeline's output): the avatar starts with the first
        chunk. Chunks are mono samples in [-1, 1] at `sample_rate` (or 16-bit PCM bytes), of any length; a
        (chunk, text) pair captions that piece. Without `chunks`, returns a writer:

            with engine.say_stream(sample_rate=22050) as speech:
                for samples in tts(text):
                    speech.write(samples)

        With `chunks` (any iterable, e.g. a generator), sends them all, ends the stream and returns the last reply.
        `text` captions the whole stream (default: the pieces' texts as each is heard)."""
        reply = self.request("stream_start", rate=int(sample_rate), format="s16", interrupt=interrupt,
                             avatar=avatar, voice=voice, text=text)
        writer = SpeechWriter(self, reply["stream"])
        if chunks is None:
            return writer
        with writer:
            for chunk in chunks:
                samples, piece = chunk if isinstance(chunk, tuple) else (chunk, None)
                writer.write(samples, text=piece)
        return writer.last_reply

    def stop(self, *, avatar: str | None = None, voice: str | None = None) -> dict[str, Any]:
        return self.request("stop", avatar=avatar, voice=voice)

    def set_mode(self, mode: str, *, avatar: str | None = None) -> dict[str, Any]:
        return self.request("set_mode", mode=mode, avatar=avatar)

    def set_framing(self, framing: str | float, *, over: float = 0.0, avatar: str | None = None) -> dict[str, Any]:
        return self.request("set_framing", framing=framing, over=over, avatar=avatar)

    def load_scene(self, path: str | Path, wait_s: float = 0.0) -> dict[str, Any]:
        """Load a scene file (from a folder the engine allows). The frame loop loads it; with `wait_s` > 0 wait that
        long for the outcome and return its `last_scene_load` status (ControlError if it failed), else return once
        it is queued."""
        reply = self.request("load_scene", path=str(Path(path).resolve()))
        deadline = time.monotonic() + wait_s
        while wait_s > 0:
            load = self.status().get("last_scene_load") or {}
            if load.get("id") == reply.get("id") and load.get("state") != "pending":
                if not load.get("ok"):
                    raise ControlError(load.get("error") or "the scene failed to load")
                return load
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: not loaded after {wait_s:g} s (is the engine's frame loop running?)")
            time.sleep(0.05)
        return reply

    def cue(self, name: str, data: Any = None) -> dict[str, Any]:
        """A message only scene scripts react to (`d.on_message('cue', name=...)`)."""
        return self.request("cue", name=name, data=data)

    def status(self) -> dict[str, Any]:
        return self.request("status")


class SpeechWriter:
    """An open speech stream: `write` chunks, then `close` (or leave the `with` block) to end it."""

    def __init__(self, client: ControlClient, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.last_reply: dict[str, Any] = {}
        self.closed = False

    def write(self, samples: np.ndarray | bytes, text: str | None = None) -> dict[str, Any]:
        """Send one chunk; the reply carries `buffered_s` (arrived, not yet played) and `underruns`."""
        pcm = samples if isinstance(samples, bytes) else pcm16_bytes(samples)
        self.last_reply = self.client.request("stream_audio", stream=self.stream_id, pcm=pcm, text=text)
        return self.last_reply

    def close(self) -> dict[str, Any]:
        if not self.closed:
            self.closed = True
            self.last_reply = self.client.request("stream_end", stream=self.stream_id)
        return self.last_reply

    def __enter__(self) -> SpeechWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pcm16_bytes(samples: np.ndarray) -> bytes:
    """Mono float samples [N] in [-1, 1] -> little-endian 16-bit PCM."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"speech chunks are mono samples [N]; got shape {samples.shape} (average the channels)")
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def wav_bytes(samples: np.ndarray, sample_rate: int = 16000) -> bytes:
    """Mono float samples [N] in [-1, 1] -> a 16-bit PCM wav file's bytes."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"say() takes mono samples [N]; got shape {samples.shape} (average the channels)")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm16_bytes(samples))
    return buffer.getvalue()


__all__ = ["ControlClient", "ControlError", "SpeechWriter", "TOKEN_ENV", "pcm16_bytes", "wav_bytes"]
