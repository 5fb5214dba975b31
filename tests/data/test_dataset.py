"""Dataset format: lossless frames, tracks and meta round-trip; broken folders give errors that say what to do."""
import json

import numpy as np
import pytest

from engine.data.dataset import HAND, HEAD, TORSO, Camera, Dataset, DatasetError, FrameWriter, Masks, Meta, Tracks
from engine.io.video import write_wav

NAMES = ["jawOpen", "eyeBlinkLeft"]


def tracks(frames):
    rng = np.random.default_rng(0)
    return Tracks(
        euler_deg=rng.normal(size=(frames, 3)), trans=rng.normal(size=(frames, 3)),
        blendshapes=rng.uniform(size=(frames, 2)), blendshape_names=NAMES,
        landmarks2d=rng.uniform(0, 32, size=(frames, 478, 2)), valid=np.ones(frames, bool),
    )


def make_dataset(root, frames=6, size=32):
    root.mkdir(parents=True, exist_ok=True)
    meta = Meta(fps=25, size=size, frames=frames, sample_rate=16000, camera=Camera(40.0, 16.0, 16.0),
                crop=(10, 20, 300, 300), source_size=(640, 480), val_start=frames - 1)
    (root / "meta.json").write_text(json.dumps(meta.to_json()))
    write_wav(root / "audio.wav", np.zeros(16000 * frames // 25, np.float32), 16000)
    rng = np.random.default_rng(1)
    pictures = rng.integers(0, 256, size=(frames, size, size, 3), dtype=np.uint8)
    writer = FrameWriter(root / "frames.mkv", 25)
    for picture in pictures:
        writer.write(picture)
    writer.close()
    tracks(frames).save(root / "tracks.npz")
    return pictures


def test_round_trip_is_exact(tmp_path):
    pictures = make_dataset(tmp_path / "d")
    data = Dataset(tmp_path / "d")
    assert np.array_equal(data.frames(), pictures)
    assert np.array_equal(data.frames([1, 4]), pictures[[1, 4]])
    assert data.tracks.blendshape("jawOpen").shape == (6,)
    assert list(data.val_indices) == [5] and len(data.train_indices) == 5
    assert data.audio().shape == (16000 * 6 // 25,)
    assert data.meta.camera.focal_px == 40.0 and data.meta.crop == (10, 20, 300, 300)


def test_missing_folder_says_how_to_make_one(tmp_path):
    with pytest.raises(DatasetError, match="syncanim preprocess VIDEO -o"):
        Dataset(tmp_path / "nothing")


def test_unfinished_dataset_names_the_missing_file(tmp_path):
    make_dataset(tmp_path / "d")
    (tmp_path / "d" / "tracks.npz").unlink()
    with pytest.raises(DatasetError, match="tracks.npz is missing.*resumes"):
        Dataset(tmp_path / "d")


def test_tracks_with_nan_or_wrong_shape_are_refused():
    bad = tracks(4)
    bad.euler_deg[2, 1] = np.nan
    with pytest.raises(DatasetError, match="euler_deg contains NaN"):
        Tracks(**vars(bad))
    with pytest.raises(DatasetError, match=r"landmarks2d has shape \(4, 10, 2\)"):
        Tracks(**{**vars(tracks(4)), "landmarks2d": np.zeros((4, 10, 2))})


def test_frame_count_mismatch_is_reported(tmp_path):
    make_dataset(tmp_path / "d")
    tracks(3).save(tmp_path / "d" / "tracks.npz")
    with pytest.raises(DatasetError, match="3 frames, meta.json says 6"):
        Dataset(tmp_path / "d").tracks


def test_other_versions_are_refused(tmp_path):
    make_dataset(tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    (tmp_path / "d" / "meta.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(DatasetError, match="version 99"):
        Dataset(tmp_path / "d")


def test_masks_round_trip(tmp_path):
    masks = Masks(*(np.full((2, 8, 8), v, np.uint8) for v in (1, 2, 3)), np.zeros((2, 4), int), np.ones((2, 4), int))
    masks.save(tmp_path / "masks.npz")
    loaded = Masks.load(tmp_path / "masks.npz")
    assert loaded.torso[0, 0, 0] == 3 and loaded.lip_rect.sum() == 8


def test_regions_hold_head_and_torso_in_one_array_and_rects_load_alone(tmp_path):
    make_dataset(tmp_path / "d", frames=3, size=8)
    head, torso = np.zeros((2, 3, 8, 8), np.uint8)
    head[:, :3], torso[:, 5:] = 255, 255
    torso[1, 5:, :2] = 0
    face, lips = np.arange(12).reshape(3, 4), np.ones((3, 4), int)
    Masks(np.maximum(head, torso), head, torso, face, lips).save(tmp_path / "d" / "masks.npz")
    data = Dataset(tmp_path / "d")
    regions = data.regions()
    assert regions.shape == (3, 8, 8) and regions.dtype == np.uint8
    np.testing.assert_array_equal(regions == HEAD, head > 0)
    np.testing.assert_array_equal(regions == TORSO, torso > 0)
    assert not regions[:, 3:5].any()
    np.testing.assert_array_equal(data.mask_rects()[0], face)
    hand = np.zeros((3, 8, 8), np.uint8)
    hand[2, 2:7, 2:7] = 255
    Masks(np.maximum(head, torso), head, torso, face, lips, hand).save(tmp_path / "d" / "masks.npz")
    with_hand = data.regions()
    np.testing.assert_array_equal(with_hand == HAND, hand > 0)  # over head, torso and background alike
    np.testing.assert_array_equal(with_hand[hand == 0], regions[hand == 0])


def test_masks_or_frames_shorter_than_meta_are_reported(tmp_path):
    make_dataset(tmp_path / "d", frames=3, size=8)
    short = np.zeros((2, 8, 8), np.uint8)
    Masks(short, short, short, np.zeros((2, 4), int), np.zeros((2, 4), int)).save(tmp_path / "d" / "masks.npz")
    data = Dataset(tmp_path / "d")
    with pytest.raises(DatasetError, match="torso has 2 frames, meta.json says 3"):
        data.regions()
    with pytest.raises(DatasetError, match="ends before frame 3: 3 of the 4 frames asked for"):
        data.frames([0, 1, 2, 3])
    with pytest.raises(DatasetError, match="ends before frame 7: 1 of the 2 frames asked for"):
        data.frames([2, 7])
