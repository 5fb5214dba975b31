"""Motion test fixtures: a dataset folder made from the synthetic presenter's tracks (no frames rendered) and a
tiny model trained on it once per session."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import Camera, FrameWriter, Meta, Tracks
from engine.io.video import write_wav

# The synthetic rig has no browDown shapes; its truth for them is 0 (the brows never lower).
EXTRA_ZERO = ("browDownLeft", "browDownRight")


def write_synth_dataset(root: Path, seconds: float, seed: int, voice: str | None = None,
                        extra: tuple[str, ...] = EXTRA_ZERO) -> dict:
    """A dataset folder (meta.json, audio.wav, tracks.npz, a tiny frames.mkv) from the synthetic presenter's plan;
    returns the plan's truth (speaking mask, audio, tracks) for checks. `extra`: blendshapes the rig lacks, tracked
    as 0."""
    from engine.data.synth.config import SynthOptions
    from engine.data.synth.pipeline import plan_clip

    plan = plan_clip(SynthOptions(out_dir=root, seconds=seconds, seed=seed, voice=voice, progress=False))
    from engine.data.synth.rig import BLENDSHAPE_NAMES

    root.mkdir(parents=True, exist_ok=True)
    frames = plan.frames
    names = list(BLENDSHAPE_NAMES) + list(extra)
    blendshapes = np.concatenate([plan.blendshapes, np.zeros((frames, len(extra)), np.float32)], 1)
    Tracks(plan.head_euler, plan.head_trans, blendshapes, names, np.zeros((frames, 478, 2), np.float32),
           np.ones(frames, bool)).save(root / "tracks.npz")
    write_wav(root / "audio.wav", plan.speech.samples, plan.speech.sample_rate)
    writer = FrameWriter(root / "frames.mkv", 25)
    for _ in range(frames):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    writer.close()
    meta = Meta(fps=25.0, size=16, frames=frames, sample_rate=plan.speech.sample_rate, camera=Camera(20.0, 8.0, 8.0),
                crop=(0, 0, 16, 16), source_size=(16, 16), val_start=int(frames * 0.85), source="synth plan")
    (root / "meta.json").write_text(json.dumps(meta.to_json()))
    return {"audio": plan.speech.samples, "speaking": plan.speaking, "euler_deg": plan.head_euler,
            "blendshapes": blendshapes, "names": names, "voice": plan.speech.voice.name}


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("motion") / "data"
    return root, write_synth_dataset(root, seconds=24.0, seed=3)


@pytest.fixture(scope="session")
def trained_avatar(synth_data, tmp_path_factory) -> Path:
    """A 'test' preset model (tiny nets, a few dozen steps): trained enough to depend on audio, fast to make. Its own,
    not the shared tiny avatar: its speech with pauses and blinks calibrate what test_runtime checks, and test_train
    checks this training."""
    from engine.motion.config import motion_preset
    from engine.motion.train import train_motion

    avatar = tmp_path_factory.mktemp("avatar")
    train_motion(motion_preset("test", synth_data[0], avatar, progress=False, seed=0))
    return avatar
