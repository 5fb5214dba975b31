"""Settings of `syncanim bench` (light module: no torch, no GL at import)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from engine.nerf.settings import HeadScale, Precision, check_head_scale, check_precision
from engine.scene import SCENES_DIR

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
BUNDLED_AVATAR = ASSETS_DIR / "avatar"
"""The avatar the bench times by default (the demo's presenter)."""
BUNDLED_CLIPS = ASSETS_DIR / "audio"
"""The clips the timed avatar reads, in a loop (a silent avatar would leave lips and features idle)."""
MIN_MEASURED = 10
"""Frames a row measures at least, however long they take."""
FRAMINGS = ("default", "med", "max")
"""The paper's framings (Table 2: default, MedScale, MaxScale); their crops cost differently."""


@dataclass(frozen=True)
class WarmupRule:
    """When a run's frame times count as settled: the median frame time of the last window is within `tolerance`
    of the median of the window before it. A window is the latest frames that span `window_s` seconds and number
    at least `min_frames`, so a steady run settles after two windows, whether its frames take 10 ms or a second,
    and a run with a slow start once its slow frames are a minority of the older window."""

    window_s: float = 1.0
    """Wall seconds a window spans (at least)."""
    min_frames: int = 3
    """Frames a window holds (at least): slow frames are judged on this many."""
    tolerance: float = 0.05
    """Largest relative difference of the two windows' medians that counts as settled."""
    max_s: float = 30.0
    """Wall seconds of warm-up after which the run is measured anyway (reported as not settled)."""

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and self.min_frames >= 1 and self.tolerance > 0 and self.max_s > 0):
            raise ValueError(f"--warmup-window-s {self.window_s}, --warmup-tolerance {self.tolerance} and "
                             f"--warmup-max-s {self.max_s} must be > 0, --warmup-min-frames {self.min_frames} >= 1")


@dataclass(frozen=True)
class BenchOptions:
    """Measure frames per second, per-stage frame times, latency and speech-feature real-time factors.

    Each row (size x framing x quality) runs the whole engine headless in a fresh app: it warms up until its frame
    times settle (WarmupRule), then measures --seconds of frames. --repeat N measures every row N times, interleaved,
    and the table gives the median and the spread."""

    json: Path | None = None
    """Also write the results to this JSON file (atomically)."""
    sizes: Annotated[tuple[str, ...], tyro.conf.arg(metavar="SIZE [SIZE ...]")] = ("128", "256", "512")
    """Square canvas sizes in pixels, in the order they run: `--sizes 128 256 512` or `--sizes 128,256,512`."""
    seconds: float = 4.0
    """Engine seconds measured per row and repeat (frames = seconds x fps), after the warm-up."""
    measure_max_s: float = 20.0
    """Wall seconds after which a slow row stops measuring before --seconds are in (it keeps at least 10 frames,
    MIN_MEASURED): full quality at 512x512 on a 2-core CPU takes 0.6 s a frame. On that CPU frame times come in
    spells of a few seconds (IQR 250..330 ms at 512x512); 10 s put two runs of one row 34% apart, 20 s 11%."""
    warmup_window_s: float = WarmupRule.window_s
    """Warm-up: wall seconds of frames per window; a row is measured once the median frame time of the last window
    is within --warmup-tolerance of the window before it (a steady row warms up for two windows)."""
    warmup_min_frames: int = WarmupRule.min_frames
    """Warm-up: frames per window at least (slow frames)."""
    warmup_tolerance: float = WarmupRule.tolerance
    """Warm-up: largest relative difference of the two windows' median frame times that counts as settled."""
    warmup_max_s: float = WarmupRule.max_s
    """Warm-up: wall seconds after which a row that has not settled is measured anyway (the table says so)."""
    repeat: int = 1
    """Measure every row this many times (interleaved: all rows once, then again); the table shows the median FPS
    and its min..max over the repeats."""
    head_scale: tuple[HeadScale, ...] = (1.0, "auto")
    """Head resolutions to time, each a row per size: 1 is full quality, 'auto' the engine's fast setting (the head
    marched at half resolution on a CPU above 128x128); a setting that resolves to one already timed at that size is
    timed once and labelled with both."""
    precision: tuple[Precision, ...] = ("auto",)
    """MLP precisions to time, each combined with every --head-scale: 'float32', 'bfloat16', 'auto'."""
    framings: bool = False
    """Time each of the paper's framings (default, med = MedScale, max = MaxScale) per size and quality, not only the
    default one (about three times as long)."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where rendering runs; 'cuda' needs a CUDA build of torch and a GPU."""
    avatar: Path | None = None
    """The avatar timed: the whole frame with it reading the bundled clips at each framing, and the NeRF renderer
    alone. Default: the bundled assets/avatar (without it: the test card, and a paper-sized stand-in with random
    weights for the renderer alone)."""
    scene: Path | None = None
    """A scene to time instead of the avatar reading clips (it may show --avatar; with --framings its avatars are
    set to each framing after it is built). scenes/test_card.py times the engine without a neural renderer."""
    fps: float = 25.0
    """Canvas frame rate (the headless clock steps 1/fps; throughput is measured by the wall clock)."""
    audio_seconds: float = 4.0
    """Seconds of audio used to time each speech-feature extractor."""
    render: bool = True
    """Also time the NeRF renderer alone, per size and quality (the avatar's, or the stand-in's)."""
    kernels: bool = True
    """Also time the NeRF kernels alone (hash encoders, march + composite) on --device."""
    conversation: bool = True
    """Also measure the interactive kiosk's latencies on running engines (about two minutes): a streamed chunk to
    the mouth, text to speech, a recorded question's end to the answer, interrupt and barge-in to silence."""
    conversation_size: int = 192
    """Canvas size (square) of the engines whose latencies are measured."""
    conversation_repeats: int = 5
    """Times each latency is measured (the recorded questions: three, one of them a barge-in)."""
    hubert: bool = False
    """Also time HuBERT-shaped extractors (base and large shapes, random weights: speed does not depend on weights).
    Off by default: on a 2-core CPU they stream at 28x and 65x real time, which alone takes 6 minutes."""

    def __post_init__(self) -> None:
        self.size_list()  # a bad --sizes is reported while parsing, before anything starts
        if not (self.seconds > 0 and self.fps > 0 and self.audio_seconds > 0 and self.measure_max_s > 0
                and self.repeat >= 1):
            raise ValueError(f"--seconds {self.seconds}, --fps {self.fps}, --audio-seconds {self.audio_seconds}, "
                             f"--measure-max-s {self.measure_max_s} must be > 0 and --repeat {self.repeat} >= 1")
        if not self.head_scale or not self.precision:
            raise ValueError("--head-scale and --precision need at least one value each, e.g. --head-scale 1 auto")
        for value in self.head_scale:
            check_head_scale(value)
        for value in self.precision:
            check_precision(value)
        self.warmup_rule()

    def warmup_rule(self) -> WarmupRule:
        return WarmupRule(self.warmup_window_s, self.warmup_min_frames, self.warmup_tolerance, self.warmup_max_s)

    def timed_avatar(self) -> Path | None:
        """--avatar, else the bundled avatar where it is present."""
        if self.avatar is not None:
            return self.avatar
        return BUNDLED_AVATAR if (BUNDLED_AVATAR / "nerf.safetensors").is_file() else None

    def frame_scene(self) -> Path | None:
        """The scene whose frames are timed; None: the timed avatar reading the bundled clips (bench_scene)."""
        if self.scene is not None:
            return self.scene
        return None if self.timed_avatar() is not None else SCENES_DIR / "test_card.py"

    def framing_list(self) -> tuple[str | None, ...]:
        """The framings timed per size: the paper's three with --framings, else the default one; (None,) for a
        scene given with --scene and no --framings (its own framing)."""
        if self.framings:
            return FRAMINGS
        return ("default",) if self.frame_scene() is None else (None,)

    def size_list(self) -> list[int]:
        """--sizes as integers, in order."""
        parts = (self.sizes,) if isinstance(self.sizes, str) else self.sizes  # BenchOptions(sizes="128,256") too
        try:
            sizes = [int(part) for text in parts for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--sizes must be integers like 128 256 512 (or 128,256,512), got {self.sizes!r}") \
                from None
        if not sizes or min(sizes) < 16:
            raise ValueError(f"--sizes must list sizes of at least 16 pixels, got {self.sizes!r}")
        return sizes
