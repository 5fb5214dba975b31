"""Taichi runtime start-up: one explicit backend per process (ti.cpu or ti.cuda), started on request.

Taichi holds one backend per process. `init_taichi` is idempotent for the same device and refuses to switch
devices afterwards, because kernels compiled for one backend must not silently start running on another.
Kernel wrappers call `require_device(tensor)` so a missing start-up or a tensor on the wrong device fails with a
message that names the fix instead of a copy-per-launch slowdown or a Taichi internal error.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

Device = Literal["cpu", "cuda"]

log = logging.getLogger(__name__)

_active: Device | None = None
_cpu_threads = 1

DEFAULT_CACHE_ENV = "SYNCANIM_TAICHI_CACHE"


def default_cache_dir() -> Path:
    """Folder of Taichi's offline kernel cache: $SYNCANIM_TAICHI_CACHE, else ~/.cache/syncanim/taichi."""
    env = os.environ.get(DEFAULT_CACHE_ENV)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "syncanim" / "taichi"


def default_cpu_threads() -> int:
    """Cores this process may run on (cgroup/affinity aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def init_taichi(
    device: Device = "cpu",
    *,
    cache_dir: str | os.PathLike | None = None,
    cpu_threads: int | None = None,
    debug: bool = False,
) -> Device:
    """Start Taichi on `device` ("cpu" -> ti.cpu, "cuda" -> ti.cuda); a second call with the same device is a no-op.

    Never ti.gpu: on machines without CUDA it may pick Vulkan (lavapipe) or crash in the Vulkan loader.
    `cache_dir`: offline kernel cache (default `default_cache_dir()`); `cpu_threads`: Taichi's CPU pool size
    (default: the cores this process may use). Returns the active device.
    """
    global _active, _cpu_threads
    if device not in ("cpu", "cuda"):
        raise ValueError(f"engine/nerf/kernels/runtime.py: device={device!r} is not 'cpu' or 'cuda'")
    if _active is not None:
        if _active != device:
            raise RuntimeError(
                f"engine/nerf/kernels/runtime.py: Taichi already runs on {_active!r}, cannot switch to {device!r} "
                "in the same process; choose one render device per process"
            )
        return _active
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(
                "engine/nerf/kernels/runtime.py: device='cuda' requested but torch sees no CUDA device; "
                "use device='cpu' or install a CUDA build of torch"
            )
    # Skip Taichi's weekly network version check: the engine must not touch the network at run time.
    os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")
    import taichi as ti

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    kwargs = dict(
        offline_cache=True,
        offline_cache_file_path=str(cache),
        default_fp=ti.f32,
        default_ip=ti.i32,
        log_level=ti.WARN,
        debug=debug,
        # No fallback: a failed CUDA start must be an error, not a silent 20x slower CPU render.
        enable_fallback=False,
    )
    if device == "cpu":
        _warn_if_omp_spins()
        _cpu_threads = int(cpu_threads or default_cpu_threads())
        kwargs["cpu_max_num_threads"] = _cpu_threads
        ti.init(arch=ti.cpu, **kwargs)
    else:
        # Kernels only read torch tensors (external arrays); Taichi's own pool can stay small.
        ti.init(arch=ti.cuda, device_memory_GB=0.25, **kwargs)
    _cache_framework_probes()
    _active = device
    return device


def _cache_framework_probes() -> None:
    # Taichi 1.7.4 asks has_pytorch() (an environment read and an import) for every array argument of every kernel
    # launch: ~200 times per rendered frame, 1.6 ms of a 9 ms frame on an H100 (cProfile). The answer cannot change
    # in a running process, so both names Taichi calls it by get one cached function.
    import functools

    from taichi.lang import kernel_impl, util

    for name in ("has_pytorch", "has_paddle"):
        probe = getattr(util, name, None)
        if probe is None or hasattr(probe, "cache_info"):
            continue
        cached = functools.cache(probe)
        for module in (util, kernel_impl):
            if hasattr(module, name):
                setattr(module, name, cached)


def _warn_if_omp_spins() -> None:
    # libgomp reads its spin policy once, when torch loads it; from then on its idle workers busy-wait
    # between torch ops and steal the cores Taichi's threads need (measured: 1.7x per frame unloaded,
    # 10-20x for small training steps on a loaded 2-core machine).
    if "GOMP_SPINCOUNT" not in os.environ:
        log.warning(
            "GOMP_SPINCOUNT is not set: torch's OpenMP threads will spin against Taichi's CPU threads; "
            "export GOMP_SPINCOUNT=10000 before Python imports torch (the engine's entry point should set it)"
        )


def active_device() -> Device | None:
    """The device Taichi runs on in this process; None before init_taichi."""
    return _active


def cpu_threads() -> int:
    """Size of Taichi's CPU thread pool (1 before `init_taichi` or on CUDA)."""
    return _cpu_threads if _active == "cpu" else 1


def require_device(*tensors) -> None:
    """Raise unless Taichi is started and every tensor lives on its device (zero-copy launches only)."""
    if _active is None:
        raise RuntimeError(
            "engine/nerf/kernels: Taichi is not started; call "
            "engine.nerf.kernels.runtime.init_taichi('cpu' or 'cuda') in a startup system or training entry first"
        )
    for t in tensors:
        if t.device.type != _active:
            raise RuntimeError(
                f"engine/nerf/kernels: a tensor of shape {tuple(t.shape)} is on {t.device} but Taichi runs on "
                f"{_active!r}; move it with .to('{_active}') (cross-device launches copy the tensor twice per call)"
            )
