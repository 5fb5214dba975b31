"""Stream speech into a running engine as a TTS pipeline does: audio goes out chunk by chunk while it is being made,
and the avatar starts speaking with the first chunk.

    syncanim run scenes/kiosk.py --control 127.0.0.1:7878                # prints the token
    python scripts/say_stream.py "Hello there. Welcome to the museum." --token TOKEN
    espeak-ng --stdout "Hello there" | python scripts/say_stream.py - --wav --token TOKEN   # any process's output

With TEXT, each sentence is synthesised (Piper's voice where installed, else espeak-ng) and its audio is sent in
chunks of --chunk-ms at the pace of speech, the way streaming TTS services deliver it (--realtime 0: as fast as the
socket takes it). With '-', raw PCM from stdin (16-bit mono at --rate, or a wav stream with --wav) is forwarded as it
arrives. Every chunk sent is logged as a JSON line on stdout ({"chunk", "samples", "sent": unix time}), so what the
engine played can be set against what had been sent. The token may come from $SYNCANIM_CONTROL_TOKEN.
"""
from __future__ import annotations

import json
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from engine.audio.speak import SpeechSettings, SpeechSynthesizer  # noqa: E402
from engine.scene.client import ControlClient  # noqa: E402


@dataclass(frozen=True)
class StreamOptions:
    """Stream TEXT (or stdin's PCM) into the engine's control socket, chunk by chunk."""

    text: Annotated[str, tyro.conf.Positional]
    """What to say; '-' forwards raw PCM (or a wav stream, --wav) from stdin as it arrives."""
    control: str = "127.0.0.1:7878"
    """The engine's --control address."""
    token: str | None = None
    """The engine's control token (printed at its start); default $SYNCANIM_CONTROL_TOKEN."""
    voice: str = "joe"
    """The voice that speaks TEXT: 'joe' (Piper), a Piper .onnx file, or 'espeak[:VOICE]'."""
    chunk_ms: float = 40.0
    """Audio per message."""
    realtime: float = 1.0
    """Send at this many times the pace of speech (0: as fast as possible)."""
    rate: int = 16000
    """Sample rate of stdin's raw PCM (a wav stream says its own)."""
    wav: bool = False
    """stdin carries a wav stream (espeak-ng --stdout) rather than raw PCM."""
    interrupt: bool = False
    """Cut what the avatar is saying instead of queueing after it."""


def sentences(options: StreamOptions) -> Iterator[tuple[np.ndarray, str | None]]:
    """(samples at 16 kHz, text) per sentence, each made when the previous one has been sent."""
    voice = SpeechSynthesizer(SpeechSettings(voice=options.voice))
    for sentence, samples in voice.sentences(options.text):
        yield samples, sentence


def stdin_chunks(options: StreamOptions, chunk: int) -> Iterator[tuple[bytes, int]]:
    """stdin's 16-bit mono PCM in pieces of `chunk` samples as it arrives; (bytes, its sample rate)."""
    source = sys.stdin.buffer
    rate = options.rate
    if options.wav:
        with wave.open(source, "rb") as stream:  # reads the header only; the frames follow as they come
            if stream.getsampwidth() != 2 or stream.getnchannels() != 1:
                raise SystemExit("--wav: stdin must be 16-bit mono (espeak-ng --stdout is)")
            rate = stream.getframerate()
    while piece := source.read(chunk * 2):
        yield piece[:len(piece) // 2 * 2], rate


def send(writer, pcm: bytes | np.ndarray, text: str | None, count: int, samples: int) -> None:
    writer.write(pcm, text=text)
    print(json.dumps({"chunk": count, "samples": samples, "sent": time.time()}), flush=True)


def main(options: StreamOptions) -> int:
    with ControlClient(options.control, token=options.token) as engine:
        if options.text == "-":
            chunks = stdin_chunks(options, max(1, int(options.rate * options.chunk_ms / 1000)))
            first = next(chunks, None)
            if first is None:
                return 0
            with engine.say_stream(sample_rate=first[1], interrupt=options.interrupt) as writer:
                for count, (pcm, _) in enumerate([first, *chunks]):
                    send(writer, pcm, None, count, len(pcm) // 2)
            return 0
        step = int(16000 * options.chunk_ms / 1000)
        with engine.say_stream(interrupt=options.interrupt) as writer:
            begin, sent, count = time.monotonic(), 0, 0
            for samples, sentence in sentences(options):
                for start in range(0, len(samples), step):
                    send(writer, samples[start:start + step], sentence if start == 0 else None, count,
                         len(samples[start:start + step]))
                    count, sent = count + 1, sent + len(samples[start:start + step])
                    if options.realtime > 0:
                        time.sleep(max(0.0, begin + sent / 16000 / options.realtime - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(StreamOptions)))
