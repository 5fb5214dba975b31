"""Settings of `syncanim bench` (light module: no torch, no GL at import)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.scene import SCENES_DIR


@dataclass(frozen=True)
class BenchConfig:
    """Measure frames per second, per-stage frame times, latency and speech-feature real-time factors."""

    json: Path | None = None
    """Also write the results to this JSON file (atomically)."""
    sizes: str = "128,256,512"
    """Comma-separated square canvas sizes in pixels to run, e.g. 128,256,512."""
    seconds: float = 4.0
    """Engine seconds measured per size (frames = seconds x fps), after the warm-up."""
    warmup_frames: int = 10
    """Frames run and discarded before measuring (first-call compilation, caches, page faults)."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where rendering runs; 'cuda' needs a CUDA build of torch and a GPU."""
    avatar: Path | None = None
    """A trained avatar: the whole frame is timed with it reading the demo clips (scenes/demo.py), and the NeRF
    renderer alone with it; default: the test card, and a paper-sized stand-in with random weights."""
    scene: Path | None = None
    """Scene to time instead (it may show --avatar); default: scenes/demo.py with --avatar, else the test card
    (the engine without a neural renderer)."""
    fps: float = 25.0
    """Canvas frame rate (the headless clock steps 1/fps; throughput is measured by the wall clock)."""
    audio_seconds: float = 4.0
    """Seconds of audio used to time each speech-feature extractor."""
    render: bool = True
    """Also time the NeRF renderer alone, per size (the avatar's, or the stand-in's)."""
    kernels: bool = True
    """Also time the NeRF kernels alone (hash encoders, march + composite) on --device."""
    hubert: bool = True
    """Also time HuBERT-shaped extractors (base and large shapes, random weights: speed does not depend on weights)."""

    def __post_init__(self) -> None:
        self.size_list()  # a bad --sizes is reported while parsing, before anything starts
        if not (self.seconds > 0 and self.fps > 0 and self.audio_seconds > 0 and self.warmup_frames >= 0):
            raise ValueError(f"--seconds {self.seconds}, --fps {self.fps}, --audio-seconds {self.audio_seconds} must "
                             f"be > 0 and --warmup-frames {self.warmup_frames} >= 0")

    def frame_scene(self) -> Path:
        """The scene whose frames are timed."""
        if self.scene is not None:
            return self.scene
        return SCENES_DIR / ("demo.py" if self.avatar is not None else "test_card.py")

    def size_list(self) -> list[int]:
        try:
            sizes = [int(part) for part in self.sizes.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--sizes must be comma-separated integers like 128,256,512, got {self.sizes!r}") from None
        if not sizes or min(sizes) < 16:
            raise ValueError(f"--sizes must list sizes of at least 16 pixels, got {self.sizes!r}")
        return sizes
