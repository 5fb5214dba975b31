"""`syncanim train`: options parse as the pipeline contract writes them, and a missing dataset is explained."""
import pytest
import tyro

from engine.cli import main
from engine.training import TrainOptions


def test_options_follow_the_contract(tmp_path):
    options = tyro.cli(TrainOptions, args=[str(tmp_path / "data"), "-o", str(tmp_path / "avatar"), "--preset", "test",
                                           "--stage", "motion"])
    assert options.data == tmp_path / "data" and options.avatar_dir == tmp_path / "avatar"
    assert options.preset == "test" and options.stage == "motion" and options.torso_motion
    assert not tyro.cli(TrainOptions, args=[str(tmp_path), "-o", str(tmp_path), "--no-torso-motion"]).torso_motion


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nothing"), "-o", str(tmp_path / "avatar"), "--preset", "test"]) == 2
    assert "syncanim preprocess VIDEO -o" in capsys.readouterr().err
    assert not (tmp_path / "avatar" / "motion.safetensors").exists()


def test_a_video_given_as_the_dataset_is_explained(tmp_path, capsys):
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"not really a video")
    assert main(["train", str(video), "-o", str(tmp_path / "avatar"), "--preset", "test"]) == 2
    assert f"syncanim preprocess {video} -o DATA_DIR" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["fast", ""])
def test_unknown_preset_is_refused(tmp_path, preset):
    with pytest.raises(SystemExit):
        tyro.cli(TrainOptions, args=[str(tmp_path), "-o", str(tmp_path), "--preset", preset])


def test_training_one_part_on_other_features_than_the_other_part_warns(tmp_path, caplog):
    import torch

    from engine.io.checkpoint import save_checkpoint

    avatar = tmp_path / "avatar"
    save_checkpoint(avatar / "nerf.safetensors", {"w": torch.zeros(1)}, {"features": {"extractor": "whisper"}})
    with caplog.at_level("WARNING"):
        assert main(["train", str(tmp_path / "nothing"), "-o", str(avatar), "--stage", "motion"]) == 2
    assert "nerf.safetensors was trained on whisper speech features" in caplog.text
    assert "--stage nerf --features mel" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        main(["train", str(tmp_path / "nothing"), "-o", str(avatar), "--stage", "motion", "--features", "whisper"])
    assert "trained on" not in caplog.text


def test_motion_comes_from_the_universal_model(tmp_path, capsys):
    options = tyro.cli(TrainOptions, args=[str(tmp_path), "-o", str(tmp_path / "avatar")])
    assert options.motion == "auto" and options.universal is None and not options.head_audio
    from engine.training import BUNDLED_UNIVERSAL, universal_dir

    assert universal_dir(options) == BUNDLED_UNIVERSAL and BUNDLED_UNIVERSAL.parts[-2:] == ("assets", "universal")
    sys_path = tmp_path / "elsewhere"
    assert universal_dir(tyro.cli(TrainOptions, args=[str(tmp_path), "-o", str(tmp_path), "--universal",
                                                      str(sys_path)])) == sys_path


def test_a_missing_universal_model_is_named_with_the_fix(tmp_path, capsys):
    import shutil
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "nerf"))
    from scenes import write_scene_dataset

    data = write_scene_dataset(tmp_path / "data", frames=16, size=32)
    assert main(["train", str(data), "-o", str(tmp_path / "avatar"), "--stage", "motion", "--universal",
                 str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no universal motion model" in err and "syncanim universal" in err
    shutil.rmtree(tmp_path / "avatar", ignore_errors=True)
    meta = (data / "meta.json").read_text().replace('"silent": false', '"silent": true')
    (data / "meta.json").write_text(meta)
    assert main(["train", str(data), "-o", str(tmp_path / "avatar"), "--stage", "motion", "--motion", "own"]) == 2
    assert "silent recording" in capsys.readouterr().err


def test_no_progress_trains_without_bars(tmp_path, capsys):
    import sys
    from pathlib import Path

    from engine.nerf.kernels.runtime import init_taichi

    sys.path.insert(0, str(Path(__file__).parent / "nerf"))
    from scenes import write_scene_dataset

    init_taichi("cpu")  # as the NeRF tests start it (a training started first would size Taichi's pool itself)
    data = write_scene_dataset(tmp_path / "data", frames=16, size=32)
    quick = ["--preset", "test", "--stage", "nerf", "--time-limit-min", "1e-6"]  # one step, then the model
    assert main(["train", str(data), "-o", str(tmp_path / "shown"), *quick]) == 0
    assert "nerf body" in capsys.readouterr().err  # the bars this test looks for
    assert main(["train", str(data), "-o", str(tmp_path / "quiet"), *quick, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "nerf body" not in err and "torso motion" not in err and "it/s" not in err, err
    assert (tmp_path / "quiet" / "nerf.safetensors").is_file()
