"""NerfRuntimeSettings: where the NeRF kernels run (a light module: no torch, no taichi at import)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class NerfRuntimeSettings:
    """Resource: the render device and Taichi's start-up options, read by `start_taichi` in STARTUP."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'cpu' (ti.cpu), 'cuda' (ti.cuda, needs a CUDA build of torch and a GPU), or 'auto': CUDA when torch sees it."""
    kernel_cache: Path | None = None
    """Taichi's offline kernel cache; None: $SYNCANIM_TAICHI_CACHE or ~/.cache/syncanim/taichi."""
    cpu_threads: int | None = None
    """Taichi CPU threads; None: every core this process may run on."""
