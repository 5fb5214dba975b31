"""NeRF training end to end on a tiny procedural dataset: the stages run, validation PSNR rises, checkpoints
resume, and the trained avatar reloads."""
import json
from pathlib import Path

import pytest
import torch

from engine.io.checkpoint import read_metadata
from engine.nerf.avatar import load_avatar
from engine.nerf.train import lr_scale, train_nerf
from engine.nerf.train_config import NERF_FILE, TrainNerfConfig, nerf_preset

pytestmark = pytest.mark.usefixtures("taichi_cpu")


def log(avatar):
    path = avatar / "nerf_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_stages_fit_the_dataset_and_write_the_avatar(trained_avatar):
    records = log(trained_avatar)
    assert [r["stage"] for r in records if r["step"] in (150, 20)] == ["body", "head", "lips"]
    first, last = records[0]["val_psnr"], records[-1]["val_psnr"]
    # the head stages add a face the upper body alone cannot explain (150 steps on 16 frames: about +2.4 dB, and
    # from run to run of the seeds the first validation moves by 0.6 dB)
    assert last > first + 1.5, records
    assert records[-1]["val_psnr"] > 21.0
    assert sorted(p.name for p in (trained_avatar / "val").glob("*.png"))[-1].startswith("lips_")
    model = load_avatar(trained_avatar / NERF_FILE)
    assert model.grid.occupied_fraction() < 1.0  # the grid was carved from the head's visual hull and density
    grid = read_metadata(trained_avatar / NERF_FILE)["render_grid"]  # tightened where real-time renders do best
    assert grid["psnr"][f"{grid['alpha']:.2f}"] == max(grid["psnr"].values()) and len(grid["psnr"]) == 5
    assert grid["occupied"] == pytest.approx(model.grid.occupied_fraction())


def test_a_finished_run_resumes_without_training_again(trained_avatar, scene_data):
    before = load_avatar(trained_avatar / NERF_FILE).state_dict()
    lines = len(log(trained_avatar))
    train_nerf(nerf_preset("test", scene_data, trained_avatar, device="cpu", progress=False, head_audio=True))
    assert len(log(trained_avatar)) == lines  # no step ran, so nothing was validated again
    after = load_avatar(trained_avatar / NERF_FILE).state_dict()
    assert before.keys() == after.keys() and all(torch.equal(v, after[k]) for k, v in before.items())


def test_presets_and_missing_inputs_name_the_fix(tmp_path, scene_data):
    assert nerf_preset("gpu", tmp_path, tmp_path).rays == 65536
    assert nerf_preset("cpu", tmp_path, tmp_path).time_limit_s <= 3600
    with pytest.raises(ValueError, match="unknown NeRF preset"):
        nerf_preset("huge", tmp_path, tmp_path)
    config = TrainNerfConfig(data=scene_data, avatar_dir=tmp_path / "a", expression=("noSuchShape",), device="cpu")
    with pytest.raises(ValueError, match="noSuchShape"):
        train_nerf(config)


def test_config_module_is_light():
    import subprocess
    import sys

    code = "import sys, engine.nerf.train_config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False"], out.stderr


def test_an_interrupted_run_resumes_where_it_stopped(scene_data, tmp_path):
    avatar = tmp_path / "avatar"
    short = dict(device="cpu", progress=False, body_steps=12, head_steps=6, lip_steps=2, val_every=1000)
    train_nerf(nerf_preset("test", scene_data, avatar, time_limit_s=1e-9, **short))  # stops after one step
    assert log(avatar) == [] and (avatar / NERF_FILE).is_file()  # stopped early, the model is still written
    state = read_metadata(avatar / ".nerf-train" / "state.safetensors")
    assert (state["stage"], state["step"]) == ("body", 1)
    train_nerf(nerf_preset("test", scene_data, avatar, time_limit_s=1e-9, **short))  # that limit is spent already
    state = read_metadata(avatar / ".nerf-train" / "state.safetensors")
    assert (state["stage"], state["step"]) == ("body", 1)  # nothing trained again
    train_nerf(nerf_preset("test", scene_data, avatar, **short))  # no limit: on from where the limit stopped it
    assert [(r["stage"], r["step"]) for r in log(avatar)] == [("body", 12), ("head", 6), ("lips", 2)]


def test_the_time_left_is_shared_by_the_remaining_stages_in_proportion_to_their_steps(tmp_path):
    from engine.nerf.train import _stage_deadline

    config = nerf_preset("test", tmp_path, tmp_path, body_steps=100, head_steps=200, lip_steps=100)
    assert _stage_deadline(config, "body", 1000.0, 1040.0) == 1010.0
    assert _stage_deadline(config, "head", 1002.0, 1040.0) == 1002.0 + 38.0 * 2 / 3  # the body's spare time carries
    assert _stage_deadline(config, "lips", 1030.0, 1040.0) == 1040.0
    assert _stage_deadline(config, "head", 0.0, float("inf")) == float("inf")


def test_frames_with_rare_expressions_are_drawn_more_often_in_the_head_stages():
    from engine.nerf.train import rare_expression_weights

    expression = torch.full((100, 2), 0.1)
    expression[:, 1] += torch.linspace(0.0, 0.05, 100)  # slow drift of a brow: not rare
    expression[[10, 50], 0] = 0.6  # two blinks
    expression[60:80, 1] += 0.3  # a long brow raise: unusual, but a fifth of the frames
    weights = rare_expression_weights(expression, boost=5.0)
    assert weights[[10, 50]].tolist() == [5.0, 5.0]
    others = weights[[i for i in range(100) if i not in (10, 50)]]
    assert (others >= 1.0).all() and others.median() == 1.0 and others.max() < 4.0  # the ranges' ends a little more
    assert (rare_expression_weights(torch.zeros(20, 3), boost=5.0) == 1.0).all()  # nothing varies: uniform
    assert (rare_expression_weights(torch.rand(1, 3), boost=5.0) == 1.0).all()


def test_the_lips_stage_renders_lip_patches_on_odd_steps_and_eye_patches_on_every_fourth():
    from engine.nerf.train import lips_stage_patch

    assert [lips_stage_patch(step, eyes=True) for step in range(8)] == [None, "lips", "eyes", "lips"] * 2
    assert [lips_stage_patch(step, eyes=False) for step in range(4)] == [None, "lips", None, "lips"]


def test_eye_patches_go_to_the_blinks_alone():
    from engine.nerf.train import eye_patch_weights

    names = ("eyeBlinkLeft", "browInnerUp", "eyeBlinkRight", "jawOpen")
    expression = torch.full((200, 4), 0.1) + 0.01 * torch.rand(200, 4, generator=torch.Generator().manual_seed(0))
    expression[[20, 120], 0] = expression[[20, 120], 2] = 0.7  # two blinks
    expression[[21, 121], 0] = expression[[21, 121], 2] = 0.5  # and the lids opening again
    expression[60:90, 0] += 0.15  # a squint: one eyelid lowered for thirty frames
    expression[150:155, 1] = 0.6  # a brow raise, as rare as a blink
    expression[170:175, 3] = 0.6  # an open mouth
    weights = eye_patch_weights(expression, names)
    assert torch.nonzero(weights).flatten().tolist() == [20, 21, 120, 121]
    assert set(weights.tolist()) == {0.0, 1.0}
    assert eye_patch_weights(expression[:, 1:2], ("browInnerUp",)) is None  # no eyelids: no eye patches
    assert eye_patch_weights(expression[30:60], names) is None  # no blink in the take: none


def test_eye_patch_steps_draw_their_own_frames(scene_data, tmp_path):
    from engine.nerf.avatar import AvatarModel
    from engine.nerf.train import _Trainer, load_training_data

    config = nerf_preset("test", scene_data, tmp_path, device="cpu", progress=False)
    data, spec = load_training_data(config, torch.device("cpu"))
    trainer = _Trainer(config, AvatarModel(spec), data, torch.device("cpu"))
    assert trainer.eye_weights is not None and trainer.eye_weights.shape == trainer.head_weights.shape
    trainer.eye_weights = torch.zeros_like(trainer.eye_weights)
    trainer.eye_weights[3] = 1.0  # only this frame's eyelids are rare
    seen = []
    trainer.head_loss = lambda frame, inputs, patch=None: seen.append((frame, patch)) or torch.zeros(())
    for step in range(8):
        trainer.step_loss("lips", step)
    assert [patch for _, patch in seen] == [None, "lips", "eyes", "lips"] * 2
    assert {frame for frame, patch in seen if patch == "eyes"} == {int(data.train[3])}
    off = nerf_preset("test", scene_data, tmp_path, device="cpu", eye_patches=False)
    assert _Trainer(off, AvatarModel(spec), data, torch.device("cpu")).eye_weights is None


def test_patches_read_the_channels_they_do_not_show_from_another_frame(scene_data, tmp_path):
    from engine.nerf.avatar import AvatarModel
    from engine.nerf.train import _Trainer, load_training_data

    config = nerf_preset("test", scene_data, tmp_path, device="cpu", progress=False)
    data, spec = load_training_data(config, torch.device("cpu"))
    trainer = _Trainer(config, AvatarModel(spec), data, torch.device("cpu"))
    blink, other = int(data.train[3]), int(data.train[7])
    data.expression[blink] += 0.5  # the two frames differ in every channel
    mouth = trainer.mouth
    assert mouth.any() and not mouth.all()
    trainer.eye_weights = torch.zeros_like(trainer.eye_weights)
    trainer.eye_weights[3] = 1.0  # the eye patch's frame
    trainer.head_weights = torch.zeros_like(trainer.head_weights)
    trainer.head_weights[7] = 1.0  # every other draw's
    seen = []
    trainer.head_loss = lambda frame, inputs, patch=None: seen.append((frame, inputs, patch)) or torch.zeros(())
    trainer.step_loss("lips", 2)
    frame, (euler, trans, audio, expression), patch = seen[-1]
    assert (frame, patch) == (blink, "eyes")
    assert torch.equal(euler, data.euler[blink]) and torch.equal(trans, data.trans[blink])
    assert torch.equal(expression[~mouth], data.expression[blink, ~mouth])  # the blink's eyelids and brows
    assert torch.equal(expression[mouth], data.expression[other, mouth])  # another frame's mouth and audio
    assert any(torch.equal(audio, trainer.frame_inputs(other, v)[2]) for v in range(len(data.windows)))
    trainer.step_loss("lips", 0)
    assert torch.equal(seen[-1][1][3], data.expression[other])  # a plain step reads its own frame's channels

    lips = trainer.patch_inputs(trainer.frame_inputs(blink), 0, "lips")
    assert torch.equal(lips[3][mouth], data.expression[blink, mouth])  # its own mouth
    assert torch.equal(lips[3][~mouth], data.expression[other, ~mouth])  # another frame's eyelids and brows
    assert torch.equal(lips[2], trainer.frame_inputs(blink)[2])  # and its own audio


def test_pixels_a_hand_covers_cost_nothing_in_any_stage(scene_data, tmp_path):
    """The avatar draws no hands: whatever colour a hand gives the pixels it covers, every loss stays the same, where
    the same colours on pixels no hand covers change it."""
    from engine.data.dataset import HAND
    from engine.nerf.avatar import AvatarModel
    from engine.nerf.train import _Trainer, load_training_data

    config = nerf_preset("test", scene_data, tmp_path, device="cpu", progress=False)
    data, spec = load_training_data(config, torch.device("cpu"))
    trainer = _Trainer(config, AvatarModel(spec), data, torch.device("cpu"))
    frame = int(data.train[2])
    x0, y0, x1, y1 = (int(v) for v in data.lip_rect[frame])
    covered = torch.zeros(data.regions.shape[1:], dtype=torch.bool)
    covered[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4] = True  # a hand over the mouth and around it
    inputs = trainer.frame_inputs(frame)

    def losses() -> list[float]:
        out = []
        for loss in (lambda: trainer.body_loss(frame, inputs), lambda: trainer.head_loss(frame, inputs),
                     lambda: trainer.head_loss(frame, inputs, "lips")):
            trainer.gen.manual_seed(0)
            out.append(float(loss().detach()))
        return out

    clean = data.frames[frame].clone()
    data.regions[frame][covered] = HAND
    before = losses()
    data.frames[frame][covered] = torch.tensor([250, 20, 200], dtype=torch.uint8)  # the hand's colour
    assert losses() == before
    data.frames[frame] = clean
    data.regions[frame][covered] = int(data.regions[frame][0, 0])  # no hand: the same colours are the frame's
    before = losses()
    data.frames[frame][covered] = torch.tensor([250, 20, 200], dtype=torch.uint8)
    assert all(a != b for a, b in zip(losses(), before))


def test_head_steps_spend_a_share_of_their_rays_on_the_brows_and_eyes():
    from engine.nerf.train import head_step_pixels

    gen = torch.Generator().manual_seed(0)
    head, eyes = torch.tensor([20, 10, 80, 90]), torch.tensor([30, 30, 70, 45])
    pixels = head_step_pixels(4000, 128, gen, head, [(eyes, 0.25)])
    u, v = pixels[:, 0], pixels[:, 1]
    assert pixels.shape == (4000, 2) and (pixels >= 0).all() and (pixels < 128).all()
    in_eyes = ((u >= 30) & (u < 70) & (v >= 30) & (v < 45)).float().mean()
    in_head = ((u >= 20) & (u < 80) & (v >= 10) & (v < 90)).float().mean()
    assert 0.31 < in_eyes < 0.35  # 0.25 drawn there + 0.06 of the head-box and 0.01 of the uniform rays
    assert 0.80 < in_head < 0.85  # 0.75 drawn there or on the eyes + 0.07 of the uniform rays
    edge = head_step_pixels(100, 128, gen, head, [(torch.tensor([128, 128, 128, 128]), 0.5)])
    assert (edge < 128).all(), "a box clipped to the frame's edge draws pixels inside the frame"
    with pytest.raises(ValueError, match="lip_rays"):
        TrainNerfConfig(data=Path("d"), avatar_dir=Path("a"), upper_face_rays=0.3, lip_rays=0.3)


def test_training_hears_the_recording_first_then_augmented_copies(scene_data):
    import numpy as np

    from engine.audio.settings import AudioSettings
    from engine.data.dataset import Dataset
    from engine.nerf.train import dataset_feature_windows

    data = Dataset(scene_data)
    plain = dataset_feature_windows(data, AudioSettings(), data.meta.frames)[0]
    windows = dataset_feature_windows(data, AudioSettings(), data.meta.frames, copies=2, seed=0)[0]
    assert plain.shape[0] == 1 and windows.shape == (3, *plain.shape[1:])
    np.testing.assert_array_equal(windows[0], plain[0])
    assert not np.allclose(windows[1], windows[0]) and not np.allclose(windows[2], windows[1])


def test_learning_rate_follows_steps_or_the_stage_deadline_whichever_is_further():
    inf = float("inf")
    assert lr_scale(0.1, 0.5, 0.0, inf, 100.0) == pytest.approx(0.1**0.5)  # no deadline: by steps
    assert lr_scale(0.1, 0.25, 0.0, 10.0, 5.0) == pytest.approx(0.1**0.5)  # half the time, a quarter of the steps
    assert lr_scale(0.1, 0.75, 0.0, 10.0, 5.0) == pytest.approx(0.1**0.75)
    assert lr_scale(0.1, 0.1, 0.0, 10.0, 50.0) == pytest.approx(0.1)  # past the deadline: the final rate


def test_a_state_from_before_the_shared_loop_gives_its_stage_the_same_moments():
    """States written before the shared training loop kept AdamW's moments by (group, parameter) with their steps
    in the metadata: they resume with the moments the optimizer had."""
    from engine.nerf.train import _load_moments
    from engine.training_loop import Saved

    def adamw(params):
        groups = [{"params": params[:1], "lr": 1e-2}, {"params": params[1:], "lr": 1e-3}]
        return torch.optim.AdamW(groups, betas=(0.9, 0.99), eps=1e-15, weight_decay=0.0)

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3)) for _ in range(3)]
    trained = adamw(params)
    for _ in range(3):  # params[1] takes no gradient: it has no moments
        trained.zero_grad()
        (2 * params[0].sum() + params[2].square().sum()).backward()
        trained.step()
    tensors, steps = {}, []
    for i, group in enumerate(trained.param_groups):
        for j, p in enumerate(group["params"]):
            if p in trained.state:
                tensors.update({f"opt.{i}.{j}.{key}": trained.state[p][key] for key in ("exp_avg", "exp_avg_sq")})
                steps.append([i, j, float(trained.state[p]["step"])])
    resumed = adamw(params)
    _load_moments(Saved(tensors, {"step": 3, "opt_steps": steps}), resumed)
    expected, loaded = trained.state_dict()["state"], resumed.state_dict()["state"]
    assert expected.keys() == loaded.keys() == {0, 2}
    assert all(torch.equal(value, loaded[index][key]) for index, state in expected.items()
               for key, value in state.items())


def test_gpu_preset_keeps_to_the_training_budget(tmp_path):
    assert 0 < nerf_preset("gpu", tmp_path, tmp_path).time_limit_s <= 20 * 60


def test_without_torso_motion_or_exposure_the_frames_are_taken_as_they_are(scene_data, tmp_path):
    from engine.nerf.avatar import AvatarSpec

    avatar = tmp_path / "avatar"
    train_nerf(nerf_preset("test", scene_data, avatar, device="cpu", progress=False, torso_motion=False,
                           exposure=False, body_steps=4, head_steps=4, lip_steps=2, val_every=4))
    model = load_avatar(avatar / NERF_FILE)
    assert model.frame_torso_shift is None and model.spec.breathing_rise == AvatarSpec.breathing_rise
    assert model.frame_exposure is None


TRAIN_IN_A_PROCESS = """
import json, sys
from pathlib import Path
from engine.nerf.train import train_nerf
from engine.nerf.train_config import nerf_preset
train_nerf(nerf_preset("test", Path(sys.argv[1]), Path(sys.argv[2]), **json.loads(sys.argv[3])))
"""


@pytest.mark.slow  # three trainings, each in a fresh process (Taichi and torch imports): about a minute
def test_a_run_killed_after_a_checkpoint_resumes_to_what_an_uninterrupted_run_makes(scene_data, tmp_path):
    """SIGKILL just after the first checkpoint of the head stage, then run again: the same weights bit for bit,
    the same log and the same scores as a run that went through. Each run is its own process, as a killed one is:
    the preset's one thread (torch and Taichi) makes a CPU run repeat exactly."""
    import signal
    import subprocess
    import sys
    import time

    from engine.io.checkpoint import CheckpointError

    options = dict(device="cpu", progress=False, head_audio=True, body_steps=20, head_steps=30, lip_steps=6,
                   val_every=5, checkpoint_every=10)  # a log record lies between checkpoints, and grid updates

    def start(avatar):
        return subprocess.Popen([sys.executable, "-c", TRAIN_IN_A_PROCESS, str(scene_data), str(avatar),
                                 json.dumps(options)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(process):
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-3000:]

    through, killed = tmp_path / "through", tmp_path / "killed"
    finish(start(through))
    process, state = start(killed), killed / ".nerf-train" / "state.safetensors"
    stage = None
    while stage != "head" and process.poll() is None:
        time.sleep(0.002)
        try:
            stage = read_metadata(state)["stage"] if state.is_file() else None
        except CheckpointError:  # being replaced
            continue
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL and not (killed / NERF_FILE).exists()
    assert (read_metadata(state)["stage"], read_metadata(state)["step"]) in (("head", 10), ("head", 20))
    finish(start(killed))
    expected, resumed = (load_avatar(avatar / NERF_FILE).state_dict() for avatar in (through, killed))
    assert expected.keys() == resumed.keys()
    differ = {k: float((v.float() - resumed[k].float()).abs().max()) for k, v in expected.items()
              if not torch.equal(v, resumed[k])}
    assert not differ, differ

    def records(avatar):  # seconds of training differ from run to run
        return [{k: v for k, v in r.items() if k != "seconds"} for r in log(avatar)]

    assert records(killed) == records(through) and len(records(through)) == 4 + 6 + 2
    assert read_metadata(killed / NERF_FILE)["val_psnr"] == read_metadata(through / NERF_FILE)["val_psnr"]
