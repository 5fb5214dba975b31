"""`syncanim bench`: the engine run headless per canvas size, framing and render quality, timed per frame and per
stage, plus audio latency.

Frame times are wall-clock intervals between consecutive frames at the same point of the loop, so they include
everything a frame does. The headless clock is stepped, so the engine never waits: frames per second here is
throughput, the rate the machine could sustain. Each run warms up until its frame times settle (`check_warmup`),
not for a fixed count: the first size of a run pays for compilation and cold caches for longer than a few frames,
and a fixed count let the order of the sizes change their figures.
"""
from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.app import AppExit, SystemTimings
from engine.audio.features import FeatureSpec
from engine.audio.measure import measure_extractors
from engine.audio.sources import load_clip
from engine.components import Framing
from engine.display.headless import run_headless
from engine.display.present import Presenter
from engine.display.settings import DisplaySettings
from engine.ecs import Stage, World
from engine.eval.bench_config import BUNDLED_CLIPS, MIN_MEASURED, BenchOptions, WarmupRule
from engine.io.atomic import write_text_atomic
from engine.nerf.bench import measure_render
from engine.nerf.settings import NerfRenderSettings, NerfRuntimeSettings, QualitySettings
from engine.nerf.systems import NerfAvatars
from engine.run import make_app
from engine.scene.actions import start_framing
from engine.scene.loader import SceneArgs, build_scene

if TYPE_CHECKING:
    from engine.app import App

BUSY_SHARE = 0.1
"""Share of the CPU taken by other programs during a row's measurement above which the bench says its figures are
low."""

# What the report calls each part of the frame, and the stages that make it up.
PARTS = {
    "clock": ("first",),
    "features": ("pre_update",),
    "motion": ("fixed_update",),
    "scene": ("update", "post_update"),
    "render": ("extract", "render"),
    "present": ("present",),
}


@dataclass(frozen=True)
class Warmup:
    """How a run's warm-up ended."""

    frames: int
    """Frame times discarded (the measured frames start after them)."""
    seconds: float
    """Wall seconds those frames took."""
    settled: bool
    """False: stopped at WarmupRule.max_s with the frame times still moving."""


def window_start(frame_ms: Sequence[float], end: int, rule: WarmupRule) -> int | None:
    """Start of the window that ends before frame `end`: the fewest frames that span rule.window_s and number at
    least rule.min_frames; None: not enough frames yet."""
    total, start = 0.0, end
    while start > 0:
        start -= 1
        total += frame_ms[start]
        if total >= rule.window_s * 1e3 and end - start >= rule.min_frames:
            return start
    return None


def check_warmup(frame_ms: Sequence[float], rule: WarmupRule) -> Warmup | None:
    """Whether the warm-up ends with the latest of `frame_ms` (every frame time so far, ms): settled (the medians of
    the last two windows agree within the tolerance) or out of time; None: keep warming up. It looks only at the
    newest windows, so a frame loop can ask after every frame."""
    n = len(frame_ms)
    elapsed = sum(frame_ms) / 1e3
    last = window_start(frame_ms, n, rule)
    before = None if last is None else window_start(frame_ms, last, rule)
    if before is not None:
        now, then = statistics.median(frame_ms[last:]), statistics.median(frame_ms[before:last])
        if abs(now - then) <= rule.tolerance * then:
            return Warmup(n, elapsed, True)
    if elapsed >= rule.max_s:
        return Warmup(n, elapsed, False)
    return None


def warmup_end(frame_ms: Sequence[float], rule: WarmupRule) -> Warmup | None:
    """Where `check_warmup`, asked after every frame, ends the warm-up of a run with these frame times."""
    for n in range(1, len(frame_ms) + 1):
        end = check_warmup(frame_ms[:n], rule)
        if end is not None:
            return end
    return None


@dataclass
class FrameLog:
    """Resource: one row per frame, taken at the end of the frame's LAST stage."""

    stamps: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    frame_ms: list[float] = field(default_factory=list)
    """Intervals between consecutive stamps, ms (one fewer than stamps)."""
    warmup: Warmup | None = None
    """Set when the warm-up ends; the frames after it are measured."""
    upload: str = "none"
    """How the latest frame reached the canvas: 'host', 'cuda-gl' or 'none'."""
    upload_fallback: str | None = None
    """Why CUDA frames went through host memory (None: they did not, or there were none)."""
    cpu: list[CpuSample] = field(default_factory=list)
    """CPU counters when the warm-up ended and when the measurement did (`cpu_sample`)."""


@dataclass(frozen=True)
class CpuSample:
    """Counters that tell how much of the machine other programs took: wall time, the CPU seconds every process
    has used (Linux /proc/stat), and this process's own."""

    wall_s: float
    machine_s: float
    own_s: float


def cpu_sample() -> CpuSample | None:
    """The counters now; None where /proc/stat cannot be read (not Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    busy = sum(int(v) for v in fields[:3]) + sum(int(v) for v in fields[5:8])  # user nice system; irq softirq steal
    own = os.times()
    return CpuSample(time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system)


def others_share(start: CpuSample | None, end: CpuSample | None, cores: int) -> float | None:
    """Fraction of the machine's CPU time other programs used between two samples (0: the bench had it alone)."""
    if start is None or end is None or end.wall_s <= start.wall_s:
        return None
    others = (end.machine_s - start.machine_s) - (end.own_s - start.own_s)
    return max(0.0, others / ((end.wall_s - start.wall_s) * cores))


@dataclass(frozen=True)
class BenchPlan:
    """Resource: when a bench run ends."""

    rule: WarmupRule
    frames: int
    """Frames measured after the warm-up."""
    max_s: float = float("inf")
    """Wall seconds after which fewer frames do (at least MIN_MEASURED)."""

    def measured(self, frame_ms: Sequence[float]) -> bool:
        """Whether the frames after the warm-up (`frame_ms`) are enough."""
        return len(frame_ms) >= self.frames or (len(frame_ms) >= MIN_MEASURED and sum(frame_ms) / 1e3 >= self.max_s)


def log_frame(world: World) -> None:
    log = world.resource(FrameLog)
    now = time.perf_counter()
    if log.stamps:
        log.frame_ms.append((now - log.stamps[-1]) * 1e3)
    log.stamps.append(now)
    log.stages.append(dict(world.resource(SystemTimings).stage_ms))
    presenter = world.get_resource(Presenter)
    if presenter is not None:
        log.upload, log.upload_fallback = presenter.upload.path, presenter.upload.fallback_reason


def end_when_measured(world: World) -> None:
    """LAST, after log_frame: end the warm-up when the frame times settle, then stop once BenchPlan.frames are in."""
    log, plan = world.resource(FrameLog), world.resource(BenchPlan)
    if log.warmup is None:
        log.warmup = check_warmup(log.frame_ms, plan.rule)
        if log.warmup is not None:
            log.cpu.append(cpu_sample())
    elif plan.measured(log.frame_ms[log.warmup.frames:]):
        log.cpu.append(cpu_sample())
        world.messages(AppExit).send(AppExit("bench: frames measured"))


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()), "p25": float(np.percentile(values, 25)), "p50": float(np.percentile(values, 50)),
        "p75": float(np.percentile(values, 75)), "p95": float(np.percentile(values, 95)),
        "p99": float(np.percentile(values, 99)),
    }


def summarise(log: FrameLog, warmup: int, size: int) -> dict[str, Any]:
    """Frame-time statistics of one run over the frames after the first `warmup` frame times."""
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
        "frame_ms": [round(float(ms), 2) for ms in intervals],
        "frame_ms_p25": frame["p25"], "frame_ms_p50": frame["p50"], "frame_ms_p75": frame["p75"],
        "frame_ms_p95": frame["p95"], "frame_ms_p99": frame["p99"], "frame_ms_mean": frame["mean"], "parts_ms": parts,
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the table from the repeats of a row (`summarise` results): the median over the repeats of each
    figure, with the FPS and p50 frame time's min and max; parts and upload from the run of median FPS; the largest
    share of the CPU other programs took during a repeat."""
    if not runs:
        raise ValueError("aggregate() needs at least one run")
    fps = [r["fps"] for r in runs]
    middle = sorted(runs, key=lambda r: r["fps"])[(len(runs) - 1) // 2]
    row = {key: value for key, value in middle.items() if key not in ("warmup", "frame_ms")}
    for key in ("fps", "frame_ms_p25", "frame_ms_p50", "frame_ms_p75", "frame_ms_p95", "frame_ms_p99",
                "frame_ms_mean"):
        row[key] = float(statistics.median(r[key] for r in runs))
    p50 = [r["frame_ms_p50"] for r in runs]
    others = [r["others_cpu"] for r in runs if r.get("others_cpu") is not None]
    row.update(repeats=len(runs), fps_min=min(fps), fps_max=max(fps), frame_ms_p50_min=min(p50),
               frame_ms_p50_max=max(p50), warmup=[r.get("warmup") for r in runs],
               others_cpu=max(others) if others else None,
               runs=[{key: r.get(key) for key in ("fps", "frame_ms_p50", "warmup", "others_cpu", "frame_ms")}
                     for r in runs])
    return row


@dataclass(frozen=True)
class Row:
    """One row of the table: what a run renders. Requested settings that resolve alike at a size share a row."""

    size: int
    framing: str | None
    """'default', 'med', 'max'; None: a --scene's own framing."""
    head_scale: float
    """The fraction of the resolution the head is marched at, resolved for this size and device."""
    precision: str
    """The MLP precision, resolved for the device."""
    asked: tuple[str, ...]
    """The --head-scale / --precision values that resolve to this row, e.g. ('1', 'auto')."""


def plan_rows(config: BenchOptions) -> list[Row]:
    """Every (size, framing, head scale, precision) of `config`, in the order given; settings that resolve to the
    same renderer at a size (head_scale 'auto' is 1 at 128x128 on a CPU) are one row labelled with all of them."""
    from engine.nerf.render import resolve_head_scale, resolve_precision

    rows: dict[tuple, list[str]] = {}
    for size in config.size_list():
        for framing in config.framing_list():
            for head_scale in config.head_scale:
                for precision in config.precision:
                    key = (size, framing, resolve_head_scale(head_scale, size, size, config.device),
                           resolve_precision(precision, config.device))
                    label = f"{head_scale:g}" if isinstance(head_scale, float) else str(head_scale)
                    label += "" if len(config.precision) == 1 else f"/{precision}"
                    asked = rows.setdefault(key, [])
                    if label not in asked:
                        asked.append(label)
    return [Row(*key, tuple(asked)) for key, asked in rows.items()]


def build_bench_scene(app: App, avatar: Path, framing: str, clips: Path = BUNDLED_CLIPS) -> None:
    """The whole frame of one avatar as `syncanim run` shows it: the full canvas at `framing`, reading the .wav
    clips in `clips` in a loop (speech keeps the features, the motion and the lips as busy as in use)."""
    from engine.scene.api import Scene

    scene = Scene(app)
    scene.background(color=(0.08, 0.09, 0.12))
    scene.avatar(avatar, name="bench", framing=framing)
    loaded = [load_clip(path) for path in sorted(Path(clips).glob("*.wav"))]
    if loaded:
        def read_forever(director) -> Iterator[Any]:
            while True:
                for clip in loaded:
                    yield director.say(clip, avatar="bench")

        scene.script(read_forever, name="bench")


def bench_size(config: BenchOptions, size: int, row: Row | None = None) -> dict[str, Any]:
    """One run: a fresh engine at size x size renders `row`'s framing and quality (default: the first row of that
    size), warms up until its frame times settle, then measures --seconds of frames."""
    row = row or next(r for r in plan_rows(config) if r.size == size)
    gc.collect()  # the previous run's garbage is not collected inside this one's measurement
    scene, avatar = config.frame_scene(), config.timed_avatar()
    app = make_app(DisplaySettings(size=(size, size), fps=config.fps), headless=True)
    app.insert_resource(NerfRuntimeSettings(device=config.device))
    app.insert_resource(QualitySettings(row.head_scale, row.precision))  # as an operator's: wins over the scene's
    app.insert_resource(SceneArgs(scene or Path(__file__), avatar=avatar))
    if scene is None:
        build_bench_scene(app, avatar, row.framing or "default")
    else:
        build_scene(app, scene)
        if row.framing is not None:
            start_framing(app.world, row.framing)
    app.insert_resource(FrameLog())
    app.insert_resource(BenchPlan(config.warmup_rule(), round(config.seconds * config.fps), config.measure_max_s))
    app.add_system(log_frame, Stage.LAST)
    app.add_system(end_when_measured, Stage.LAST, after=["engine.eval.bench.log_frame"])
    run_headless(app)
    log = app.resource(FrameLog)
    warmup = log.warmup or Warmup(len(log.frame_ms), sum(log.frame_ms) / 1e3, False)  # the scene ended first
    others = others_share(*log.cpu, os.cpu_count() or 1) if len(log.cpu) == 2 else None
    zooms = [framing.zoom for _, framing in app.world.query(Framing)]
    return {**summarise(log, warmup.frames, size), "framing": row.framing, "zoom": zooms[0] if zooms else None,
            "renderer": renderer_used(app, row, size),
            "warmup": vars(warmup), "others_cpu": others, "upload": log.upload,
            "upload_fallback": log.upload_fallback,
            "extractor": app.resource(FeatureSpec).extractor}


def renderer_used(app: App, row: Row, size: int) -> dict[str, Any] | None:
    """The quality the avatar renderer actually ran at (None: the scene showed no avatar)."""
    avatars = app.world.get_resource(NerfAvatars)
    if avatars is None or not avatars.renderers:
        return None
    renderer = next(iter(avatars.renderers.values()))
    return {"head_scale": row.head_scale, "precision": renderer.precision, "asked": list(row.asked),
            "head_rays": list(renderer.head_size(size, size))}


def run_rows(config: BenchOptions, rows: list[Row], status: Any) -> list[dict[str, Any]]:
    """Measure every row --repeat times and aggregate each row's runs."""
    runs: dict[Row, list[dict[str, Any]]] = {row: [] for row in rows}
    plain: dict[int, Row] = {}  # size -> the row that found no avatar renderer in the scene: quality cannot matter
    # Interleaved: every row once, then every row again. Back to back, a slow spell of the machine (another program,
    # a thermal limit) would fall on the rows measured during it and show as a difference between sizes; spread over
    # the repeats it shows as the spread of every row, where it belongs.
    for repeat in range(config.repeat):
        for row in rows:
            if plain.get(row.size, row) != row:
                continue
            with status(f"bench {row.size}x{row.size} {describe(row)} (repeat {repeat + 1}/{config.repeat}) ..."):
                run = bench_size(config, row.size, row)
            runs[row].append(run)
            if run["renderer"] is None:
                plain.setdefault(row.size, row)
    return [aggregate(found) for found in runs.values() if found]


def describe(row: Row) -> str:
    """A row's framing and quality for the progress line: e.g. 'default, full fp32 (asked 1, auto)'."""
    quality = "full" if row.head_scale >= 1.0 else f"fast x{row.head_scale:g}"
    precision = {"float32": "fp32", "bfloat16": "bf16"}.get(row.precision, row.precision)
    framing = row.framing or "scene's"
    return f"{framing}, {quality} {precision} (asked {', '.join(row.asked)})"


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and how busy it was when the bench started."""
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
        "torch": torch.__version__, "gpu": None, "load_average_at_start": list(os.getloadavg()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def headline_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size, the row the engine runs by default (head scale 'auto', default framing), else the first row of that
    size."""
    def engine_default(r: dict[str, Any]) -> bool:
        asked = (r.get("renderer") or {}).get("asked", [])
        return any(a.split("/")[0] == "auto" for a in asked) and r.get("framing") in (None, "default")

    chosen: dict[int, dict[str, Any]] = {}
    for r in results:
        if r["size"] not in chosen or (engine_default(r) and not engine_default(chosen[r["size"]])):
            chosen[r["size"]] = r
    return list(chosen.values())


def latency(audio: dict[str, Any], results: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    """Mic-to-frame latency, algorithmic: the audio path's terms (of the extractor the scene heard with) plus one
    frame of render and present (the p95 frame of the engine's default quality at each size)."""
    rows = headline_rows(results)
    heard = rows[0].get("extractor", "mel") if rows else "mel"
    terms = dict(audio["extractors"].get(heard, {}).get("latency_ms", {}))
    audio_total = terms.pop("total", 0.0)
    worst = max(rows, key=lambda r: r["size"]) if rows else None
    frame_ms = worst["frame_ms_p95"] if worst else 1000.0 / fps
    return {
        "algorithmic_ms": audio_total + frame_ms,
        "terms_ms": {**terms, f"frame_p95_at_{worst['size'] if worst else 0}": frame_ms},
        "per_size_ms": {str(r["size"]): audio_total + r["frame_ms_p95"] for r in rows},
        "measured_ms": None,
    }


def render_alone(config: BenchOptions) -> list[dict[str, Any]]:
    """The NeRF renderer alone (no engine around it) per size, once per requested quality."""
    reports = []
    for head_scale in config.head_scale:
        for precision in config.precision:
            settings = NerfRenderSettings(head_scale=head_scale, precision=precision)
            report = measure_render(config.timed_avatar(), tuple(config.size_list()), device=config.device,
                                    settings=settings)
            reports.append({**report, "head_scale": head_scale})
    return reports


def run_bench(config: BenchOptions) -> dict[str, Any]:
    """Run every row, time the speech features, print a table and write the JSON; returns the results."""
    from rich.console import Console

    console = Console(width=None if Console().is_terminal else 120)  # logs and CI get the full table
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: this torch has no CUDA device; install a CUDA build of torch "
                               "(pip install torch==2.13.0 on a GPU machine) or use --device cpu")
    host = machine()
    results = run_rows(config, plan_rows(config), console.status)
    with console.status("timing speech features ..."):
        audio = measure_extractors(config.audio_seconds, hubert_sizes=("base", "large") if config.hubert else ())
    render = None
    if config.render:
        with console.status("timing the NeRF renderer alone (first frame compiles) ..."):
            render = render_alone(config)
    kernels = None
    if config.kernels:
        from engine.nerf.measure import measure_kernels

        with console.status("timing NeRF kernels (first run compiles) ..."):
            kernels = measure_kernels(device=config.device)
    conversation = None
    if config.conversation:
        from engine.eval.conversation import measure_conversation

        with console.status("measuring the kiosk's latencies on running engines (about two minutes) ..."):
            conversation = measure_conversation(config.timed_avatar(), config.conversation_size,
                                                config.conversation_repeats)
    avatar = config.timed_avatar()
    report = {
        "device": config.device, "machine": host,
        "scene": str(config.frame_scene() or "the avatar reading the bundled clips (engine/eval/bench.py)"),
        "avatar": str(avatar) if avatar else None, "fps_target": config.fps, "repeat": config.repeat,
        "warmup_rule": vars(config.warmup_rule()), "results": results, "audio": audio, "nerf_render": render,
        "nerf_kernels": kernels, "latency_ms": latency(audio, results, config.fps), "conversation": conversation,
        "unavailable": {"latency_measured": "the mic-to-frame latency is the algorithmic one (audio path terms + "
                                            "the frame's p95); no loopback measurement"},
    }
    print_report(console, report)
    if config.json is not None:
        config.json.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(config.json, json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {config.json}")
    return report


def quality_cell(r: dict[str, Any]) -> str:
    """The quality a result row was rendered at, for the table."""
    used = r.get("renderer")
    if used is None:
        return "no avatar"
    quality = "full" if used["head_scale"] >= 1.0 else f"fast x{used['head_scale']:g}"
    precision = {"float32": "fp32", "bfloat16": "bf16"}.get(used["precision"], used["precision"])
    return f"{quality} {precision} [{','.join(used['asked'])}]"


def warmup_cell(r: dict[str, Any]) -> str:
    """Warm-up frames and seconds of a row (median over repeats), '!N' where N repeats did not settle."""
    warmups = [w for w in r.get("warmup", []) if w]
    if not warmups:
        return "-"
    frames = statistics.median(w["frames"] for w in warmups)
    seconds = statistics.median(w["seconds"] for w in warmups)
    unsettled = sum(not w["settled"] for w in warmups)
    return f"{frames:.0f} {seconds:.1f}s" + (f" !{unsettled}" if unsettled else "")


def frame_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    machine_ = report["machine"]
    repeats = report.get("repeat", 1)
    table = Table(title=f"whole frames ({machine_['cpu']}, {machine_['cores']} cores, {report['device']}); "
                        f"median of {repeats} run{'s' if repeats > 1 else ''} per row")
    for column in ("size", "framing", "quality [asked]", "FPS", "FPS range", "p50 ms", "IQR ms", "p95 ms", "p99 ms",
                   "warm-up", "others"):
        table.add_column(column, justify="left" if column.startswith(("framing", "quality")) else "right",
                         no_wrap=True)
    for r in report["results"]:
        table.add_row(f"{r['size']}", r.get("framing") or "scene's", quality_cell(r), f"{r['fps']:.1f}",
                      f"{r['fps_min']:.1f}..{r['fps_max']:.1f}", f"{r['frame_ms_p50']:.1f}",
                      f"{r['frame_ms_p25']:.0f}..{r['frame_ms_p75']:.0f}", f"{r['frame_ms_p95']:.1f}",
                      f"{r['frame_ms_p99']:.1f}", warmup_cell(r),
                      "-" if r.get("others_cpu") is None else f"{100 * r['others_cpu']:.0f}%")
    return table


def parts_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="mean ms per frame by part (run of median FPS)")
    for column in ("size", "framing", "quality", *PARTS):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(f"{r['size']}", r.get("framing") or "scene's", quality_cell(r).split(" [")[0],
                      *(f"{r['parts_ms'][p]['mean']:.2f}" for p in PARTS))
    return table


def print_report(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    load = report["machine"].get("load_average_at_start")
    if load and load[0] > 0.25 * (report["machine"]["cores"] or 1):
        console.print(f"[yellow]load average {load[0]:.2f} when the bench started: other programs were running, "
                      "so the figures may be low and spread out[/yellow]")
    console.print(frame_table(report))
    console.print(parts_table(report))
    busy = [r for r in report["results"] if (r.get("others_cpu") or 0.0) > BUSY_SHARE]
    if busy:
        console.print("[yellow]other programs took "
                      + ", ".join(f"{100 * r['others_cpu']:.0f}% at {r['size']}^2" for r in busy)
                      + " of the CPU while those rows were measured (column 'others'): their figures are low; "
                      "measure on a quiet machine[/yellow]")
    unsettled = [r for r in report["results"] if any(w and not w["settled"] for w in r.get("warmup", []))]
    for r in unsettled:
        console.print(f"{r['size']}^2 {r.get('framing') or ''} {quality_cell(r)}: frame times had not settled after "
                      f"{report['warmup_rule']['max_s']:g} s of warm-up in some runs (measured anyway: '!' counts)")
    for r in report["results"]:
        if r.get("upload_fallback"):
            console.print(f"{r['size']}^2: frames reached the canvas by host upload: {r['upload_fallback']}")
    paths = {f"{r['size']}^2 {r.get('upload', '?')}" for r in report["results"]}
    console.print("upload path: " + ", ".join(sorted(paths, key=lambda p: int(p.split("^")[0]))))
    audio = Table(title="speech features")
    for column in ("extractor", "RTF streaming", "ms / video frame", "latency ms (algorithmic)"):
        audio.add_column(column, justify="right")
    for name, entry in report["audio"]["extractors"].items():
        audio.add_row(name, f"{entry['rtf_streaming']:.3f}", f"{entry['ms_per_video_frame_mean']:.2f}",
                      f"{entry['latency_ms']['total']:.0f}")
    console.print(audio)
    if report.get("nerf_render"):
        console.print(render_table(report["nerf_render"]))
    kernels = report.get("nerf_kernels")
    if kernels:
        console.print(kernel_table(kernels))
    if report.get("conversation"):
        console.print(conversation_table(report["conversation"]))
    per_size = report["latency_ms"].get("per_size_ms") or {"": report["latency_ms"]["algorithmic_ms"]}
    console.print("mic-to-frame latency, algorithmic (audio path + frame p95 at the engine's default quality): "
                  + ", ".join(f"{size}^2 {ms:.0f} ms" if size else f"{ms:.0f} ms" for size, ms in per_size.items()))


def conversation_table(measured: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"kiosk latencies, measured on running engines at {measured['size']}^2 (wall clock)")
    for column in ("from -> to", "median ms", "min..max ms", "n", "goal ms"):
        table.add_column(column, justify="right")
    for name, entry in measured.items():
        if not isinstance(entry, dict) or "goal_ms" not in entry:
            continue
        spread = f"{entry['min_ms']:.0f}..{entry['max_ms']:.0f}" if entry.get("n") else "-"
        median = f"{entry['median_ms']:.0f}" if entry.get("n") else "missed"
        table.add_row(name.replace("_to_", " -> ").replace("_", " "), median, spread,
                      f"{entry.get('n', 0)}" + (f" ({entry['missed']} missed)" if entry.get("missed") else ""),
                      f"{entry['goal_ms']:.0f}")
    return table


def render_table(renders: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    first = renders[0]
    table = Table(title=f"NeRF renderer alone ({first['avatar']}, {first['device']})")
    for column in ("size", "head_scale", "precision", "FPS", "median ms", "min ms", "head rays"):
        table.add_column(column, justify="right")
    for render in renders:
        for size, entry in render["sizes"].items():
            head = "x".join(str(n) for n in entry.get("head_rays", ()))
            table.add_row(str(size), str(render["head_scale"]), render["precision"], f"{entry['fps']:.1f}",
                          f"{entry['median_ms']:.1f}", f"{entry['min_ms']:.1f}", head)
    return table


def kernel_table(kernels: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"NeRF kernels ({kernels['device']}, {kernels['points']} points)")
    for column in ("kernel", "median ms", "min ms"):
        table.add_column(column, justify="right")
    for name, entry in kernels["encoders"].items():
        for mode in ("forward", "forward_specialized", "forward_backward"):
            if mode in entry:
                table.add_row(f"{name} {mode}", f"{entry[mode]['median_ms']:.1f}", f"{entry[mode]['min_ms']:.1f}")
    march = kernels["march_composite"]
    table.add_row(f"march+composite {kernels['size']}^2", f"{march['median_ms']:.1f}", f"{march['min_ms']:.1f}")
    return table
