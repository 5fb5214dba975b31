"""The noise gate: room noise in pauses goes down to a quiet recording's level, speech passes, streams equal files."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.audio.features import feature_spec
from engine.audio.features.mel import MelExtractor
from engine.audio.gate import BLOCK, NoiseGate
from engine.audio.settings import AudioSettings, GateParams
from engine.audio.streaming import FeatureStream, gated, offline_windows

RATE = 16000


def dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-30))


def talk_with_pauses(noise_dbfs: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2 s pause, 1 s of a voiced syllable train at about -20 dBFS, 2 s pause; white noise at `noise_dbfs` over all.
    Returns the audio and a mask of the speech samples."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    voice = 0.2 * (0.7 + 0.3 * np.sin(2 * np.pi * 4 * t)) * np.sin(2 * np.pi * 180 * t)  # >= 12 dB over the noise
    clean = np.concatenate([np.zeros(2 * RATE), voice, np.zeros(2 * RATE)])
    speech = np.zeros(len(clean), bool)
    speech[2 * RATE:3 * RATE] = True
    noise = rng.standard_normal(len(clean)) * 10 ** (noise_dbfs / 20)
    return (clean + noise).astype(np.float32), speech


@pytest.mark.parametrize("noise_dbfs", [-50.0, -40.0])
def test_noise_in_pauses_is_taken_to_the_target_and_speech_passes(noise_dbfs):
    audio, speech = talk_with_pauses(noise_dbfs)
    out = NoiseGate(GateParams(speech_dbfs=None)).process(audio)  # the gate alone (level control off)
    assert len(out) == len(audio)  # a whole number of blocks
    pause = ~speech
    pause[:int(1.6 * RATE)] = False  # the tracker needs its history before it knows the floor
    pause[3 * RATE:int(3.1 * RATE)] = False  # the gate closes over tens of milliseconds after a word
    levels = [dbfs(block) for block in out[pause].reshape(-1, BLOCK)]
    assert np.percentile(levels, 90) < GateParams().target_dbfs + 4
    inner = slice(2 * RATE + 800, 3 * RATE - 800)  # speech away from its edges
    np.testing.assert_array_equal(out[inner], audio[inner])


@pytest.mark.parametrize("gain_db", [-20.0, -6.0, 0.0, 6.0])
def test_level_control_brings_speech_of_any_level_to_the_same_level(gain_db):
    params = GateParams()
    audio, speech = talk_with_pauses(-60.0, seed=5)
    louder = np.concatenate([audio, audio]) * 10 ** (gain_db / 20)  # the second half: after the speech level is known
    out = NoiseGate(params).process(louder.astype(np.float32))
    second = np.concatenate([np.zeros(len(audio), bool), speech])
    assert dbfs(out[second]) == pytest.approx(params.speech_dbfs, abs=1.5)


def test_digital_silence_and_a_quiet_recording_are_not_raised():
    quiet = (np.random.default_rng(1).standard_normal(3 * RATE) * 10 ** (-90 / 20)).astype(np.float32)
    assert not NoiseGate(GateParams()).process(np.zeros(RATE, np.float32)).any()
    np.testing.assert_array_equal(NoiseGate(GateParams()).process(quiet), quiet)  # floor below the target


def test_pieces_of_any_size_give_the_samples_of_the_whole():
    audio, _ = talk_with_pauses(-45.0, seed=2)
    whole = NoiseGate(GateParams()).process(audio)
    gate, rng, pieces, start = NoiseGate(GateParams()), np.random.default_rng(3), [], 0
    while start < len(audio):
        n = int(rng.integers(1, 700))
        pieces.append(gate.process(audio[start:start + n]))
        start += n
    streamed = np.concatenate(pieces)
    assert len(streamed) == len(audio) // BLOCK * BLOCK
    np.testing.assert_array_equal(streamed, whole[:len(streamed)])


def test_feature_stream_gates_like_offline_windows():
    audio, _ = talk_with_pauses(-40.0, seed=4)
    extractor, params = MelExtractor(), GateParams()
    stream = FeatureStream(extractor, lookahead_frames=2, gate=params)
    for start in range(0, len(audio), 333):
        stream.push(audio[start:start + 333])
    emitted = np.stack([w for _, _, w in stream.pull()])
    offline = offline_windows(extractor, audio, lookahead_frames=2, gate=params)
    assert np.abs(emitted - offline[:len(emitted)]).max() <= 1e-4
    ungated = offline_windows(extractor, audio, lookahead_frames=2)
    assert np.abs(ungated - offline).max() > 1.0  # the gate changed the pauses' features


def test_disabled_gate_changes_nothing_and_the_spec_names_the_gate():
    audio, _ = talk_with_pauses(-40.0)
    np.testing.assert_array_equal(gated(audio, GateParams(enabled=False)), audio)
    on, off = AudioSettings(), AudioSettings(gate=GateParams(enabled=False))
    assert feature_spec(on, MelExtractor()).gate["target_dbfs"] == on.gate.target_dbfs
    assert feature_spec(off, MelExtractor()).gate is None
    assert feature_spec(replace(on, gate=replace(on.gate, target_dbfs=-70.0)), MelExtractor()).to_dict() != \
        feature_spec(on, MelExtractor()).to_dict()


@pytest.mark.parametrize("enabled", [True, False])
def test_a_stored_spec_gives_back_the_settings_it_was_made_with(enabled):
    from engine.audio.features import FeatureSpec, settings_for

    settings = AudioSettings(gate=GateParams(enabled=enabled, target_dbfs=-72.0, open_db=(5.0, 11.0),
                                             speech_gain_db=(-6.0, 18.0)))
    stored = feature_spec(settings, MelExtractor()).to_dict()
    expected = settings.gate if enabled else GateParams(enabled=False)  # an off gate stores no parameters
    assert settings_for(FeatureSpec.from_dict(stored)).gate == expected
