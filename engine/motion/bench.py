"""Per-frame cost of the motion syncers (for `syncanim bench`; never timed inside unit tests)."""
from __future__ import annotations

import os
import time

import numpy as np


def measure_motion(avatar: str | os.PathLike, avatars: int = 1, frames: int = 500, seed: int = 0) -> dict[str, float]:
    """Step `avatars` avatars in one batch for `frames` frames of speech-like features; return the mean wall and
    process-CPU milliseconds per frame (both syncers, everything drive_motion does per fixed step except the ECS)."""
    from engine.motion.runtime import MotionRuntime

    runtime = MotionRuntime.load(avatar)
    rng = np.random.default_rng(seed)
    spec = runtime.spec
    mean = np.asarray(runtime.metadata["normalisation"]["features"]["mean"], np.float32)
    std = np.asarray(runtime.metadata["normalisation"]["features"]["std"], np.float32)
    windows = (mean + std * rng.standard_normal((frames, avatars, spec.window_frames, spec.dim))).astype(np.float32)
    memories = [runtime.new_memory("one_shot", seed + i) for i in range(avatars)]
    for k in range(min(20, frames)):  # warm-up: tracing, allocator
        runtime.step(windows[k], memories)
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(frames):
        runtime.step(windows[k], memories)
    return {"avatars": avatars, "frames": frames, "wall_ms": (time.perf_counter() - wall) / frames * 1e3,
            "cpu_ms": (time.process_time() - cpu) / frames * 1e3}
