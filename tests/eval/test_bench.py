"""`syncanim bench`: the JSON holds the fields downstream tools read; the warm-up ends when frame times settle, not
after a fixed count; repeats are reduced to a median and a spread; qualities and framings each get a row."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.eval.bench import (
    BenchPlan, CpuSample, FrameLog, Row, Warmup, aggregate, check_warmup, cpu_sample, others_share, plan_rows,
    summarise, warmup_end,
)
from engine.eval.bench_config import BUNDLED_AVATAR, BenchOptions, WarmupRule
from engine.scene import SCENES_DIR

QUICK = ["--no-hubert", "--no-kernels", "--no-render", "--no-conversation", "--audio-seconds", "1",
         "--warmup-window-s", "0.05", "--warmup-min-frames", "2"]


def jitter(n: int, ms: float, seed: int = 0, spread: float = 0.01) -> list[float]:
    """`n` frame times around `ms` with +-`spread` relative noise (a steady engine on a quiet machine)."""
    return list(ms * (1 + spread * np.random.default_rng(seed).uniform(-1, 1, n)))


@pytest.mark.slow
def test_bench_writes_the_promised_fields(tmp_path):
    out = tmp_path / "bench.json"
    # 64 and 160: head_scale 1 and 'auto' differ at 160 (160^2 > 128^2), yet the test card has no avatar to render,
    # so each size is timed once.
    assert main(["bench", "--scene", str(SCENES_DIR / "test_card.py"), "--sizes", "64,160", "--seconds", "0.6",
                 *QUICK, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["machine"]["cores"] >= 1
    assert len(report["machine"]["load_average_at_start"]) == 3
    assert [r["size"] for r in report["results"]] == [64, 160]
    for result in report["results"]:
        assert result["frames"] == 15 and result["fps"] > 0 and result["repeats"] == 1
        assert result["fps_min"] == result["fps"] == result["fps_max"]  # one run: no spread to report
        assert result["frame_ms_p25"] <= result["frame_ms_p50"] <= result["frame_ms_p75"] <= result["frame_ms_p95"]
        assert result["frame_ms_p95"] <= result["frame_ms_p99"]
        assert set(result["parts_ms"]) >= {"features", "motion", "render", "present"}
        assert result["upload"] == "host" and result["upload_fallback"] is None  # CPU frames: no interop to try
        assert result["renderer"] is None and result["framing"] is None  # the test card: no avatar, its own framing
        (warmup,) = result["warmup"]
        assert warmup["frames"] >= 4 and warmup["seconds"] > 0  # two windows of 2 frames at least
        assert 0.0 <= result["others_cpu"] <= 1.0
    latency = report["latency_ms"]
    assert latency["algorithmic_ms"] == latency["per_size_ms"]["160"] > 0  # the headline is the largest size's
    audio_path = latency["algorithmic_ms"] - report["results"][1]["frame_ms_p95"]
    assert latency["per_size_ms"]["64"] == pytest.approx(audio_path + report["results"][0]["frame_ms_p95"])
    assert report["audio"]["extractors"]["mel"]["rtf_streaming"] > 0


def test_summary_statistics_from_known_stamps():
    log = FrameLog(stamps=[0.0, 1.0, 1.010, 1.030, 1.040, 1.050],
                   stages=[{"render": 5.0, "extract": 1.0}] * 6)
    summary = summarise(log, warmup=1, size=32)
    assert summary["frames"] == 4
    assert summary["frame_ms_mean"] == pytest.approx(12.5)
    assert summary["fps"] == pytest.approx(80.0)
    assert summary["frame_ms_p50"] == pytest.approx(10.0)
    assert summary["frame_ms_p25"] == pytest.approx(10.0) and summary["frame_ms_p75"] == pytest.approx(12.5)
    assert summary["parts_ms"]["render"]["mean"] == pytest.approx(6.0)


def test_a_slow_start_is_warmed_up_past_and_no_further_than_two_windows():
    rule = WarmupRule(window_s=0.38, min_frames=3, tolerance=0.05, max_s=60.0)  # windows of 10 frames at 40 ms
    slow = [900.0, 300.0, 150.0, 90.0, 70.0, 60.0]  # compilation, cold caches, then the engine's own pace
    times = slow + jitter(200, 40.0)
    end = warmup_end(times, rule)
    assert end is not None and end.settled
    assert len(slow) < end.frames <= len(slow) + 20
    assert end.seconds == pytest.approx(sum(times[:end.frames]) / 1e3)


def test_a_steady_run_warms_up_for_two_windows_only_whatever_its_frame_time():
    rule = WarmupRule(window_s=0.19, min_frames=3, tolerance=0.05, max_s=60.0)
    end = warmup_end(jitter(100, 25.0, seed=3), rule)  # 8 frames of about 25 ms span 0.19 s, 7 do not
    assert end is not None and end.settled and end.frames == 16
    end = warmup_end(jitter(100, 1500.0, seed=4), rule)  # slow frames: a window is min_frames long
    assert end is not None and end.settled and end.frames == 6


def test_frame_times_that_never_settle_stop_at_the_cap_and_say_so():
    rule = WarmupRule(window_s=0.2, min_frames=3, tolerance=0.05, max_s=3.0)
    drifting = [20.0 * 1.02**k for k in range(400)]  # each 10-frame window 20% slower than the one before
    end = warmup_end(drifting, rule)
    assert end is not None and not end.settled
    assert end.seconds >= 3.0 and sum(drifting[:end.frames - 1]) / 1e3 < 3.0  # the first frame past the cap
    assert warmup_end(drifting[:end.frames - 1], rule) is None  # short of the cap it keeps warming up


def test_the_frame_loop_asks_only_about_the_newest_frame():
    rule = WarmupRule(window_s=0.1, min_frames=3, tolerance=0.05, max_s=60.0)
    times = [100.0, 100.0, 50.0, 50.0, 50.0, 50.0, 50.0]
    assert check_warmup(times[:5], rule) is None  # fewer than two windows
    assert check_warmup(times[:6], rule) is None  # the older window's median is still a slow frame: 50 vs 100
    assert check_warmup(times, rule) == Warmup(7, 0.45, True)


def test_a_slow_row_measures_at_least_ten_frames_then_stops_at_its_time_limit():
    plan = BenchPlan(WarmupRule(), frames=100, max_s=10.0)
    assert not plan.measured([1500.0] * 6)  # 9 s
    assert not plan.measured([1500.0] * 9)  # past the limit, but too few frames to tell a spread
    assert plan.measured([1500.0] * 10) and plan.measured([20.0] * 100) and not plan.measured([20.0] * 99)


def fake_run(frame_ms: float, spread: float, seed: int, warmup: int = 3, frames: int = 50, others: float = 0.01
             ) -> dict:
    """summarise() of a run whose measured frames take `frame_ms` with +-`spread` relative noise."""
    intervals = [400.0] * warmup + jitter(frames, frame_ms, seed, spread)
    stamps = np.concatenate([[0.0], np.cumsum(intervals) / 1e3])
    log = FrameLog(stamps=list(stamps), stages=[{"render": frame_ms / 2}] * len(stamps))
    return {**summarise(log, warmup, 256), "warmup": {"frames": warmup, "seconds": 1.2, "settled": True},
            "others_cpu": others}


def test_repeats_are_reduced_to_the_median_with_their_spread():
    runs = [fake_run(40.0, 0.01, 1), fake_run(50.0, 0.01, 2, others=0.4), fake_run(44.0, 0.01, 3)]  # 25, 20, 22.7
    row = aggregate(runs)
    assert row["repeats"] == 3 and row["frames"] == 50
    assert row["fps"] == pytest.approx(1000 / 44.0, rel=0.01)  # the median run's, not the best
    assert row["fps_min"] == pytest.approx(20.0, rel=0.01) and row["fps_max"] == pytest.approx(25.0, rel=0.01)
    assert row["frame_ms_p50_min"] == pytest.approx(40.0, rel=0.01)
    assert row["frame_ms_p50_max"] == pytest.approx(50.0, rel=0.01)
    assert row["parts_ms"]["render"]["mean"] == pytest.approx(22.0)  # from the run of median FPS
    assert [r["fps"] for r in row["runs"]] == [r["fps"] for r in runs] and len(row["warmup"]) == 3
    assert row["frame_ms_p25"] < row["frame_ms_p50"] < row["frame_ms_p75"]
    assert row["others_cpu"] == 0.4  # the busiest repeat: another program slowed one of them
    with pytest.raises(ValueError):
        aggregate([])


def test_the_cpu_other_programs_took_is_told_apart_from_the_benchs_own():
    start = CpuSample(wall_s=10.0, machine_s=100.0, own_s=50.0)
    busy = CpuSample(wall_s=12.0, machine_s=103.0, own_s=51.8)  # 3 CPU s in 2 s on 2 cores; the bench used 1.8
    assert others_share(start, busy, cores=2) == pytest.approx(0.3)
    quiet = CpuSample(wall_s=12.0, machine_s=101.8, own_s=51.8)
    assert others_share(start, quiet, cores=2) == 0.0
    assert others_share(None, quiet, cores=2) is None and others_share(quiet, quiet, cores=2) is None
    now = cpu_sample()
    assert now is None or now.machine_s >= now.own_s > 0


def test_full_quality_and_the_fast_setting_get_a_row_each_where_they_differ():
    from engine.nerf.render import resolve_precision

    rows = plan_rows(BenchOptions(sizes=("128", "256"), avatar=Path("any")))
    precision = resolve_precision("auto", "cpu")
    assert rows == [Row(128, "default", 1.0, precision, ("1", "auto")),  # 'auto' is full quality at 128^2
                    Row(256, "default", 1.0, precision, ("1",)), Row(256, "default", 0.5, precision, ("auto",))]
    framed = plan_rows(BenchOptions(sizes=("256",), framings=True, head_scale=(1.0,), precision=("float32",),
                                   avatar=Path("any")))
    assert [(r.framing, r.head_scale, r.precision) for r in framed] == [
        ("default", 1.0, "float32"), ("med", 1.0, "float32"), ("max", 1.0, "float32")]


def test_sizes_are_given_either_way_and_bad_ones_are_explained():
    assert BenchOptions(sizes=("512", "256", "128")).size_list() == [512, 256, 128]
    assert BenchOptions(sizes="128,256").size_list() == [128, 256]
    with pytest.raises(ValueError, match="integers like 128 256 512"):
        BenchOptions(sizes=("128x128",))
    with pytest.raises(ValueError, match="--head-scale 1.5"):
        BenchOptions(head_scale=(1.5,))


@pytest.mark.slow
@pytest.mark.skipif(not (BUNDLED_AVATAR / "nerf.safetensors").is_file(), reason="assets/avatar is not present")
def test_framings_mode_times_the_avatar_at_each_framing(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--framings", "--sizes", "32", "--head-scale", "1", "--precision", "float32",
                 "--seconds", "0.2", "--warmup-max-s", "5", *QUICK, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["avatar"] == str(BUNDLED_AVATAR) and "bundled clips" in report["scene"]
    results = report["results"]
    assert [(r["framing"], r["zoom"]) for r in results] == [("default", 0.0), ("med", 0.5), ("max", 1.0)]
    for r in results:
        assert r["renderer"] == {"head_scale": 1.0, "precision": "float32", "asked": ["1"], "head_rays": [32, 32]}
        assert r["frames"] == 5 and r["parts_ms"]["render"]["mean"] > 0


def test_defaults_time_the_bundled_avatar_and_a_scene_replaces_it():
    config = BenchOptions()
    if (BUNDLED_AVATAR / "nerf.safetensors").is_file():
        assert config.timed_avatar() == BUNDLED_AVATAR and config.frame_scene() is None
        assert config.framing_list() == ("default",)
    assert BenchOptions(avatar=Path("a")).frame_scene() is None
    card = BenchOptions(scene=SCENES_DIR / "test_card.py")
    assert card.frame_scene().name == "test_card.py" and card.framing_list() == (None,)
    assert BenchOptions(scene=SCENES_DIR / "demo.py", framings=True).framing_list() == ("default", "med", "max")
