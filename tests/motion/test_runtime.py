"""The syncers at run time: causal with a bounded look-ahead, streaming equals offline, seeded, calm on silence and
NaN, and models made for other features or blendshapes are refused."""
import numpy as np
import pytest
import torch

from engine.audio.features import HOP, WIN, FeatureMismatchError, make_extractor, settings_for
from engine.audio.streaming import FeatureStream
from engine.io.checkpoint import CheckpointMismatchError
from engine.motion.predict import clip_windows, predict_motion, run_frames
from engine.motion.runtime import POSE_CLAMP, MotionRuntime

KEYS = ("euler_deg", "trans", "blendshapes", "breath")


@pytest.fixture(scope="module")
def runtime(trained_avatar):
    return MotionRuntime.load(trained_avatar)


@pytest.fixture(scope="module")
def clip(synth_data):
    return synth_data[1]["audio"][: 16000 * 8]  # 8 s: speech and pauses


def last_sample_heard(runtime, frame):
    """One past the last audio sample that video frame `frame`'s window may depend on (its look-ahead)."""
    spec = runtime.spec
    per_video = round(50 / spec.video_fps)
    return (per_video * (frame + 1) + spec.lookahead_frames - 1) * HOP + WIN


def test_changing_audio_after_the_lookahead_never_changes_earlier_output(runtime, clip):
    base = run_frames(runtime, clip_windows(runtime, clip), runtime.new_memory("one_shot", 5))
    rng = np.random.default_rng(0)
    for frame in (10, 77, 150):
        cut = last_sample_heard(runtime, frame)
        changed = clip.copy()
        changed[cut:] = rng.normal(0, 0.3, len(clip) - cut)
        out = run_frames(runtime, clip_windows(runtime, changed, len(base["euler_deg"])),
                         runtime.new_memory("one_shot", 5))
        for key in KEYS:
            assert np.array_equal(out[key][: frame + 1], base[key][: frame + 1]), (key, frame)
        # ... while later frames do hear the change (so this test can fail).
        assert not np.allclose(out["euler_deg"][frame + 1:], base["euler_deg"][frame + 1:])


def test_the_lookahead_is_bounded_by_160_ms(runtime):
    heard_after_frame_end = last_sample_heard(runtime, 0) - 16000 / runtime.fps
    assert heard_after_frame_end / 16000 <= 0.160
    assert runtime.metadata["lookahead_ms"] == pytest.approx(runtime.spec.lookahead_frames * 20.0)


def test_streaming_in_ragged_chunks_equals_the_offline_run(trained_avatar, runtime, clip):
    offline = predict_motion(trained_avatar, clip, "zero_shot", seed=3)
    settings = settings_for(runtime.spec)
    spec = runtime.spec
    stream = FeatureStream(make_extractor(settings), spec.window_frames, spec.lookahead_frames, spec.video_fps,
                           gate=settings.gate)
    memory = runtime.new_memory("zero_shot", 3)
    rng = np.random.default_rng(1)
    audio = np.concatenate([clip, np.zeros(16000, np.float32)])  # the silence after the clip, as predict pads
    streamed, at = {key: [] for key in KEYS}, 0
    while at < len(audio):
        size = int(rng.integers(1, 1500))
        stream.push(audio[at:at + size])
        at += size
        for _, _, window in stream.pull():
            out = runtime.step(window[None], [memory])
            for key in KEYS:
                streamed[key].append(out[key][0])
    frames = len(offline["euler_deg"])
    assert len(streamed["euler_deg"]) >= frames
    for key in KEYS:
        assert np.array_equal(np.stack(streamed[key][:frames]), offline[key]), key


def test_fixed_seed_repeats_and_seeds_and_modes_differ(trained_avatar, clip):
    a = predict_motion(trained_avatar, clip, "one_shot", seed=7)
    b = predict_motion(trained_avatar, clip, "one_shot", seed=7)
    c = predict_motion(trained_avatar, clip, "one_shot", seed=8)
    z = predict_motion(trained_avatar, clip, "zero_shot", seed=7)
    for key in KEYS:
        assert np.array_equal(a[key], b[key])
    assert not np.allclose(a["euler_deg"], c["euler_deg"])
    assert not np.allclose(a["euler_deg"][:5], z["euler_deg"][:5])
    assert list(a["blendshape_names"]) == list(MotionRuntime.load(trained_avatar).names)


def test_one_shot_starts_at_the_reference(runtime):
    frame = {"euler_deg": np.array([1.0, -2.0, 3.0]), "trans": np.array([0.5, 0.2, -60.0]),
             "blendshapes": np.full(len(runtime.names), 0.1)}
    memory = runtime.new_memory("one_shot", 0, reference=frame)
    pose_z, expr_z = runtime.reference(frame)
    assert np.array_equal(memory.pose[0], pose_z) and np.array_equal(memory.expr[1], expr_z)
    default = runtime.new_memory("one_shot", 0)
    stored = runtime.metadata["reference"]
    assert np.allclose(runtime.pose.pose_norm.inverse(__import__("torch").from_numpy(default.pose[0])).numpy(),
                       np.concatenate([stored["euler_deg"], stored["trans"]]), atol=1e-4)
    with pytest.raises(ValueError, match="blendshapes"):
        runtime.new_memory("one_shot", 0, reference={**frame, "blendshapes": np.zeros(2)})


def test_a_named_dataset_frame_is_a_reference(runtime, synth_data):
    from engine.motion.predict import dataset_reference

    root, truth = synth_data
    frame = dataset_reference(root, 42, runtime.names)
    assert np.allclose(frame["euler_deg"], truth["euler_deg"][42])
    assert frame["blendshapes"][0] == pytest.approx(truth["blendshapes"][42, truth["names"].index(runtime.names[0])])
    runtime.new_memory("one_shot", 0, reference=frame)
    with pytest.raises(IndexError, match="outside"):
        dataset_reference(root, 10**6, runtime.names)


def test_nan_and_silence_give_finite_calm_output(runtime):
    frames = 250
    silent = np.broadcast_to(runtime._silence, (frames, runtime.spec.window_frames, runtime.spec.dim)).copy()
    nan = np.full_like(silent, np.nan)
    nan[::3, :, 5] = np.inf
    quiet = run_frames(runtime, silent, runtime.new_memory("zero_shot", 2))
    broken = run_frames(runtime, nan, runtime.new_memory("zero_shot", 2))
    for key in KEYS:
        assert np.isfinite(broken[key]).all()
        assert np.array_equal(broken[key], quiet[key])  # NaN and inf read exactly as silence
    assert ((quiet["blendshapes"] >= 0) & (quiet["blendshapes"] <= 1)).all()
    stats = runtime.metadata["normalisation"]["pose"]
    offset = np.abs(quiet["euler_deg"] - np.array(stats["mean"][:3])) / np.array(stats["std"][:3])
    assert offset.max() <= POSE_CLAMP + 1e-3  # never beyond the bound of what is fed back
    # Calm: slow motion (a tenth of a standard deviation of the training poses per frame at most, on average).
    speed = np.abs(np.diff(quiet["euler_deg"], axis=0)) / np.array(stats["std"][:3])
    assert speed.mean() < 0.1


def test_models_for_other_features_or_blendshapes_are_refused(trained_avatar, runtime):
    from dataclasses import replace

    from engine.audio.settings import MelParams

    other = replace(settings_for(runtime.spec), mel=MelParams(n_mels=40))
    from engine.audio.features import feature_spec

    spec = feature_spec(other, make_extractor(other))
    with pytest.raises(FeatureMismatchError, match="motion.safetensors.*n_mels"):
        MotionRuntime.load(trained_avatar, spec=spec)
    with pytest.raises(CheckpointMismatchError, match="blendshape_names.*jawOpen.*syncanim train"):
        MotionRuntime.load(trained_avatar, blendshapes=("jawOpen",))
    MotionRuntime.load(trained_avatar, spec=runtime.spec, blendshapes=runtime.names)  # matching: accepted


def test_the_traced_step_equals_the_eager_modules_at_any_batch_size(runtime):
    import torch

    from engine.motion.runtime import _StepNet

    eager = _StepNet(runtime.pose, runtime.emotion)
    k, spec = len(runtime.names), runtime.spec
    for n in (1, 3, 5):
        args = (torch.randn(n, spec.window_frames, spec.dim) * 3 - 5, torch.randn(n, 12), torch.randn(n, 2 * k),
                torch.randn(n, runtime.pose.latent), torch.randn(n, runtime.emotion.latent), torch.rand(n, 2))
        with torch.inference_mode():
            for traced, reference in zip(runtime._net()(*args), eager(*args)):
                assert traced.shape[0] == n and torch.allclose(traced, reference, atol=1e-5)


def test_a_zero_shot_avatar_settles_from_its_noise_before_its_first_frame(trained_avatar):
    """Zero-shot starts from Gaussian noise, then runs settle_frames frames of silence unseen: the memory has moved
    off the noise, counts no frame and no engine forward, and keeps the blink timing it drew."""
    runtime = MotionRuntime.load(trained_avatar)
    runtime.settle_frames = 0
    raw = runtime.new_memory("zero_shot", 4)
    runtime.settle_frames = 25
    settled = runtime.new_memory("zero_shot", 4)
    assert not np.allclose(settled.pose, raw.pose)
    assert settled.frames == 0 and runtime.forwards == 0
    assert (settled.blink_elapsed, settled.blink_interval) == (raw.blink_elapsed, raw.blink_interval)
    assert np.all(np.isfinite(settled.pose)) and np.all(np.abs(settled.pose) <= POSE_CLAMP)


def test_breathing_rides_along_without_changing_the_motion(runtime, clip):
    windows = clip_windows(runtime, clip)
    breathing = run_frames(runtime, windows, runtime.new_memory("one_shot", seed=3))
    still = runtime.new_memory("one_shot", seed=3)
    still.breathing = None
    without = run_frames(runtime, windows, still)
    for key in ("euler_deg", "trans", "blendshapes"):  # its own random stream: the syncers draw what they drew
        assert np.array_equal(breathing[key], without[key])
    assert not without["breath"].any()
    breath = breathing["breath"]
    assert breath.min() >= -1.0 and breath.max() <= 1.0 and np.ptp(breath) > 1.0  # at least one breath in 8 s


def test_the_runtime_tells_speech_from_pauses_as_the_energy_vad_does(runtime, clip):
    from engine.audio.activity import speech_mask

    assert runtime.metadata["speech_level"]["threshold"] is not None  # calibrated by motion training
    windows = clip_windows(runtime, clip)
    x = torch.from_numpy(np.where(np.isfinite(windows), windows, runtime._silence))
    speaking = runtime.speaking(x)
    speech = speech_mask(clip, 16000, runtime.fps, len(speaking))
    assert 0.1 < speech.mean() < 0.9  # the clip has both
    assert (speaking == speech).mean() > 0.8
    silence = torch.from_numpy(np.broadcast_to(runtime._silence, windows.shape[1:])[None].copy())
    assert not runtime.speaking(silence)[0]


def test_the_speech_cut_is_calibrated_only_where_the_features_tell_speech_from_pauses(runtime):
    from types import SimpleNamespace

    from engine.motion.runtime import focus_positions
    from engine.motion.train import speech_level_threshold

    norm, spec = runtime.pose.features, runtime.spec
    frames, stride = 400, round(50 / spec.video_fps)
    speech = (np.arange(frames) // 37) % 3 != 0  # phrases and pauses
    rng = np.random.default_rng(0)
    rows = stride * (frames - 1) + spec.window_frames
    # Frame k's current features are rows stride k + its focus positions: make them speech or silence.
    owner = np.clip((np.arange(rows) - focus_positions(spec)[0]) // stride, 0, frames - 1)
    mean = norm.z.mean.numpy()
    features = np.where(speech[owner][:, None], mean, runtime._silence) + rng.normal(0, 0.05, (rows, len(mean)))
    data = SimpleNamespace(features=features[None].astype(np.float32), stride=stride, spec=spec, val_start=frames,
                           speech=speech)
    cut = speech_level_threshold(data, norm)
    assert cut["threshold"] is not None and cut["agreement"] > 0.9
    data.speech = rng.uniform(size=frames) < 0.5  # a VAD the features know nothing of
    assert speech_level_threshold(data, norm)["threshold"] is None


def blink_run(runtime, values):
    """The eyelids shown for a syncer whose blink channels give `values`, one per frame."""
    memory = runtime.new_memory("one_shot", seed=0)
    shown = []
    for value in values:
        expr = np.zeros(len(runtime.names), np.float32)
        expr[runtime._blink_channels] = value
        runtime._advance(memory, memory.pose[0], memory.expr[0], np.zeros(6, np.float32), expr)
        runtime.show_blink(memory, expr)
        shown.append(expr[runtime._blink_channels].copy())
    return np.array(shown)


def test_each_blink_the_syncer_signals_is_shown_as_deep_as_the_avatar_blinks(runtime):
    """A half-deep blink from the syncer rendered as an open eye: on a real face 28 blinks commanded showed as 9."""
    peak, threshold = runtime.blink_peak, runtime.blink_threshold
    assert peak is not None and np.all(peak > threshold)
    half = 1.05 * threshold  # just past the onset: far from shut
    values = [0.0, 0.0, half, 0.6 * threshold] + [0.0] * 12
    shown = blink_run(runtime, values)
    onset = 2
    assert np.allclose(shown[onset + 1], peak) and np.allclose(shown[onset + 2], peak)  # fully shut, two frames
    assert np.all(shown[onset] >= half) and np.all(shown[:onset] == 0.0)
    opening = shown[onset + 2:, 0]
    assert np.all(np.diff(opening) <= 0) and np.all(shown[onset + round(0.3 * runtime.fps):] == 0.0)
    assert np.all(shown >= np.array(values)[:, None])  # never less shut than the syncer says


def test_models_without_a_blink_peak_show_blinks_as_the_syncer_gives_them(trained_avatar):
    old = MotionRuntime.load(trained_avatar)
    old.blink_peak = None
    values = [0.0, 0.0, 1.05 * old.blink_threshold, 0.0, 0.0]
    assert np.array_equal(blink_run(old, values)[:, 0], np.array(values, np.float32))


def test_the_blink_gain_deepens_the_blink_shown_up_to_a_shut_eyelid(runtime):
    """The gain training measured on the renderer (engine/eval/blink_gain.py) scales the blink peak shown, never past
    1; a model without one shows its own peak."""
    assert "gain" not in runtime.metadata["blink"]
    assert np.allclose(runtime.blink_peak, runtime.metadata["blink"]["peak"])
    peak = np.array([0.5, 0.6], np.float32)  # a real face's (this synthetic one's reaches 1)

    def with_gain(gain: float | None) -> MotionRuntime:
        blink = {**runtime.metadata["blink"], "peak": peak.tolist()} | ({} if gain is None else {"gain": gain})
        return MotionRuntime(runtime.pose, runtime.emotion, {**runtime.metadata, "blink": blink})

    assert np.allclose(with_gain(None).blink_peak, peak)
    deeper = with_gain(1.3)
    assert np.allclose(deeper.blink_peak, 1.3 * peak)
    shown = blink_run(deeper, [0.0, 0.0, 1.05 * deeper.blink_threshold] + [0.0] * 4)
    assert np.allclose(shown[3], 1.3 * peak) and np.allclose(shown[4], 1.3 * peak)
    assert np.allclose(with_gain(1.9).blink_peak, [0.95, 1.0])
