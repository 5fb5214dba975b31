"""run_synth: speech -> animation tracks -> rendered frames -> video.mp4, audio.wav and truth.npz (written last)."""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.synth import motion
from engine.data.synth.appearance import Look, astronaut_photo, choose_look
from engine.data.synth.config import SynthError, SynthOptions
from engine.data.synth.corpus import load_sentences
from engine.data.synth.presenter import NECK_BOTTOM, BodyPose, Presenter, euler_to_matrix
from engine.data.synth.rig import BLENDSHAPE_NAMES, HEAD_PIVOT
from engine.data.synth.speech import Speech, choose_voices, compose_speech, parse_voices
from engine.data.synth.visemes import mouth_tracks
from engine.io.video import Mp4Writer, write_wav

TRUTH_VERSION = 1
# One independent random stream per concern; a stream's place in this tuple fixes its numbers, so new
# streams go at the end.
STREAMS = ("voice", "speech", "look", "style", "blink", "brow", "pose", "expr", "backdrop")


@dataclass(frozen=True)
class Plan:
    """Everything about a clip except its pixels: speech and per-frame truth before rendering."""

    speech: Speech
    frames: int
    blendshapes: np.ndarray  # [T, K] float32
    speaking: np.ndarray  # [T] bool
    head_euler: np.ndarray  # [T, 3] roll, pitch, yaw degrees
    head_trans: np.ndarray  # [T, 3] cm, x_cam = R x_head + trans
    torso_euler: np.ndarray  # [T, 3]
    torso_trans: np.ndarray  # [T, 3]
    blinks: list
    look: Look
    style: motion.Style


def validate(config: SynthOptions) -> None:
    """Reject settings that cannot make a clip, naming the value and the fix."""
    if not (math.isfinite(config.seconds) and config.seconds >= 2.0):
        raise SynthError(f"--seconds {config.seconds}: must be at least 2 (a sentence plus pauses)")
    if not (math.isfinite(config.fps) and 1.0 <= config.fps <= 120.0):
        raise SynthError(f"--fps {config.fps}: must be between 1 and 120")
    if not 64 <= config.size <= 4096:
        raise SynthError(f"--size {config.size}: must be between 64 and 4096 pixels")
    if config.sample_rate < 8000:
        raise SynthError(f"--sample-rate {config.sample_rate}: must be at least 8000 Hz")


def _streams(seed: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
    """Independent random streams per concern, so changing one (e.g. the voice) leaves the others alone."""
    children = np.random.SeedSequence(int(seed)).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def plan_clip(config: SynthOptions) -> Plan:
    """Speech and all animation tracks for `config` (deterministic in config.seed)."""
    validate(config)
    rng = _streams(config.seed, STREAMS)
    sentences = load_sentences(config.text)
    voices = choose_voices(rng["voice"], parse_voices(config.voice))
    speech = compose_speech(sentences, config.seconds, voices, rng["speech"], config.sample_rate, shuffle=config.text is None)
    frames = int(round(config.seconds * config.fps))
    look = choose_look(rng["look"])
    style = motion.choose_style(rng["style"])
    speaking = motion.speaking_mask(speech.phonemes, frames, config.fps)
    loudness, f0 = motion.audio_features(speech.samples, speech.sample_rate, frames, config.fps)
    mouth = mouth_tracks(speech.phonemes, frames, config.fps, style.articulation)
    blink, blinks = motion.blink_track(frames, config.fps, style.blinks_per_minute, rng["blink"])
    brows = motion.brow_track(speech.phonemes, f0, frames, config.fps, style, rng["brow"])
    blendshapes = motion.expression_tracks(mouth, blink, brows, rng["expr"])
    tracks = motion.pose_tracks(loudness, f0, speaking, speech.phonemes, config.fps, style, rng["pose"])
    rest = np.array([look.head_offset[0], look.head_offset[1], -look.distance])
    head_trans = np.empty((frames, 3))
    for i in range(frames):
        # The head turns about the top of the neck, so the truth translation carries that lever arm.
        r = euler_to_matrix(tracks.head_euler[i])
        head_trans[i] = rest + tracks.head_offset[i] + HEAD_PIVOT - r @ HEAD_PIVOT
    # The torso stands where the neck of the head at its resting pose ends.
    r_base = euler_to_matrix(np.array(style.base_euler_deg))
    torso_rest = r_base @ NECK_BOTTOM + rest + HEAD_PIVOT - r_base @ HEAD_PIVOT
    torso_trans = torso_rest + tracks.torso_offset
    return Plan(
        speech, frames, blendshapes, speaking, tracks.head_euler.astype(np.float32), head_trans.astype(np.float32),
        tracks.torso_euler.astype(np.float32), torso_trans.astype(np.float32), blinks, look, style,
    )


def _progress(enabled: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("synth"), BarColumn(), TextColumn("{task.completed}/{task.total} frames"), TimeRemainingColumn(),
        disable=not enabled, transient=True,
    )


def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) for a temp file beside `path`, then move it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _meta(config: SynthOptions, plan: Plan) -> dict:
    look = plan.look
    focal = (config.size / 2.0) / math.tan(math.radians(look.fovy_deg) / 2.0)
    meta = {
        "version": TRUTH_VERSION,
        "camera": {
            "model": "pinhole at the origin looking down -z, x right, y up (OpenGL); pixels x right, y down",
            "fovy_deg": look.fovy_deg, "focal_px": focal, "cx": config.size / 2.0, "cy": config.size / 2.0,
            "width": config.size, "height": config.size,
        },
        "pose": (
            "x_cam = R @ x_head + trans, x_head in MediaPipe canonical-face coordinates (cm, y up, nose +z), "
            "trans in cm. R = Rz(roll) Ry(yaw) Rx(pitch); euler_deg = (roll, pitch, yaw) by the paper's Eq. 1: "
            "roll = atan2(R21, R11), pitch = atan2(R32, R33), yaw = atan2(-R31, hypot(R32, R33)). "
            "Positive pitch turns the nose down, positive yaw turns it to the image right, positive roll "
            "tilts the head counter-clockwise in the image. Same axes as MediaPipe's facial transformation matrix."
        ),
        "blendshapes": (
            "ARKit names; values are the rig's controls in 0..1 (0 = the photo's rest face, which smiles "
            "slightly). jawOpen 1 = 18 degrees of jaw rotation; mouthClose seals the lips over an open jaw "
            "and never exceeds jawOpen."
        ),
        "landmarks2d": "MediaPipe 478-point topology projected from the rig; 468-477 (irises) ride their face triangles",
        "speaking": "frame centre inside speech; pauses of 0.15 s or more between phonemes count as silence",
        "voice": _voice_meta(plan.speech.voice),
        "sentences": [text for _, _, text in plan.speech.utterances],
        "head_pivot_cm": HEAD_PIVOT.tolist(),
    }
    if len(plan.speech.voices) > 1:
        # Several voices: "voice" is the first; "voices" is the rotation and "sentence_voices" indexes it per sentence.
        meta["voices"] = [_voice_meta(voice) for voice in plan.speech.voices]
        meta["sentence_voices"] = list(plan.speech.utterance_voices)
        meta["sentence_spans_s"] = [[start, end] for start, end, _ in plan.speech.utterances]
    return meta


def _voice_meta(voice) -> dict:
    return {"name": voice.name, "rate_wpm": voice.rate, "pitch": voice.pitch, "range": voice.pitch_range}


def _truth_arrays(config: SynthOptions, plan: Plan, landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """The contents of truth.npz; landmarks [T, 478, 2] pixels."""
    return {
        "euler_deg": plan.head_euler, "trans": plan.head_trans, "blendshapes": plan.blendshapes,
        "blendshape_names": np.array(BLENDSHAPE_NAMES), "speaking": plan.speaking, "landmarks2d": landmarks,
        "fps": np.float64(config.fps), "seed": np.int64(config.seed),
        "torso_euler_deg": plan.torso_euler, "torso_trans": plan.torso_trans,
        "phoneme_start": np.array([p.start for p in plan.speech.phonemes], np.float32),
        "phoneme_end": np.array([p.end for p in plan.speech.phonemes], np.float32),
        "phoneme_symbol": np.array([p.symbol for p in plan.speech.phonemes], dtype=str),
        "blink_start": np.array([b[0] for b in plan.blinks], np.float32),
        "blink_duration": np.array([b[1] for b in plan.blinks], np.float32),
        "sample_rate": np.int64(plan.speech.sample_rate),
        "meta": np.array(json.dumps(_meta(config, plan))),
    }


def run_synth(config: SynthOptions) -> Path:
    """Make the clip for `config`; returns OUT_DIR. truth.npz is written last, so its presence marks a finished run.

    Files: video.mp4 (h264 + AAC), audio.wav (16-bit mono), truth.npz with euler_deg [T,3], trans [T,3],
    blendshapes [T,K], blendshape_names [K], speaking [T], landmarks2d [T,478,2], fps, seed, and meta (JSON).
    """
    plan = plan_clip(config)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_path = out_dir / "truth.npz"
    truth_path.unlink(missing_ok=True)  # never leave an old truth beside a new video
    photo = astronaut_photo(str(config.face_model) if config.face_model else None)
    rng_backdrop = _streams(config.seed, STREAMS)["backdrop"]
    presenter = Presenter(plan.look, photo, config.size, rng_backdrop, str(config.face_model) if config.face_model else None)
    landmarks = np.zeros((plan.frames, 478, 2), np.float32)
    try:
        with Mp4Writer(out_dir / "video.mp4", config.fps) as writer, _progress(config.progress) as progress:
            task = progress.add_task("render", total=plan.frames)
            for i in range(plan.frames):
                pose = BodyPose(plan.head_euler[i], plan.head_trans[i], plan.torso_euler[i], plan.torso_trans[i])
                frame, points = presenter.render(plan.blendshapes[i].astype(np.float64), pose, i)
                landmarks[i] = points
                writer.write(frame)
                progress.advance(task)
            writer.close(audio=plan.speech.samples, sample_rate=plan.speech.sample_rate)
    finally:
        presenter.release()
    _atomic_write(out_dir / "audio.wav", lambda tmp: write_wav(tmp, plan.speech.samples, plan.speech.sample_rate))
    truth = _truth_arrays(config, plan, landmarks)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **truth)

    _atomic_write(truth_path, save)
    return out_dir
