"""Parts of the synthetic presenter without rendering: speech, visemes, motion statistics, pose maths, input errors."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engine.data.synth import SynthOptions
from engine.data.synth.config import SynthError
from engine.data.synth.corpus import load_sentences, split_sentences
from engine.data.synth.motion import speaking_mask
from engine.data.synth.pipeline import plan_clip
from engine.data.synth.presenter import euler_to_matrix, matrix_to_euler
from engine.data.synth.rig import BS
from engine.data.synth.speech import Espeak, VoiceSettings, choose_voice, compose_speech
from engine.data.synth.visemes import mouth_tracks, viseme_of


def _pauses(utterances, seconds):
    bounds = [0.0] + [t for start, end, _ in utterances for t in (start, end)] + [seconds]
    return np.array([bounds[i + 1] - bounds[i] for i in range(0, len(bounds), 2)])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_speech_has_pauses_of_half_a_second_to_three_seconds_and_a_fifth_silence(seed):
    rng = np.random.default_rng(seed)
    speech = compose_speech(load_sentences(None), 15.0, choose_voice(rng), rng)
    assert len(speech.samples) == 15 * speech.sample_rate
    pauses = _pauses(speech.utterances, 15.0)
    assert len(speech.utterances) >= 2
    assert pauses.min() >= 0.5 - 1e-6 and pauses.max() <= 3.0 + 1e-6, pauses
    assert pauses.sum() / 15.0 >= 0.2
    starts = np.array([p.start for p in speech.phonemes])
    assert np.all(np.diff(starts) >= 0) and all(p.end > p.start for p in speech.phonemes)


def test_phoneme_events_carry_timing_and_stress():
    utterance = Espeak.get().synthesize("Hello photography", VoiceSettings("en-us", 160, 50, 50))
    symbols = [p.symbol for p in utterance.phonemes]
    assert symbols[:4] == ["h", "@", "l", "oU"]
    stressed = [p.symbol for p in utterance.phonemes if p.stressed]
    assert stressed == ["oU", "0"]  # hel'lo, pho'tography
    assert utterance.phonemes[-1].end <= utterance.duration + 1e-6
    # Speech energy sits inside the phoneme spans.
    rate = utterance.sample_rate
    first = int(utterance.phonemes[0].start * rate)
    assert np.abs(utterance.samples[:max(first - 50, 1)]).max() < 0.05


def test_voices_rates_and_pitch_vary_with_the_seed():
    voices = {choose_voice(np.random.default_rng(seed)) for seed in range(12)}
    assert len({v.name.split("+")[0] for v in voices}) >= 4
    assert len({v.name.split("+")[1] for v in voices}) >= 5
    assert len({v.rate for v in voices}) >= 6 and len({v.pitch for v in voices}) >= 6


def test_visemes_mean_what_their_names_say():
    assert viseme_of("p") == viseme_of("m") == "PP"
    assert viseme_of("aI") == "AA" and viseme_of("u:") == "UW" and viseme_of("f") == "FF"
    from engine.data.synth.speech import Phoneme

    phonemes = (Phoneme(0.2, 0.4, "A:", True, True), Phoneme(0.4, 0.55, "m", False, False),
                Phoneme(0.55, 0.8, "u:", False, True))
    track = mouth_tracks(phonemes, 25, 25.0)
    at = lambda t: track[int(t * 25)]  # noqa: E731
    assert at(0.3)[BS["jawOpen"]] > 0.5  # "ah": open
    sealed = at(0.48)
    assert sealed[BS["mouthClose"]] >= 0.8 * sealed[BS["jawOpen"]]  # "m": lips sealed over the jaw
    assert at(0.7)[BS["mouthPucker"]] > 0.5  # "oo": rounded
    assert at(0.02)[BS["jawOpen"]] == 0.0 and np.all(track[:, BS["mouthClose"]] <= track[:, BS["jawOpen"]] + 1e-9)


@pytest.fixture(scope="module")
def long_plan():
    return plan_clip(SynthOptions(Path("unused"), seconds=60.0, seed=4, size=128))


def test_blinks_are_stochastic_ten_to_twenty_five_a_minute(long_plan):
    starts = np.array([s for s, _ in long_plan.blinks])
    durations = np.array([d for _, d in long_plan.blinks])
    assert 10 <= len(starts) <= 25
    assert durations.min() >= 0.1 and durations.max() <= 0.3
    intervals = np.diff(starts)
    assert intervals.std() > 0.2 * intervals.mean()  # not a metronome
    blink = long_plan.blendshapes[:, BS["eyeBlinkLeft"]]
    assert blink.max() > 0.9 and np.mean(blink > 0.5) < 0.1


def test_head_moves_with_speech_and_calms_in_silence(long_plan):
    speed = np.linalg.norm(np.diff(long_plan.head_euler, axis=0), axis=1)
    speaking = long_plan.speaking[1:]
    assert speed[speaking].mean() > 1.3 * speed[~speaking].mean()
    assert np.ptp(long_plan.head_euler[:, 2]) > 4.0  # yaw really moves
    assert np.abs(long_plan.head_euler[:, :2]).max() < 30 and np.abs(long_plan.head_euler[:, 2]).max() < 40


def test_shoulders_follow_the_head_partly(long_plan):
    head_yaw = long_plan.head_euler[:, 2] - long_plan.head_euler[:, 2].mean()
    torso_yaw = long_plan.torso_euler[:, 2] - long_plan.torso_euler[:, 2].mean()
    ratio = torso_yaw.std() / head_yaw.std()
    assert 0.15 < ratio < 0.6
    lag = int(0.3 * 25)
    assert np.corrcoef(head_yaw[:-lag], torso_yaw[lag:])[0, 1] > 0.8


def test_brows_rise_on_stressed_syllables(long_plan):
    brow = long_plan.blendshapes[:, BS["browInnerUp"]]
    stressed = np.zeros(len(brow), bool)
    for p in long_plan.speech.phonemes:
        if p.stressed:
            stressed[int(p.start * 25):int(p.start * 25) + 4] = True
    assert brow.max() > 0.3
    assert brow[stressed].mean() > 2.0 * brow[~long_plan.speaking].mean() + 0.02


def test_speaking_mask_counts_long_pauses_as_silence():
    from engine.data.synth.speech import Phoneme

    phonemes = (Phoneme(0.0, 0.5, "a", False, True), Phoneme(0.55, 1.0, "t", False, False),
                Phoneme(1.5, 2.0, "a", False, True))
    mask = speaking_mask(phonemes, 50, 25.0)
    assert mask[:25].all() and not mask[26:37].any() and mask[38:50].all()


def test_euler_angles_follow_the_papers_equation_one():
    rng = np.random.default_rng(0)
    for euler in rng.uniform(-40, 40, (20, 3)):
        r = euler_to_matrix(euler)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(matrix_to_euler(r), euler, atol=1e-9)
    # Pure yaw turns the nose (+z) toward +x, i.e. the image right.
    assert euler_to_matrix([0, 0, 20]) @ np.array([0, 0, 1.0]) @ np.array([1.0, 0, 0]) > 0


@pytest.mark.slow  # about 1.1 s on 2 cores: three plans with their speech (a shorter clip fits no sentence)
def test_plans_are_deterministic_and_differ_between_seeds():
    a = plan_clip(SynthOptions(Path("unused"), seconds=6.0, seed=9))
    b = plan_clip(SynthOptions(Path("unused"), seconds=6.0, seed=9))
    c = plan_clip(SynthOptions(Path("unused"), seconds=6.0, seed=10))
    np.testing.assert_array_equal(a.blendshapes, b.blendshapes)
    np.testing.assert_array_equal(a.speech.samples, b.speech.samples)
    assert a.look == b.look and a.look != c.look
    assert a.look.skin_lab != c.look.skin_lab and a.look.clothes_rgb != c.look.clothes_rgb


def test_text_file_sentences_are_spoken_in_order(tmp_path):
    text = tmp_path / "talk.txt"
    text.write_text("First we test. Then we check!\n\nFinally we stop?", encoding="utf-8")
    assert split_sentences(text.read_text()) == ["First we test.", "Then we check!", "Finally we stop?"]
    plan = plan_clip(SynthOptions(tmp_path, seconds=12.0, seed=1, text=text))
    spoken = [sentence for _, _, sentence in plan.speech.utterances]
    assert spoken[:2] == ["First we test.", "Then we check!"]


def test_empty_text_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n ... \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt.*no words"):
        plan_clip(SynthOptions(tmp_path, seconds=5.0, text=empty))
    with pytest.raises(SynthError, match="missing.txt"):
        plan_clip(SynthOptions(tmp_path, seconds=5.0, text=tmp_path / "missing.txt"))


def test_unknown_voice_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="'martian-xx'.*en-us"):
        plan_clip(SynthOptions(tmp_path, seconds=5.0, voice="martian-xx"))
    plan = plan_clip(SynthOptions(tmp_path, seconds=5.0, voice="en-gb+f2"))
    assert plan.speech.voice.name == "en-gb+f2"


@pytest.mark.parametrize("field,value,message", [
    ("seconds", 0.5, "--seconds"), ("fps", 0.0, "--fps"), ("size", 16, "--size"),
])
def test_bad_numbers_are_clear_errors(tmp_path, field, value, message):
    config = dataclasses.replace(SynthOptions(tmp_path), **{field: value})
    with pytest.raises(ValueError, match=message):
        plan_clip(config)


def test_config_module_is_light():
    import subprocess
    import sys

    code = "import sys, engine.data.synth.config; print(any(m in sys.modules for m in ('torch', 'moderngl', 'mediapipe')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_user_text_keeps_pauses_within_three_seconds_when_the_next_sentence_does_not_fit():
    short = "We begin with a short one."
    long = " ".join(["This sentence is far too long to fit into the little time that is left"] * 2) + "."
    rng = np.random.default_rng(3)
    speech = compose_speech([short, short, long], 12.0, VoiceSettings("en-us", 170, 50, 50), rng, shuffle=False)
    pauses = _pauses(speech.utterances, 12.0)
    assert long not in [text for _, _, text in speech.utterances]
    assert pauses.min() >= 0.5 - 1e-6 and pauses.max() <= 3.0 + 1e-6, pauses


def test_a_clip_too_short_for_any_sentence_is_a_clear_error(tmp_path):
    text = tmp_path / "long.txt"
    text.write_text("This single sentence is certainly much longer than the two seconds we allow it.", encoding="utf-8")
    with pytest.raises(ValueError, match="--seconds 2.0: no sentence fits"):
        plan_clip(SynthOptions(tmp_path, seconds=2.0, text=text))


def _sentence_f0(plan) -> list[tuple[int, float]]:
    """(voice index, median F0 in Hz) per spoken sentence of a plan."""
    from engine.data.synth.motion import audio_features

    _, f0 = audio_features(plan.speech.samples, plan.speech.sample_rate, plan.frames, 25.0)
    t = (np.arange(plan.frames) + 0.5) / 25.0
    out = []
    for (start, end, _), voice in zip(plan.speech.utterances, plan.speech.utterance_voices):
        voiced = (t >= start) & (t < end) & (f0 > 0)
        out.append((voice, float(np.median(f0[voiced]))))
    return out


def test_several_voices_speak_successive_sentences_in_turn(tmp_path):
    from engine.data.synth.pipeline import _meta

    config = SynthOptions(tmp_path, seconds=20.0, seed=2, voice="en-us+m3, en-us+f3", size=128)
    plan = plan_clip(config)
    assert [v.name for v in plan.speech.voices] == ["en-us+m3", "en-us+f3"]
    turns = list(plan.speech.utterance_voices)
    assert len(turns) == len(plan.speech.utterances) >= 3 and turns == [i % 2 for i in range(len(turns))]
    # The audio really changes voice: every +f3 sentence is pitched well above every +m3 one.
    f0 = _sentence_f0(plan)
    low = max(hz for voice, hz in f0 if voice == 0)
    high = min(hz for voice, hz in f0 if voice == 1)
    assert high > 1.3 * low, f0
    meta = _meta(config, plan)
    assert [v["name"] for v in meta["voices"]] == ["en-us+m3", "en-us+f3"]
    assert meta["sentence_voices"] == turns and len(meta["sentence_spans_s"]) == len(turns)
    assert meta["voice"] == meta["voices"][0]
    # Each voice keeps its own rate and pitch from the seed; the first is the one `--voice en-us+m3` would get.
    single = plan_clip(SynthOptions(tmp_path, seconds=20.0, seed=2, voice="en-us+m3", size=128))
    assert single.speech.voices == plan.speech.voices[:1] and "voices" not in _meta(config, single)


def test_several_voices_are_deterministic_in_the_seed(tmp_path):
    a = plan_clip(SynthOptions(tmp_path, seconds=12.0, seed=7, voice="en-gb-scotland,en-us+f3,en-029"))
    b = plan_clip(SynthOptions(tmp_path, seconds=12.0, seed=7, voice="en-gb-scotland,en-us+f3,en-029"))
    c = plan_clip(SynthOptions(tmp_path, seconds=12.0, seed=8, voice="en-gb-scotland,en-us+f3,en-029"))
    np.testing.assert_array_equal(a.speech.samples, b.speech.samples)
    np.testing.assert_array_equal(a.blendshapes, b.blendshapes)
    assert a.speech.voices == b.speech.voices and a.speech.utterance_voices == b.speech.utterance_voices
    assert a.speech.voices != c.speech.voices  # rates and pitches come from the seed


def test_an_unknown_voice_in_a_list_is_the_same_clear_error(tmp_path):
    with pytest.raises(ValueError, match="'martian-xx'.*en-us"):
        plan_clip(SynthOptions(tmp_path, seconds=5.0, voice="en-us,martian-xx"))
    with pytest.raises(ValueError, match="empty name"):
        plan_clip(SynthOptions(tmp_path, seconds=5.0, voice="en-us,,en-gb"))


@pytest.fixture(scope="module")
def head_rig():
    from engine.data.face_model import load_canonical_mesh
    from engine.data.synth import rig

    mesh = load_canonical_mesh()
    uv = np.zeros((len(mesh.vertices), 2), np.float32)
    return rig.build_head(mesh, rig.FaceShape(), uv, np.full(3, 0.6, np.float32), np.full(3, 0.2, np.float32), 0.3, 2.0)


def _posed(head_rig, **controls) -> np.ndarray:
    from engine.data.synth.rig import BLENDSHAPE_NAMES, deform_head

    weights = np.zeros(len(BLENDSHAPE_NAMES))
    for name, value in controls.items():
        weights[BS[name]] = value
    return deform_head(head_rig, weights)[0][:head_rig.face_count]


def test_the_jaw_carries_chin_and_jaw_line_as_one_bone(head_rig):
    rest, open_ = _posed(head_rig), _posed(head_rig, jawOpen=0.6)
    drop = rest[:, 1] - open_[:, 1]
    lower_lip, chin = drop[14], drop[152]
    assert lower_lip > 1.2 and chin > 0.8 * lower_lip  # cm at 11 degrees
    # The jaw line from the chin to the angle of the jaw moves with the chin, not only the middle of the face.
    for index in (148, 176, 150, 136):
        assert drop[index] > 0.45 * chin, index
    # The mouth corners, tied to both lips, go down part of the way; the upper lip and the nose stay.
    assert 0.2 * lower_lip < drop[61] < 0.6 * lower_lip and 0.2 * lower_lip < drop[291] < 0.6 * lower_lip
    assert abs(drop[13]) < 0.05 and abs(drop[1]) < 1e-9


def test_rounded_and_spread_lips_leave_a_closed_jaw_closed(head_rig):
    rest = _posed(head_rig)
    gap = lambda v: v[13, 1] - v[14, 1]  # noqa: E731  inner-lip opening, cm
    for controls in ({"mouthFunnel": 1.0}, {"mouthPucker": 1.0}, {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
                     {"mouthStretchLeft": 1.0, "mouthStretchRight": 1.0}):
        posed = _posed(head_rig, **controls)
        assert gap(posed) - gap(rest) < 0.2, controls  # at most 2 mm: the opening comes from the jaw
        assert abs(posed[152, 1] - rest[152, 1]) < 0.05, controls  # the chin never moves without the jaw
    smile = _posed(head_rig, mouthSmileLeft=1.0, mouthSmileRight=1.0)
    assert smile[61, 1] - rest[61, 1] > 0.3 and abs(smile[14, 1] - rest[14, 1]) < 0.1  # corners up, middle stays
    # A rounded "oo" over a slightly open jaw keeps a smaller aperture than the jaw alone opens.
    assert gap(_posed(head_rig, jawOpen=0.3, mouthPucker=1.0)) < gap(_posed(head_rig, jawOpen=0.3)) - 0.15
