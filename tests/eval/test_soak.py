"""The kiosk soak's measurements (scripts/soak_kiosk.py) on signals whose answers are known."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def load_soak():
    """scripts/soak_kiosk.py as a module (a harness, not part of the engine)."""
    path = Path(__file__).parents[2] / "scripts" / "soak_kiosk.py"
    spec = importlib.util.spec_from_file_location("soak_kiosk", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


soak = load_soak()
FrameTimes, Sample = soak.FrameTimes, soak.Sample
caption_onset, caption_signal, child_pids = soak.caption_onset, soak.caption_signal, soak.child_pids
drift_summary, frame_time_summary, marker_tone = soak.drift_summary, soak.frame_time_summary, soak.marker_tone
memory_growth, proc_status, theil_sen_slope, tone_onset = (soak.memory_growth, soak.proc_status,
                                                           soak.theil_sen_slope, soak.tone_onset)

RATE = 16000


def test_the_marker_onset_is_found_to_the_sample_after_speech_and_silence():
    rng = np.random.default_rng(0)
    speech = (0.3 * rng.standard_normal(RATE)).astype(np.float32)  # loud, broadband: not the marker
    at = len(speech) + round(0.12 * RATE)  # the cut leaves the lip-sync delay silent before the tone
    audio = np.concatenate([speech, np.zeros(at - len(speech), np.float32), marker_tone(), np.zeros(RATE, np.float32)])
    onset = tone_onset(audio, RATE, 0, len(audio))
    assert onset is not None and abs(onset - at) <= 16  # within 1 ms
    assert tone_onset(audio[:at], RATE, 0, at) is None  # speech and silence alone hold no marker


def test_the_caption_onset_is_the_first_frame_after_the_gap():
    times = np.arange(40) / 25
    whites = np.zeros(40)
    whites[:10] = 0.05  # the caption of the speech the marker interrupts
    whites[14:24] = 0.03  # the marker's caption, from frame 14
    assert caption_onset(times, whites, t0=8 / 25, heard=14 / 25 + 0.01) == pytest.approx(14 / 25)
    assert caption_onset(times, np.zeros(40), t0=0.3, heard=0.6) is None  # nothing shown: not measured


def markers(offsets_ms, phases_ms, every_s=30.0):
    found = []
    for i, (offset, phase) in enumerate(zip(offsets_ms, phases_ms, strict=True)):
        heard = 10.0 + i * every_s + phase / 1e3
        found.append({"sent_engine_s": heard - 0.2, "heard_s": heard, "seen_s": heard - offset / 1e3,
                      "offset_ms": offset})
    return found


def test_drift_is_the_trend_of_the_onsets_against_the_frame_grid():
    rng = np.random.default_rng(1)
    offsets = rng.uniform(0, 40, 60)  # where in its frame each marker began: not drift
    steady = drift_summary(markers(offsets, np.full(60, 0.5)), 25.0)
    assert steady["drift_ms_fit"] == pytest.approx(0.0, abs=1e-6) and steady["within_one_frame"]
    phases = np.linspace(0.0, 8.0, 60)  # the audio slides 8 ms against the video over the run
    phases[5] = -13.0  # one marker applied in a late frame
    drifting = drift_summary(markers(offsets, phases), 25.0)
    assert drifting["drift_ms_fit"] == pytest.approx(8.0, abs=0.3) and drifting["markers_off_grid"] == 1
    late = drift_summary(markers(np.r_[offsets[:-1], 95.0], np.full(60, 0.5)), 25.0)
    assert not late["within_one_frame"]  # a caption more than a frame before its sound


def test_theil_sen_ignores_an_outlier():
    x = np.arange(10.0)
    y = 2 * x
    y[3] = 100
    assert theil_sen_slope(x, y) == pytest.approx(2.0)


def test_memory_growth_after_warm_up():
    flat = [Sample(t, 200.0 + (t < 60) * 50 * t / 60, 0, 0, 8) for t in np.arange(0, 600, 5.0)]
    assert memory_growth(flat, warmup_s=60)["growth_pct"] == pytest.approx(0.0)
    leaking = [Sample(t, 200.0 + 0.1 * t, 0, 0, 8) for t in np.arange(0, 600, 5.0)]
    growth = memory_growth(leaking, warmup_s=60, end_s=500)
    # medians of 60..115 s (209.0 MB) and 445..500 s (247.0 MB)
    assert growth["growth_pct"] == pytest.approx(100 * (247.25 - 208.75) / 208.75, abs=0.1)
    assert memory_growth(flat[:14], warmup_s=60)["growth_pct"] is None  # too few samples after the warm-up


def test_process_memory_and_children_come_from_proc():
    status = proc_status(os.getpid())
    assert status["VmRSS"] > 1000 and status["Threads"] >= 1
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert child.pid in child_pids(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert proc_status(child.pid) == {}  # gone


def test_the_caption_signal_is_read_from_the_recording(tmp_path):
    from engine.io.video import Mp4Writer

    path = tmp_path / "captions.mp4"
    with Mp4Writer(path, 25.0, quality=8) as writer:
        for i in range(20):
            frame = np.full((64, 96, 3), 30, np.uint8)
            if i >= 10:
                frame[56:60, 8:88] = 255  # caption letters in the bottom fifth
            writer.write(frame)
    times, whites, fps = caption_signal(path)
    assert fps == 25.0 and np.allclose(times, np.arange(20) / 25)
    assert whites[:10].max() < 0.01 and whites[10:].min() > 0.2


def test_frame_times_leave_out_the_start_up_and_count_windows_over_budget():
    windows = [FrameTimes(t, frame, 20.0, p99, 60.0, 300) for t, frame, p99 in
               ((5.0, 100, 900.0), (10.0, 250, 30.0), (15.0, 375, 35.0), (20.0, 500, 45.0))]
    summary = frame_time_summary(windows, fps=25.0)
    assert summary["windows"] == 3  # the first, compiling kernels, is not steady running
    assert summary["p99_median_ms"] == 35.0 and summary["p99_worst_ms"] == 45.0
    assert summary["windows_p99_over_budget"] == 1 and summary["budget_ms"] == 40.0
    assert frame_time_summary(windows[:1], fps=25.0) == {"windows": 0}
