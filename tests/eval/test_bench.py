"""`syncanim bench` on the test card: the JSON holds the fields downstream tools read, with sane values."""
import json

import pytest

from engine.cli import main
from engine.eval.bench import FrameLog, summarise
from engine.eval.bench_config import BenchConfig


def test_bench_writes_the_promised_fields(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "64,96", "--seconds", "0.6", "--warmup-frames", "2", "--no-hubert", "--no-kernels", "--no-render",
                 "--audio-seconds", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["machine"]["cores"] >= 1
    assert [r["size"] for r in report["results"]] == [64, 96]
    for result in report["results"]:
        assert result["frames"] == 15 and result["fps"] > 0
        assert result["frame_ms_p50"] <= result["frame_ms_p95"] <= result["frame_ms_p99"]
        assert set(result["parts_ms"]) >= {"features", "motion", "render", "present"}
        assert result["upload"] == "host" and result["upload_fallback"] is None  # CPU frames: no interop to try
    latency = report["latency_ms"]
    assert latency["algorithmic_ms"] == latency["per_size_ms"]["96"] > 0  # the headline is the largest size's
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
    assert summary["parts_ms"]["render"]["mean"] == pytest.approx(6.0)


def test_bad_sizes_are_explained():
    with pytest.raises(ValueError, match="comma-separated integers"):
        BenchConfig(sizes="128x128").size_list()


def test_with_an_avatar_the_whole_frame_is_timed_on_the_demo_scene(tmp_path):
    assert BenchConfig().frame_scene().name == "test_card.py"
    assert BenchConfig(avatar=tmp_path).frame_scene().name == "demo.py"
    assert BenchConfig(avatar=tmp_path, scene=tmp_path / "mine.py").frame_scene() == tmp_path / "mine.py"
