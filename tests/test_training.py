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
