"""Batches on a local Ray instance: real engine runs and trainings, small."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.batch.config import BatchOptions, BatchTrainOptions, ClusterOptions
from engine.batch.drive import run_batch, run_batch_train
from engine.batch.summary import SUMMARY_FILE
from engine.cli import main

ASSETS = Path(__file__).parents[2] / "assets"


@pytest.fixture
def jobs(tmp_path):
    """A good job (a second of the bundled speech, 64x64, on a colour), one that speaks text with the built-in
    voice, and one whose audio is no audio."""
    from engine.audio.sources import load_clip
    from engine.io.video import write_wav

    clip = load_clip(ASSETS / "audio" / "02_how.wav")
    write_wav(tmp_path / "short.wav", clip.samples[: clip.sample_rate], clip.sample_rate)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"name": "good", "audio": "short.wav", "size": "64x64", "background": "#202830"}\n'
                    '{"name": "spoken", "text": "Hello.", "size": "64x64", "framing": "max"}\n'
                    '{"name": "bad", "audio": "broken.wav", "size": "64x64"}\n')
    return path


def records(out: Path) -> dict:
    return {job["name"]: job for job in json.loads((out / SUMMARY_FILE).read_text())["jobs"]}


def test_a_failing_job_is_retried_and_reported_while_the_others_finish(ray_local, jobs, tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "out"
    assert main(["batch", str(jobs), "-o", str(out), "--retries", "1"]) == 1  # a job failed
    done = records(out)
    assert done["good"]["status"] == "done" and done["good"]["tries"] == 1 and done["good"]["media_s"] > 1.0
    assert done["spoken"]["status"] == "done" and done["spoken"]["media_s"] > 1.0  # espeak-ng spoke it
    assert done["bad"]["status"] == "failed" and done["bad"]["tries"] == 2
    assert len(done["bad"]["errors"]) == 2 and "broken.wav" in done["bad"]["errors"][-1]
    frames = iio.imread(out / "good.mp4", plugin="pyav")
    assert frames.shape[1:] == (64, 64, 3) and len(frames) >= 25
    assert np.abs(frames[-1].astype(int) - [0x20, 0x28, 0x30]).max(-1)[0, 0] < 12  # the backdrop's colour
    assert sorted(p.name for p in out.iterdir()) == [SUMMARY_FILE, "good.mp4", "spoken.mp4"]  # nothing half-written


def test_a_batch_started_again_does_only_what_is_missing(ray_local, jobs, tmp_path):
    out = tmp_path / "out"
    cluster = ClusterOptions(retries=0, parallel=1)
    run_batch(BatchOptions(jobs, out, cluster=cluster))
    made = (out / "good.mp4").stat().st_mtime_ns
    summary = run_batch(BatchOptions(jobs, out, cluster=cluster))
    assert {r.name: r.status for r in summary.records.values()} == {"good": "skipped", "spoken": "skipped",
                                                                     "bad": "failed"}
    assert (out / "good.mp4").stat().st_mtime_ns == made


def test_recordings_become_avatars_with_their_reports_and_are_not_made_twice(ray_local, tiny_data, eval_universal,
                                                                             tmp_path):
    data = tmp_path / "alice"
    shutil.copytree(tiny_data, data)
    out = tmp_path / "avatars"
    options = BatchTrainOptions((data,), out, preset="test", universal=eval_universal,
                                cluster=ClusterOptions(cpus_per_job=2, retries=0))
    summary = run_batch_train(options)
    assert summary.records["alice"].status == "done", summary.records["alice"].errors
    for name in ("nerf.safetensors", "motion.safetensors", "report/report.json", "report/report.md"):
        assert (out / "alice" / name).is_file(), name
    assert not list((out / "alice").glob(".*"))  # the resumable training state stays on the worker's node
    assert run_batch_train(options).records["alice"].status == "skipped"


def test_an_avatar_folder_that_is_no_avatar_is_refused_before_anything_runs(jobs, tmp_path):
    from engine.scene.loader import SceneError

    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneError, match="has no motion model"):
        run_batch(BatchOptions(jobs, tmp_path / "out", avatar=tmp_path / "empty"))
    assert not any((tmp_path / "out").iterdir())
