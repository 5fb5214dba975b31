"""Settings of `syncanim eval-universal` (light module: no torch, no MediaPipe at import)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro


@dataclass(frozen=True)
class UniversalEvalOptions:
    """Measure a universal motion model on held-out speakers: calibrate it onto each dataset's tracks, drive it with
    that dataset's whole audio (one-shot) and compare with the MediaPipe tracks; writes universal_report.json,
    universal_report.md and jaw.png."""

    universal_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="UNIVERSAL_DIR")]
    """The folder written by `syncanim universal` (its motion.safetensors)."""
    data: Annotated[tuple[Path, ...], tyro.conf.arg(metavar="DATA_DIR [DATA_DIR ...]")]
    """One or more held-out dataset folders written by `syncanim preprocess` (with speech), in voices the model
    never heard."""
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",), metavar="REPORT_DIR")]
    """Where universal_report.json, universal_report.md and jaw.png are written."""
    seed: int = 0
    """Seeds the syncers' latents and blink intervals."""
    max_lag: int = 5
    """The best jawOpen lag is searched over -max_lag..max_lag frames."""

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("--data: pass at least one DATA_DIR written by `syncanim preprocess`")
        if self.max_lag < 0:
            raise ValueError(f"--max-lag {self.max_lag}: use 0 or a positive number of frames")
