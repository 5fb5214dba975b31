"""Training: losses fall on a small synthetic dataset, the checkpoint carries its metadata, runs resume."""
import json

import pytest

from engine.data.dataset import DatasetError
from engine.io.checkpoint import read_metadata
from engine.motion.config import motion_preset
from engine.motion.train import train_motion

STATE_DIR, LOG_FILE = ".motion-train", "motion_log.jsonl"  # the file names the README and users rely on


def read_log(avatar):
    return [json.loads(line) for line in (avatar / LOG_FILE).read_text().splitlines()]


def test_losses_fall_on_a_small_synthetic_dataset(synth_data):
    """AdamW on the training objective (both syncers, rollouts fed their own outputs) lowers it well below where a
    fresh model ("hold the previous frame") starts."""
    import torch

    from engine.motion.data import load_motion_data
    from engine.motion.runtime import build_syncers
    from engine.motion.train import Tensors, fit_normalisation, rollout

    config = motion_preset("test", synth_data[0], synth_data[0] / "unused", state_noise=0.0)
    data = load_motion_data(config.data, config.audio, config.blendshapes)
    torch.manual_seed(0)
    pose, emotion = build_syncers(data.spec, config.dims, data.names, config.state_dropout)
    fit_normalisation(data, pose, emotion)
    tensors = Tensors(data, pose, emotion, torch.device("cpu"))
    starts = torch.randint(2, data.val_start - 12, (16,), generator=torch.Generator().manual_seed(0))
    zero_shot = torch.zeros(16, dtype=torch.bool)
    optimizer = torch.optim.AdamW(list(pose.parameters()) + list(emotion.parameters()), lr=config.lr)

    def loss():
        torch.manual_seed(1)
        return rollout(pose, emotion, tensors, starts, 12, 0.5, zero_shot, config)

    with torch.no_grad():
        before = loss()
    for _ in range(40):
        optimizer.zero_grad()
        loss()["total"].backward()
        optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after["pose_l1"] < 0.8 * before["pose_l1"]
    assert after["expr_l1"] < 0.9 * before["expr_l1"]


def _fresh_models(synth_data, copies=0):
    import torch

    from engine.motion.data import load_motion_data
    from engine.motion.runtime import build_syncers
    from engine.motion.train import Tensors, fit_normalisation

    config = motion_preset("test", synth_data[0], synth_data[0] / "unused")
    data = load_motion_data(config.data, config.audio, config.blendshapes, copies=copies)
    torch.manual_seed(0)
    pose, emotion = build_syncers(data.spec, config.dims, data.names, config.state_dropout)
    fit_normalisation(data, pose, emotion)
    return data, pose, emotion, Tensors(data, pose, emotion, torch.device("cpu"))


def test_augmented_audio_versions_follow_the_recording(synth_data):
    import numpy as np

    data, *_ = _fresh_models(synth_data, copies=2)
    plain, *_ = _fresh_models(synth_data, copies=0)
    assert data.features.shape == (3, *plain.features.shape[1:])
    np.testing.assert_array_equal(data.features[0], plain.features[0])
    assert not np.allclose(data.features[1], data.features[0])
    assert not np.allclose(data.features[2], data.features[1])


def test_motion_statistics_of_a_still_head_are_the_truths_own_spread_and_speed(synth_data):
    """A pose syncer that holds its previous frame moves not at all, so the loss is exactly the truth's std and mean
    speed over each rollout plus its mean's distance from the held frame; a fresh one (nearly still) gets gradients
    that reach its heads."""
    import torch

    from engine.motion.train import motion_statistics

    data, pose, _, tensors = _fresh_models(synth_data)
    starts, frames = torch.tensor([10, 40, 90, 200]), 20

    def loss():
        return motion_statistics(pose, tensors, starts, torch.zeros(4, dtype=torch.long),
                                 torch.zeros(4, dtype=torch.bool), frames, torch.full((pose.latent,), 0.5))

    loss().backward()
    assert pose.rotation[-1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        for head in (pose.rotation, pose.translation):
            head[-1].weight.zero_()
        truth = tensors.pose[starts[:, None] + torch.arange(frames)]
        held = tensors.pose[starts - 1]
        expected = (truth.std(1).mean() + truth.diff(dim=1).abs().mean(1).mean()
                    + (truth.mean(1) - held).abs().mean())
        assert float(loss()) == pytest.approx(float(expected), rel=1e-5)


def test_training_logs_validation_losses(trained_avatar):
    entries = read_log(trained_avatar)
    assert [e["step"] for e in entries] == [0, 20, 40]
    for entry in entries:
        assert {"pose_l1", "expr_l1", "pose_kl", "expr_kl", "tf_pose_l1", "tf_expr_l1"} <= set(entry["val"])
        assert all(v == v and abs(v) < 1e6 for v in entry["val"].values())
    assert entries[-1]["train"]["total"] > 0


def test_checkpoint_metadata_names_features_blendshapes_stats_and_versions(trained_avatar, synth_data):
    meta = read_metadata(trained_avatar / "motion.safetensors")
    assert meta["features"]["extractor"] == "mel" and meta["features"]["params"]["n_mels"] == 80
    assert meta["lookahead_frames"] == 2 and meta["lookahead_ms"] == pytest.approx(40.0)
    assert meta["blendshape_names"][:2] == ["eyeBlinkLeft", "eyeBlinkRight"] and len(meta["blendshape_names"]) == 7
    assert set(meta["normalisation"]) >= {"features", "pose", "blendshapes", "silence"}
    assert len(meta["normalisation"]["pose"]["std"]) == 6
    assert {"torch", "numpy", "motion"} <= set(meta["versions"])
    assert meta["blink"]["intervals_frames"] and 0 < meta["blink"]["threshold"] < 1
    assert meta["reference"]["frame"] == 0 and meta["training"]["steps"] == 40
    latent = meta["dims"]["latent"]
    assert len(meta["latent_rho"]["pose"]) == latent and len(meta["latent_rho"]["expr"]) == latent
    assert all(0.0 <= r <= 0.98 for r in meta["latent_rho"]["pose"] + meta["latent_rho"]["expr"])


def test_training_resumes_where_it_stopped(synth_data, tmp_path):
    tiny = dict(progress=False, batch_size=4, sequence_frames=6, val_every=5, checkpoint_every=5)
    train_motion(motion_preset("test", synth_data[0], tmp_path, steps=5, **tiny))
    assert (tmp_path / STATE_DIR / "state.safetensors").is_file()
    train_motion(motion_preset("test", synth_data[0], tmp_path, steps=10, **tiny))
    steps = [entry["step"] for entry in read_log(tmp_path)]
    assert steps == [0, 5, 10]  # the second run picked up at step 5 instead of starting again
    assert read_metadata(tmp_path / STATE_DIR / "state.safetensors")["step"] == 10


def test_a_run_its_time_limit_stopped_trains_no_further_under_that_limit(synth_data, tmp_path):
    tiny = dict(progress=False, batch_size=4, sequence_frames=6, time_limit_s=1e-9)
    train_motion(motion_preset("test", synth_data[0], tmp_path, **tiny))  # stops after its first step
    assert read_metadata(tmp_path / STATE_DIR / "state.safetensors")["step"] == 1
    lines = read_log(tmp_path)
    train_motion(motion_preset("test", synth_data[0], tmp_path, **tiny))  # the limit counts across resumes
    assert read_metadata(tmp_path / STATE_DIR / "state.safetensors")["step"] == 1 and read_log(tmp_path) == lines
    assert read_metadata(tmp_path / "motion.safetensors")["training"]["val"] == lines[-1]["val"]


def test_resume_refuses_state_from_other_sizes(synth_data, tmp_path):
    tiny = dict(progress=False, batch_size=4, sequence_frames=6, val_every=5, checkpoint_every=5)
    train_motion(motion_preset("test", synth_data[0], tmp_path, steps=5, **tiny))
    from dataclasses import replace

    config = motion_preset("test", synth_data[0], tmp_path, steps=10, **tiny)
    config = replace(config, dims=replace(config.dims, hidden=24))
    with pytest.raises(ValueError, match=r"state.safetensors.*dims.hidden.*--no-resume"):
        train_motion(config)


def test_missing_blendshapes_name_the_file_and_the_fix(synth_data, tmp_path):
    config = motion_preset("test", synth_data[0], tmp_path, progress=False,
                           blendshapes=("eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft"))
    with pytest.raises(DatasetError, match=r"tracks.npz has no blendshapes \['eyeWideLeft'\].*preprocess"):
        train_motion(config)


TRAIN_IN_A_PROCESS = """
import json, sys
from pathlib import Path
from engine.motion.config import motion_preset
from engine.motion.train import train_motion
train_motion(motion_preset("test", Path(sys.argv[1]), Path(sys.argv[2]), **json.loads(sys.argv[3])))
"""


@pytest.mark.slow  # three trainings, one in a fresh process: about half a minute
def test_a_run_killed_after_a_checkpoint_resumes_to_what_an_uninterrupted_run_makes(synth_data, tmp_path):
    """SIGKILL a training process just after its first checkpoint (step 15 of 40: the statistics loss has begun
    and the next log line's averages are half gathered), then run again: the same weights bit for bit and the
    same log as a run that went through (the preset's one torch thread makes a CPU run repeat exactly)."""
    import signal
    import subprocess
    import sys
    import time

    import torch

    from engine.io.checkpoint import load_checkpoint

    options = dict(progress=False, checkpoint_every=15)
    through, killed = tmp_path / "through", tmp_path / "killed"
    train_motion(motion_preset("test", synth_data[0], through, **options))
    state = killed / STATE_DIR / "state.safetensors"
    process = subprocess.Popen([sys.executable, "-c", TRAIN_IN_A_PROCESS, str(synth_data[0]), str(killed),
                                json.dumps(options)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not state.is_file() and process.poll() is None:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, process.stderr.read().decode()[-3000:]
    assert read_metadata(state)["step"] in (15, 30) and not (killed / "motion.safetensors").exists()
    train_motion(motion_preset("test", synth_data[0], killed, **options))
    expected, resumed = (load_checkpoint(avatar / "motion.safetensors")[0] for avatar in (through, killed))
    assert expected.keys() == resumed.keys()
    differ = {k: float((v - resumed[k]).abs().max()) for k, v in expected.items() if not torch.equal(v, resumed[k])}
    assert not differ, differ

    def entries(avatar):  # seconds of training differ from run to run
        return [{k: v for k, v in e.items() if k != "elapsed_s"} for e in read_log(avatar)]

    assert entries(killed) == entries(through) and [e["step"] for e in entries(through)] == [0, 20, 40]
    assert read_metadata(killed / "motion.safetensors")["training"]["val"] == entries(through)[-1]["val"]
