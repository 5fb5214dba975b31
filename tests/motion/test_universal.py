"""The universal motion model: pooled per-dataset normalisation, training, calibration onto one avatar, the direct
mouth head, and old checkpoints still loading unchanged."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import DatasetError, Tracks
from engine.motion.config import EXPRESSION, MOUTH, UPPER_FACE



def _conftest():
    """This folder's conftest as a module (test folders are not packages; another folder's conftest may own the
    name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("motion_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _conftest()
EXTRA_ZERO, write_synth_dataset = _helpers.EXTRA_ZERO, _helpers.write_synth_dataset
UPPER_FACE_MODEL = Path(__file__).parent / "data" / "upper_face_motion.safetensors"
GOLDEN = Path(__file__).parent / "data" / "bundled_motion_golden.npz"


def _missing_from_rig() -> tuple[str, ...]:
    from engine.data.synth.rig import BLENDSHAPE_NAMES

    return tuple(n for n in EXPRESSION if n not in BLENDSHAPE_NAMES)


def _rescale(root: Path) -> None:
    """A second presenter with other ranges: pose doubled and shifted, blendshapes halved and lifted."""
    tracks = Tracks.load(root / "tracks.npz")
    tracks = replace(tracks, euler_deg=(2.0 * tracks.euler_deg + 5.0).astype(np.float32),
                     trans=(tracks.trans - 3.0).astype(np.float32),
                     blendshapes=(0.5 * tracks.blendshapes + 0.2).astype(np.float32))
    tracks.save(root / "tracks.npz")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, ...]:
    """Three tiny datasets with every EXPRESSION channel: two voices, and one of them rescaled."""
    base = tmp_path_factory.mktemp("corpus")
    roots = (base / "a", base / "b", base / "c")
    write_synth_dataset(roots[0], seconds=10.0, seed=11, extra=_missing_from_rig())
    write_synth_dataset(roots[1], seconds=10.0, seed=12, extra=_missing_from_rig())
    write_synth_dataset(roots[2], seconds=10.0, seed=11, extra=_missing_from_rig())
    _rescale(roots[2])
    return roots


@pytest.fixture(scope="module")
def pooled(corpus):
    from engine.audio.settings import AudioSettings
    from engine.motion.pooled import load_pooled

    return load_pooled(corpus, AudioSettings(), EXPRESSION)


@pytest.fixture(scope="module")
def universal(corpus, tmp_path_factory) -> Path:
    from engine.motion.config import universal_preset
    from engine.motion.universal import train_universal

    out = tmp_path_factory.mktemp("universal")
    train_universal(universal_preset("test", corpus, out, progress=False, steps=20, val_every=10))
    return out


def test_sequences_stay_inside_one_dataset_and_windows_match_its_own(pooled):
    from engine.motion.pooled import train_starts, validation_starts

    frames = 12
    starts, val = train_starts(pooled, frames), validation_starts(pooled, frames)
    assert len(starts) and len(val)
    for segment in pooled.segments:
        inside = starts[(starts >= segment.start) & (starts < segment.end)]
        assert len(inside), segment
        assert inside.min() >= segment.start + 2 and inside.max() + frames <= segment.val_start
        held = val[(val >= segment.start) & (val < segment.end)]
        assert len(held) and held.min() >= segment.val_start + 2 and held.max() + frames <= segment.end
    gaps = np.ones(len(pooled.data.pose), bool)
    for segment in pooled.segments:
        gaps[segment.start: segment.end] = False
    assert gaps.any() and not np.isin(starts, np.flatnonzero(gaps)).any()
    # Frame k of the pool hears the rows P*k .. P*k + W - 1, which must be the dataset's own window of its frame.
    from engine.audio.features import make_extractor
    from engine.audio.settings import AudioSettings
    from engine.data.dataset import Dataset
    from engine.motion.data import dataset_windows

    data, last = pooled.data, pooled.segments[-1]
    own = next(dataset_windows(Dataset(last.root), make_extractor(AudioSettings()), AudioSettings(),
                               last.end - last.start))
    for local in (0, last.end - last.start - 1):
        k = last.start + local
        np.testing.assert_allclose(data.features[0, data.stride * k: data.stride * k + own.shape[1]], own[local],
                                   atol=1e-5)


def test_each_dataset_is_normalised_by_its_own_range(pooled):
    from engine.motion.config import BLINK_CHANNELS
    from engine.motion.pooled import BLEND_PERCENTILES, event_peak

    moving = [i for i, n in enumerate(EXPRESSION) if n not in _missing_from_rig()]
    for segment, stats in zip(pooled.segments, pooled.stats):
        expr = pooled.data.expr[segment.start: segment.val_start]
        pose = pooled.data.pose[segment.start: segment.val_start]
        lo, hi = np.percentile(expr, BLEND_PERCENTILES, axis=0)
        wide = [i for i in moving if stats["blendshapes"]["hi"][i] - stats["blendshapes"]["lo"][i] > 0.05]
        assert wide
        np.testing.assert_allclose(lo[wide], 0.0, atol=1e-4)
        blinks = [i for i in wide if EXPRESSION[i] in BLINK_CHANNELS]
        others = [i for i in wide if i not in blinks]
        np.testing.assert_allclose(hi[others], 1.0, atol=1e-4)
        for i in blinks:  # the eyelids' 1 is their typical blink peak, at or above the 99.5th percentile
            assert hi[i] <= 1.0 + 1e-4
            assert event_peak(expr[:, i]) == pytest.approx(1.0, abs=0.06)  # (stats skip untracked frames)
        np.testing.assert_allclose(np.median(pose, 0), 0.0, atol=1e-4)
    # The rescaled copy of dataset a has its own ranges, and normalises to the same values as a.
    a, c = pooled.stats[0], pooled.stats[2]
    np.testing.assert_allclose(c["blendshapes"]["lo"], 0.5 * np.asarray(a["blendshapes"]["lo"]) + 0.2, atol=1e-4)
    np.testing.assert_allclose(c["pose"]["spread"][:3], 2.0 * np.asarray(a["pose"]["spread"][:3]), rtol=1e-3)
    sa, sc = pooled.segments[0], pooled.segments[2]
    np.testing.assert_allclose(pooled.data.pose[sa.start: sa.end], pooled.data.pose[sc.start: sc.end], atol=1e-3)


def test_universal_file_records_its_normalisation_and_is_not_an_avatar(universal, corpus):
    from engine.io.checkpoint import CheckpointError, read_metadata
    from engine.motion.runtime import MotionRuntime
    from engine.motion.universal import UNIVERSAL_KIND

    meta = read_metadata(universal / "motion.safetensors")
    assert meta["kind"] == UNIVERSAL_KIND and meta["blendshape_names"] == list(EXPRESSION)
    assert [d["data"] for d in meta["datasets"]] == [str(r) for r in corpus]
    assert meta["features"]["extractor"] == "mel" and meta["training"]["steps"] == 20
    assert len(meta["blink"]["intervals_frames"]) >= 1 and "speech_level" in meta
    with pytest.raises(CheckpointError):
        MotionRuntime.load(universal)


def test_calibration_maps_normalised_values_onto_the_avatars_range(universal, corpus, tmp_path):
    import torch

    from engine.io.checkpoint import read_metadata
    from engine.motion.predict import predict_motion
    from engine.motion.runtime import MotionRuntime
    from engine.motion.universal import calibrate_universal

    calibrate_universal(universal, corpus[2], tmp_path)
    runtime = MotionRuntime.load(tmp_path, blendshapes=EXPRESSION)
    meta, norm = runtime.metadata, read_metadata(universal / "motion.safetensors")["normalisation"]
    stats = meta["calibration"]["avatar_stats"]
    assert len(meta["calibration"]["universal"]["sha256"]) == 64

    def out_of(part, module, n):
        z = (n - np.asarray(norm[part]["mean"])) / np.asarray(norm[part]["std"])
        return module.inverse(torch.tensor(z, dtype=torch.float32)).numpy()

    k = len(EXPRESSION)
    b = stats["blendshapes"]
    np.testing.assert_allclose(out_of("blendshapes", runtime.emotion.expr_norm, np.zeros(k)), b["lo"], atol=1e-5)
    np.testing.assert_allclose(out_of("blendshapes", runtime.emotion.expr_norm, np.ones(k)),
                               np.asarray(b["lo"]) + np.asarray(b["width"]), atol=1e-5)
    wide = [i for i in range(k) if b["hi"][i] - b["lo"][i] > 0.05]
    np.testing.assert_allclose(out_of("blendshapes", runtime.emotion.expr_norm, np.ones(k))[wide],
                               np.asarray(b["hi"])[wide], atol=1e-5)
    tracks = Tracks.load(corpus[2] / "tracks.npz")
    median = np.median(np.concatenate([tracks.euler_deg, tracks.trans], 1)[: int(len(tracks) * 0.85)], 0)
    np.testing.assert_allclose(out_of("pose", runtime.pose.pose_norm, np.zeros(6)), median, atol=1e-4)
    assert meta["reference"]["euler_deg"] == pytest.approx(tracks.euler_deg[0].tolist(), abs=1e-5)
    out = predict_motion(tmp_path, np.zeros(16000, np.float32))
    assert out["blendshapes"].shape == (25, k) and np.isfinite(out["euler_deg"]).all()


def test_calibration_names_the_missing_channels(universal, synth_data, tmp_path):
    from engine.motion.universal import calibrate_universal

    with pytest.raises(DatasetError, match="tracks.npz.*mouthUpperUpLeft.*preprocess"):
        calibrate_universal(universal, synth_data[0], tmp_path)


def test_mouth_and_blinks_are_predicted_directly_brows_from_the_previous_frame():
    import torch

    from engine.motion.config import SyncerDims
    from engine.motion.emotion_syncer import AudioEmotionSyncer

    dims = SyncerDims(hidden=32, latent=4, audio_channels=8, audio_dim=16, unet_depth=1)
    torch.manual_seed(0)
    emotion = AudioEmotionSyncer(80, 16, (13,), dims, EXPRESSION, ("eyeBlinkLeft", "eyeBlinkRight"), 0.0).eval()
    k, b = len(EXPRESSION), 4
    args = (torch.randn(b, 16), torch.randn(b, 16), torch.randn(b, 16))
    state, z = torch.randn(b, 2 * k), torch.randn(b, 4)
    shifted = state.clone()
    shifted[:, :k] += 3.0
    with torch.no_grad():
        moved = emotion(*args, shifted, z) - emotion(*args, state, z)
    direct = [EXPRESSION.index(n) for n in (*MOUTH, "eyeBlinkLeft", "eyeBlinkRight")]
    rest = [i for i in range(k) if i not in direct]
    assert (moved[:, rest] - 3.0).abs().max() < 0.5  # residual: previous + delta
    assert moved[:, direct].abs().max() < 0.5  # direct: does not carry the previous value over
    assert any(key.startswith("mouth.") for key in emotion.state_dict())
    upper = AudioEmotionSyncer(80, 16, (13,), dims, UPPER_FACE, ("eyeBlinkLeft", "eyeBlinkRight"), 0.0)
    assert not any(key.startswith("mouth.") for key in upper.state_dict())


@pytest.mark.slow  # about 1.2 s on 2 cores: the golden outputs are of 2 s of speech
def test_a_motion_model_of_the_upper_face_alone_still_loads_and_moves_as_before():
    """The bundled avatar's motion.safetensors before the mouth (upper face only, kept as
    tests/motion/data/upper_face_motion.safetensors) gives the outputs recorded with the emotion syncer before the
    mouth head was added (tests/motion/data/bundled_motion_golden.npz)."""
    from engine.motion.predict import predict_motion

    rng = np.random.default_rng(7)
    t = np.arange(16000 * 2) / 16000
    audio = (0.2 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
             + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    out = predict_motion(UPPER_FACE_MODEL, audio, seed=0)
    golden = np.load(GOLDEN)
    for key in ("euler_deg", "trans", "blendshapes"):
        np.testing.assert_allclose(out[key], golden[key], atol=1e-5, err_msg=key)


def test_fine_tuning_starts_from_the_calibrated_universal_weights(universal, corpus, tmp_path):
    import torch

    from engine.io.checkpoint import load_checkpoint
    from engine.motion.config import motion_preset
    from engine.motion.train import train_motion

    path = train_motion(motion_preset("test", corpus[1], tmp_path, progress=False, init_from=universal, steps=2,
                                      val_every=1, lr=1e-6))
    tuned, meta = load_checkpoint(path)
    start, _ = load_checkpoint(universal / "motion.safetensors")
    assert meta["blendshape_names"] == list(EXPRESSION) and meta["kind"] == "syncanim-motion"
    key = "emotion.mouth.0.weight"
    assert torch.allclose(tuned[key], start[key], atol=1e-3)  # two tiny steps away from the universal weights
    assert not torch.allclose(tuned["emotion.expr_norm.mean"], start["emotion.expr_norm.mean"])
    assert EXTRA_ZERO[0] in meta["blendshape_names"]
