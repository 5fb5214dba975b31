"""Syncer building blocks: the matmul convolution equals torch's, the U-Net reads only its window, VAE maths."""
import pytest
import torch
from torch.nn import functional as F

from engine.motion.blocks import Conv1d, DilatedConvStack, TemporalUNet, kl_to_standard, sinusoidal
from engine.motion.data import blink_onsets, blink_timing


@pytest.mark.parametrize("stride,dilation,padding,length", [(1, 1, 1, 16), (2, 1, 1, 16), (2, 1, 1, 7), (1, 2, 0, 16),
                                                            (1, 4, 0, 11), (1, 1, 0, 3)])
def test_conv1d_matches_torch(stride, dilation, padding, length):
    torch.manual_seed(0)
    conv = Conv1d(5, 7, 3, stride=stride, dilation=dilation, padding=padding)
    x = torch.randn(3, 5, length)
    expected = F.conv1d(x, conv.weight, conv.bias, stride=stride, padding=padding, dilation=dilation)
    assert torch.allclose(conv(x), expected, atol=1e-5)


def test_unet_and_stack_shapes_and_batch_independence():
    torch.manual_seed(0)
    unet = TemporalUNet(12, 8, 10, focus=(10, 11), depth=2).eval()
    stack = DilatedConvStack(12, 8, 10, window=16).eval()
    x = torch.randn(4, 16, 12)
    assert unet(x).shape == (4, 10) and stack(x).shape == (4, 10)
    # Each avatar in a batch is computed on its own (GroupNorm per sample, no batch statistics).
    assert torch.allclose(unet(x)[1:2], unet(x[1:2]), atol=1e-5)
    assert torch.allclose(stack(x)[2:3], stack(x[2:3]), atol=1e-5)


def test_kl_and_sinusoids():
    assert float(kl_to_standard(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0
    assert float(kl_to_standard(torch.ones(3, 4), torch.zeros(3, 4))) == pytest.approx(2.0)
    features = sinusoidal(torch.tensor([[0.0, 0.5]]), 3)
    assert features.shape == (1, 12)
    assert torch.allclose(features[0, :6].square() + features[0, 6:].square(), torch.ones(6))


def test_blink_phase_reaches_one_at_each_onset():
    signal = torch.zeros(200).numpy()
    for onset in (30, 90, 160):
        signal[onset:onset + 4] = 0.9
    onsets = blink_onsets(signal, 0.5)
    assert list(onsets) == [30, 90, 160]
    elapsed, interval, intervals = blink_timing(onsets, 200, 25.0)
    phase = elapsed / interval
    assert list(intervals) == [60, 70]
    assert all(phase[o] == pytest.approx(1.0) for o in onsets)  # the onset frame is the end of its interval
    assert phase[31] == pytest.approx(1 / 60) and phase[91] == pytest.approx(1 / 70)
    assert phase[161:].max() < 1.0  # no onset follows the last one inside the clip


def test_training_sequences_avoid_untracked_frames():
    import numpy as np

    from engine.motion.data import sequence_starts

    valid = np.ones(100, bool)
    valid[50] = False
    starts = sequence_starts(valid, 2, 90, 10)
    assert len(starts) and all(not (s - 2 <= 50 < s + 10) for s in starts)
    assert 41 not in starts and 52 not in starts and 40 in starts and 53 in starts
    mostly_bad = np.zeros(100, bool)
    assert len(sequence_starts(mostly_bad, 2, 90, 10)) == 88  # nothing clean: train on what there is


def test_cached_windows_are_used_only_when_made_with_the_same_features(synth_data, tmp_path):
    import json

    import numpy as np

    from engine.audio.features import feature_spec, make_extractor
    from engine.audio.settings import AudioSettings
    from engine.data.dataset import Dataset
    from engine.motion.data import cached_windows, speech_windows

    settings = AudioSettings()
    extractor = make_extractor(settings)
    spec = feature_spec(settings, extractor)
    windows = speech_windows(extractor, Dataset(synth_data[0]).audio(), 50, settings)
    path = tmp_path / "mel.npz"
    np.savez(path, windows=windows, spec=np.array(json.dumps(spec.to_dict())))
    assert np.array_equal(cached_windows(path, spec, 40), windows[:40])
    assert cached_windows(path, spec, 60) is None  # too short for the clip
    other = dict(spec.to_dict(), lookahead_frames=spec.lookahead_frames + 2)
    np.savez(path, windows=windows, spec=np.array(json.dumps(other)))
    assert cached_windows(path, spec, 40) is None
    assert cached_windows(tmp_path / "missing.npz", spec, 40) is None
