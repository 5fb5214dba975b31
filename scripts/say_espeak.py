"""Speak text through a running engine: espeak-ng synthesises a wav, the control socket carries it to the kiosk.

    syncanim run scenes/kiosk.py --control 127.0.0.1:7878        # prints the token
    python scripts/say_espeak.py "Hello there." --token TOKEN
    echo "One line per utterance" | python scripts/say_espeak.py - --token TOKEN --interrupt

With text '-', every line read from stdin is spoken in turn (a chat or TTS pipeline can pipe into it). The token may
also come from $SYNCANIM_CONTROL_TOKEN. Needs espeak-ng (apt install espeak-ng).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from engine.scene.client import ControlClient, ControlError  # noqa: E402


@dataclass(frozen=True)
class SayOptions:
    """Synthesise TEXT with espeak-ng and send it to the engine's control socket."""

    text: Annotated[str, tyro.conf.Positional]
    """What to say; '-' reads one utterance per line from stdin."""
    control: str = "127.0.0.1:7878"
    """The engine's --control address."""
    token: str | None = None
    """The engine's control token (printed at its start); default $SYNCANIM_CONTROL_TOKEN."""
    interrupt: bool = False
    """Cut what the avatar is saying instead of queueing after it."""
    avatar: str | None = None
    """Which avatar speaks (default: the main voice)."""
    espeak_voice: str = "en-us"
    """espeak-ng voice (-v), e.g. en-gb, de, fr."""
    words_per_minute: int = 160
    """espeak-ng speed (-s)."""
    caption: bool = True
    """Send the text along, so the kiosk shows it as a caption."""


def synthesise(text: str, voice: str, speed: int) -> bytes:
    """espeak-ng's wav for `text` (written to stdout, never to a file)."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed; install it with `apt install espeak-ng`")
    result = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), text],
                            capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise SystemExit(f"espeak-ng failed ({result.returncode}): {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def utterances(text: str) -> Iterator[str]:
    if text != "-":
        yield text
        return
    for line in sys.stdin:
        if line.strip():
            yield line.strip()


def main(options: SayOptions) -> int:
    for text in utterances(options.text):
        wav = synthesise(text, options.espeak_voice, options.words_per_minute)
        # A connection per utterance: lines on stdin may come further apart than the engine's idle timeout.
        with ControlClient(options.control, token=options.token) as engine:
            try:
                reply = engine.say(wav, interrupt=options.interrupt, avatar=options.avatar,
                                   text=text if options.caption else None)
            except ControlError as error:
                print(f"engine refused: {error}", file=sys.stderr)
                return 1
        print(f"sent {reply['duration_s']:.2f} s: {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(SayOptions)))
