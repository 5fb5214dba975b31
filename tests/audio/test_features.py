"""Feature extractors: streaming equals offline for mel and HuBERT, framing, and the stored-spec check."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.audio.features import FeatureMismatchError, feature_spec, make_extractor
from engine.audio.features.mel import MelExtractor
from engine.audio.settings import AudioSettings, HubertParams, MelParams
from engine.audio.streaming import FeatureStream, offline_frames, offline_windows


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised, very small HubertModel saved like a downloaded checkpoint."""
    import torch
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hubert-tiny")
    config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    HubertModel(config).save_pretrained(folder)
    return folder


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)  # syllable-rate loudness changes
    carrier = np.sin(2 * np.pi * (200 + 150 * np.sin(2 * np.pi * 0.7 * t)) * t)
    return (0.3 * envelope * carrier + 0.02 * rng.standard_normal(n)).astype(np.float32)


def _stream(extractor, audio: np.ndarray, seed: int, **kwargs) -> tuple[list, FeatureStream]:
    stream = FeatureStream(extractor, **kwargs)
    rng = np.random.default_rng(seed)
    out = []
    start = 0
    while start < len(audio):
        n = int(rng.integers(1, 1500))
        stream.push(audio[start:start + n])
        out += stream.pull()
        start += n
    return out, stream


def test_mel_streaming_equals_offline() -> None:
    extractor = MelExtractor()
    audio = _speechlike(3.0)
    emitted, _ = _stream(extractor, audio, seed=1)
    offline = offline_windows(extractor, audio, lookahead_frames=4)
    assert offline.shape == (72, 16, 80)  # 3 s: every frame whose 80 ms look-ahead the audio reaches
    assert [k for k, _, _ in emitted] == list(range(len(offline)))
    assert np.abs(np.stack([w for _, _, w in emitted]) - offline).max() <= 1e-4


def test_windows_are_the_frames_around_each_video_frame() -> None:
    extractor = MelExtractor()
    audio = _speechlike(2.0)
    frames = offline_frames(extractor, audio)  # [J, 80], 50 Hz
    windows = offline_windows(extractor, audio, window_frames=16, lookahead_frames=4)
    # Video frame k owns frames 2k, 2k+1; its window ends 4 frames later: frames [2k - 10, 2k + 6).
    for k in (5, 20, 40):
        assert np.array_equal(windows[k], frames[2 * k - 10:2 * k + 6])
    # Frames that end before the audio starts are silence features (frame -1 already hears 80 samples).
    assert np.allclose(windows[0][:9], np.log(1e-5)) and not np.allclose(windows[0][9], np.log(1e-5))
    # A 1 kHz tone lands in the mel band around 1 kHz.
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)).astype(np.float32)
    mel = offline_frames(extractor, tone)
    assert len(mel) == 48  # (16000 - 400) // 320 + 1 = 49, less the unfinished last block of 2
    assert 20 <= int(np.argmax(mel[10])) <= 30  # slaney mel: 1 kHz sits near band 25 of 80 between 55 and 7600 Hz


def test_look_ahead_and_window_are_parameters() -> None:
    extractor = MelExtractor(MelParams(n_mels=40))
    audio = _speechlike(1.0)
    emitted, _ = _stream(extractor, audio, seed=3, window_frames=8, lookahead_frames=0, fps=25.0, origin_s=0.5)
    offline = offline_windows(extractor, audio, window_frames=8, lookahead_frames=0)
    assert offline.shape[1:] == (8, 40)
    assert np.abs(np.stack([w for _, _, w in emitted]) - offline).max() <= 1e-4
    assert emitted[3][1] == pytest.approx(0.5 + 3 / 25)
    with pytest.raises(ValueError, match="fps 30"):
        FeatureStream(extractor, fps=30.0)


def test_hubert_streaming_equals_offline(tiny_hubert: Path) -> None:
    settings = AudioSettings(extractor="hubert", hubert=HubertParams(model=str(tiny_hubert), context_frames=12,
                                                                     device="cpu"))
    extractor = make_extractor(settings)
    assert extractor.dim == 32
    audio = _speechlike(2.0, seed=4)
    emitted, stream = _stream(extractor, audio, seed=5)
    offline = offline_windows(extractor, audio, batch=7)
    assert len(emitted) == len(offline) == 47
    assert np.abs(np.stack([w for _, _, w in emitted]) - offline).max() <= 1e-4
    # Frames 0.. computed for training data match the windows the engine streams.
    frames = offline_frames(extractor, audio)
    assert np.abs(frames[:16] - offline[5]).max() <= 1e-4


def test_hubert_uses_its_context_and_a_chosen_layer(tiny_hubert: Path) -> None:
    audio = _speechlike(1.0, seed=6)
    short = make_extractor(AudioSettings(extractor="hubert", hubert=HubertParams(model=str(tiny_hubert),
                                                                                context_frames=0, device="cpu")))
    long = make_extractor(AudioSettings(extractor="hubert", hubert=HubertParams(model=str(tiny_hubert),
                                                                               context_frames=20, device="cpu")))
    first = make_extractor(AudioSettings(extractor="hubert", hubert=HubertParams(model=str(tiny_hubert), layer=1,
                                                                                context_frames=20, device="cpu")))
    a, b, c = (offline_frames(e, audio) for e in (short, long, first))
    assert a.shape == b.shape == c.shape == (48, 32)
    # Attention reaches the context, so it changes the features; a different layer gives different features.
    assert np.abs(a - b).max() > 1e-3 and np.abs(b - c).max() > 1e-3
    with pytest.raises(ValueError, match="layer=5"):
        make_extractor(AudioSettings(extractor="hubert", hubert=HubertParams(model=str(tiny_hubert), layer=5)))


@pytest.mark.slow  # about 2.5 s on 2 cores: importing transformers before the model is looked for
def test_missing_hubert_model_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="huggingface-cli download"):
        make_extractor(AudioSettings(extractor="hubert", hubert=HubertParams(model=str(tmp_path / "no-such-model"))))


def test_stored_spec_mismatch_is_refused_with_the_difference(tiny_hubert: Path, tmp_path: Path) -> None:
    import torch
    from transformers import HubertModel

    settings = AudioSettings()
    spec = feature_spec(settings, make_extractor(settings))
    stored = spec.to_dict()
    spec.check(stored, "avatar/motion.safetensors")  # the same features pass
    other = feature_spec(replace(settings, lookahead_frames=4), make_extractor(settings))
    with pytest.raises(FeatureMismatchError, match=r"avatar/motion.safetensors .*lookahead_frames: model 2, engine 4"):
        other.check(stored, "avatar/motion.safetensors")
    smaller = feature_spec(settings, MelExtractor(MelParams(n_mels=64)))
    with pytest.raises(FeatureMismatchError, match="params.n_mels: model 80, engine 64"):
        smaller.check(stored, "m.json")
    # Same HuBERT shape, other weights: refused; same weights under another path: accepted.
    hubert = AudioSettings(extractor="hubert", hubert=HubertParams(model=str(tiny_hubert), device="cpu"))
    trained = feature_spec(hubert, make_extractor(hubert)).to_dict()
    copy = tmp_path / "copy"
    HubertModel.from_pretrained(tiny_hubert).save_pretrained(copy)
    moved = replace(hubert, hubert=replace(hubert.hubert, model=str(copy)))
    feature_spec(moved, make_extractor(moved)).check(trained, "nerf.safetensors")
    torch.manual_seed(1)
    retrained = tmp_path / "retrained"
    HubertModel(HubertModel.from_pretrained(tiny_hubert).config).save_pretrained(retrained)
    swapped = replace(hubert, hubert=replace(hubert.hubert, model=str(retrained)))
    with pytest.raises(FeatureMismatchError, match="params.weights"):
        feature_spec(swapped, make_extractor(swapped)).check(trained, "nerf.safetensors")
    assert type(spec).from_dict(stored) == spec
