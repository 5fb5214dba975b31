"""One render job on a worker: a headless engine run of the job's scene, its mp4 returned as bytes (so the driver
writes it, atomically, wherever the worker ran)."""
from __future__ import annotations

import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine.app import Diagnostics
from engine.audio.sources import load_clip
from engine.batch.jobs import RenderJob
from engine.batch.shipping import Package, unpack
from engine.data.synth.speech import VoiceSettings, check_voice, synthesize
from engine.display.headless import run_headless
from engine.display.settings import DisplaySettings
from engine.io.video import write_wav
from engine.run import RunOptions, assemble_scene

SPEECH_MARGIN_S = 60.0
"""A run stops this long after its speech would have ended (a scene that never exits fails instead of running on)."""


class JobFailed(RuntimeError):
    """The run finished but did not do what the job asked; the message says what happened."""


@dataclass(frozen=True)
class Shipment:
    """What the driver sends for one job beside its avatar: its scene and its speech."""

    scene_name: str
    scene_source: bytes
    audio_name: str | None = None
    audio: bytes | None = None


@dataclass(frozen=True)
class JobOutcome:
    """A finished run: its video and what it took."""

    name: str
    video: bytes
    frames: int
    media_s: float
    """Seconds of video made."""
    speech_s: float
    wall_s: float
    node: str


def render_job(job: RenderJob, avatar: Package, shipment: Shipment, cpus: int) -> JobOutcome:
    """Run `job` headless in this process, showing `avatar`, on `cpus` cores (or the GPU the scheduler gave it) and
    return its video."""
    start = time.perf_counter()
    limit_threads(cpus)
    work = Path(tempfile.mkdtemp(prefix="syncanim-job-"))
    try:
        speech = speech_file(job, shipment, work)
        speech_s = load_clip(speech).duration_s
        limit = job.max_seconds or speech_s + SPEECH_MARGIN_S
        scene = work / shipment.scene_name
        scene.write_bytes(shipment.scene_source)
        out = work / "take.mp4"
        options = RunOptions(scene=scene, headless=True, seconds=limit, audio=speech, avatar=unpack(avatar),
                             framing=job.framing, backdrop=job.background, watch=False,
                             display=DisplaySettings(size=job.size, out=out, title=job.name))
        app = assemble_scene(options)
        result = run_headless(app, seconds=limit)
        errors = [f"{source}: {error.message}" for source, error in app.world.resource(Diagnostics).errors.items()]
        if errors:
            raise JobFailed("; ".join(errors))
        if result.exit_reason in ("frame budget reached", "time limit reached") and job.max_seconds is None:
            raise JobFailed(f"the scene did not end within {limit:.0f} s of video (its speech is {speech_s:.1f} s); "
                            "give the job max_seconds to cut it there instead")
        if not out.is_file():
            raise JobFailed("the run wrote no video")
        return JobOutcome(job.name, out.read_bytes(), result.frames, result.seconds, speech_s,
                          time.perf_counter() - start, socket.gethostname())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def limit_threads(cpus: int) -> None:
    """Keep the run on the cores it was given: torch's and Taichi's pools (a GPU job renders on CUDA)."""
    import torch

    torch.set_num_threads(max(1, cpus))
    if not torch.cuda.is_available():
        from engine.nerf.kernels.runtime import init_taichi

        init_taichi("cpu", cpu_threads=max(1, cpus))


def speech_file(job: RenderJob, shipment: Shipment, work: Path) -> Path:
    """The job's speech as a file in `work`: the shipped audio, or its text spoken by the built-in voice."""
    if shipment.audio is not None:
        path = work / (shipment.audio_name or "speech.wav")
        path.write_bytes(shipment.audio)
        return path
    return speak_text(job.text or "", job.voice, work / "speech.wav")


def speak_text(text: str, voice: str, path: Path) -> Path:
    """`text` spoken by `voice` (espeak-ng, or an installed Piper voice) into a wav at `path`."""
    check_voice(voice)
    utterance = synthesize(text, VoiceSettings(voice, rate=165, pitch=50, pitch_range=50))
    write_wav(path, utterance.samples, utterance.sample_rate)
    return path
