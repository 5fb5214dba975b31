"""Checkpoints: tensors and nested metadata round-trip, writes are atomic, mismatches and foreign files are refused."""
import json

import pytest
import torch
from safetensors.torch import save_file

from engine.io.checkpoint import (
    CheckpointError, CheckpointMismatchError, load_checkpoint, read_metadata, save_checkpoint,
)

META = {"features": {"extractor": "mel", "params": {"n_mels": 80}}, "blendshape_names": ["eyeBlinkLeft"], "step": 7}


def test_round_trip_keeps_tensors_and_nested_metadata(tmp_path):
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3, dtype=torch.float64)}
    path = save_checkpoint(tmp_path / "m.safetensors", tensors, META)
    loaded, metadata = load_checkpoint(path, expect={"blendshape_names": ("eyeBlinkLeft",)})
    assert torch.equal(loaded["w"], tensors["w"]) and loaded["b"].dtype == torch.float64
    assert metadata == META and read_metadata(path) == META
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no partial file left behind


def test_overwrite_replaces_the_old_file_whole(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {"w": torch.zeros(2)}, {"step": 1})
    save_checkpoint(path, {"w": torch.ones(3)}, {"step": 2})
    tensors, metadata = load_checkpoint(path)
    assert tensors["w"].shape == (3,) and metadata["step"] == 2


def test_mismatch_names_file_values_and_fix(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.zeros(1)}, META)
    expect = {"features": {"extractor": "hubert", "params": {"n_mels": 80}}}
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(path, expect=expect, fix="Re-run with --extractor mel.")
    message = str(info.value)
    assert str(path) in message and "features.extractor" in message
    assert "'mel'" in message and "'hubert'" in message and "--extractor mel" in message


def test_missing_key_and_missing_file_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.zeros(1)}, {"a": 1})
    with pytest.raises(CheckpointMismatchError, match="blendshape_names: checkpoint has '<missing>'"):
        load_checkpoint(path, expect={"blendshape_names": ["x"]})
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(foreign), metadata={"x": json.dumps(1)})
    with pytest.raises(CheckpointError, match="not a syncanim-checkpoint"):
        load_checkpoint(foreign)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_checkpoint(broken)


def test_reserved_metadata_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "m.safetensors", {"w": torch.zeros(1)}, {"__format__": 1})
