"""`syncanim bench`: the engine run headless per canvas size, timed per frame and per stage, plus audio latency.

Frame times are wall-clock intervals between consecutive frames at the same point of the loop, so they include
everything a frame does. The headless clock is stepped, so the engine never waits: frames per second here is
throughput, the rate the machine could sustain.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.ecs import Stage, World
from engine.eval.bench_config import BenchConfig
from engine.io.atomic import write_text_atomic

# What the report calls each part of the frame, and the stages that make it up.
PARTS = {
    "clock": ("first",),
    "features": ("pre_update",),
    "motion": ("fixed_update",),
    "scene": ("update", "post_update"),
    "render": ("extract", "render"),
    "present": ("present",),
}


@dataclass
class FrameLog:
    """Resource: one row per frame, taken at the end of the frame's LAST stage."""

    stamps: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    upload: str = "none"
    """How the latest frame reached the canvas: 'host', 'cuda-gl' or 'none'."""
    upload_fallback: str | None = None
    """Why CUDA frames went through host memory (None: they did not, or there were none)."""


def log_frame(world: World) -> None:
    from engine.app import SystemTimings
    from engine.display.present import Presenter

    log = world.resource(FrameLog)
    log.stamps.append(time.perf_counter())
    log.stages.append(dict(world.resource(SystemTimings).stage_ms))
    presenter = world.get_resource(Presenter)
    if presenter is not None:
        log.upload, log.upload_fallback = presenter.upload.path, presenter.upload.fallback_reason


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)), "p99": float(np.percentile(values, 99)),
    }


def summarise(log: FrameLog, warmup: int, size: int) -> dict[str, Any]:
    """Frame-time statistics over the frames after the warm-up."""
    intervals = np.diff(np.array(log.stamps[warmup:])) * 1e3
    if len(intervals) < 2:
        raise ValueError("too few frames measured; raise --seconds")
    frame = percentiles(intervals)
    parts = {}
    for part, stages in PARTS.items():
        per_frame = np.array([sum(row.get(s, 0.0) for s in stages) for row in log.stages[warmup + 1:]])
        parts[part] = percentiles(per_frame)
    return {
        "size": size, "frames": int(len(intervals)), "fps": 1000.0 / frame["mean"],
        "frame_ms_p50": frame["p50"], "frame_ms_p95": frame["p95"], "frame_ms_p99": frame["p99"],
        "frame_ms_mean": frame["mean"], "parts_ms": parts,
    }


def bench_size(config: BenchConfig, size: int) -> dict[str, Any]:
    from engine.audio.features import FeatureSpec
    from engine.display.headless import run_headless
    from engine.display.settings import DisplaySettings
    from engine.nerf.settings import NerfRuntimeSettings
    from engine.scene.loader import SceneArgs, build_scene
    from engine.scene.run import make_app

    scene = config.frame_scene()
    app = make_app(DisplaySettings(size=(size, size), fps=config.fps), headless=True)
    app.insert_resource(NerfRuntimeSettings(device=config.device))
    app.insert_resource(SceneArgs(scene, avatar=config.avatar))
    build_scene(app, scene)
    app.insert_resource(FrameLog())
    app.add_system(log_frame, Stage.LAST)
    frames = config.warmup_frames + round(config.seconds * config.fps) + 1
    run_headless(app, frames=frames)
    log = app.resource(FrameLog)
    return {**summarise(log, config.warmup_frames, size), "upload": log.upload, "upload_fallback": log.upload_fallback,
            "extractor": app.resource(FeatureSpec).extractor}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "gpu": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def latency(audio: dict[str, Any], results: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    """Mic-to-frame latency, algorithmic: the audio path's terms (of the extractor the scene heard with) plus one
    frame of render and present."""
    heard = results[0].get("extractor", "mel") if results else "mel"
    terms = dict(audio["extractors"].get(heard, {}).get("latency_ms", {}))
    audio_total = terms.pop("total", 0.0)
    worst = max(results, key=lambda r: r["size"]) if results else None
    frame_ms = worst["frame_ms_p95"] if worst else 1000.0 / fps
    return {
        "algorithmic_ms": audio_total + frame_ms,
        "terms_ms": {**terms, f"frame_p95_at_{worst['size'] if worst else 0}": frame_ms},
        "per_size_ms": {str(r["size"]): audio_total + r["frame_ms_p95"] for r in results},
        "measured_ms": None,
    }


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run every size, time the speech features, print a table and write the JSON; returns the results."""
    from rich.console import Console

    from engine.audio.measure import measure_extractors

    console = Console(width=None if Console().is_terminal else 120)  # logs and CI get the full table
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: this torch has no CUDA device; install a CUDA build of torch "
                               "(pip install torch==2.13.0 on a GPU machine) or use --device cpu")
    results = []
    for size in config.size_list():
        with console.status(f"bench {size}x{size} ..."):
            results.append(bench_size(config, size))
    with console.status("timing speech features ..."):
        audio = measure_extractors(config.audio_seconds, hubert_sizes=("base", "large") if config.hubert else ())
    render = None
    if config.render:
        from engine.nerf.bench import measure_render

        with console.status("timing the NeRF renderer (first frame compiles) ..."):
            render = measure_render(config.avatar, tuple(config.size_list()), device=config.device)
    kernels = None
    if config.kernels:
        from engine.nerf.measure import measure_kernels

        with console.status("timing NeRF kernels (first run compiles) ..."):
            kernels = measure_kernels(device=config.device)
    report = {
        "device": config.device, "machine": machine(), "scene": str(config.frame_scene()),
        "avatar": str(config.avatar) if config.avatar else None, "fps_target": config.fps,
        "results": results, "audio": audio, "nerf_render": render, "nerf_kernels": kernels,
        "latency_ms": latency(audio, results, config.fps),
        "unavailable": {"latency_measured": "needs an avatar that responds to sound (bench --avatar); "
                                            "the test card only meters playback"},
    }
    print_report(console, report)
    if config.json is not None:
        config.json.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(config.json, json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {config.json}")
    return report


def print_report(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"frame times ({report['machine']['cpu']}, {report['machine']['cores']} cores, "
                        f"{report['device']})")
    for column in ("size", "FPS", "p50 ms", "p95 ms", "p99 ms", *PARTS):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(f"{r['size']}", f"{r['fps']:.1f}", f"{r['frame_ms_p50']:.1f}", f"{r['frame_ms_p95']:.1f}",
                      f"{r['frame_ms_p99']:.1f}", *(f"{r['parts_ms'][p]['mean']:.2f}" for p in PARTS))
    console.print(table)
    for r in report["results"]:
        if r.get("upload_fallback"):
            console.print(f"{r['size']}^2: frames reached the canvas by host upload: {r['upload_fallback']}")
    console.print("upload path: " + ", ".join(f"{r['size']}^2 {r.get('upload', '?')}" for r in report["results"]))
    audio = Table(title="speech features")
    for column in ("extractor", "RTF streaming", "ms / video frame", "latency ms (algorithmic)"):
        audio.add_column(column, justify="right")
    for name, entry in report["audio"]["extractors"].items():
        audio.add_row(name, f"{entry['rtf_streaming']:.3f}", f"{entry['ms_per_video_frame_mean']:.2f}",
                      f"{entry['latency_ms']['total']:.0f}")
    console.print(audio)
    render = report.get("nerf_render")
    if render:
        table = Table(title=f"NeRF renderer ({render['avatar']}, {render['device']}, {render['precision']})")
        for column in ("size", "FPS", "median ms", "min ms", "head rays"):
            table.add_column(column, justify="right")
        for size, entry in render["sizes"].items():
            head = "x".join(str(n) for n in entry.get("head_rays", ()))
            table.add_row(str(size), f"{entry['fps']:.1f}", f"{entry['median_ms']:.1f}", f"{entry['min_ms']:.1f}", head)
        console.print(table)
    kernels = report.get("nerf_kernels")
    if kernels:
        table = Table(title=f"NeRF kernels ({kernels['device']}, {kernels['points']} points)")
        for column in ("kernel", "median ms", "min ms"):
            table.add_column(column, justify="right")
        for name, entry in kernels["encoders"].items():
            for mode in ("forward", "forward_specialized", "forward_backward"):
                if mode in entry:
                    table.add_row(f"{name} {mode}", f"{entry[mode]['median_ms']:.1f}", f"{entry[mode]['min_ms']:.1f}")
        march = kernels["march_composite"]
        table.add_row(f"march+composite {kernels['size']}^2", f"{march['median_ms']:.1f}", f"{march['min_ms']:.1f}")
        console.print(table)
    per_size = report["latency_ms"].get("per_size_ms") or {"": report["latency_ms"]["algorithmic_ms"]}
    console.print("mic-to-frame latency, algorithmic (audio path + frame p95): "
                  + ", ".join(f"{size}^2 {ms:.0f} ms" if size else f"{ms:.0f} ms" for size, ms in per_size.items()))
