"""One training job on a worker: preprocess (a video), train, evaluate, in a folder kept on the node so a retry there
resumes the training; the finished avatar returns to the driver as one package."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from engine.batch.render import limit_threads
from engine.batch.shipping import Package, cache_root, pack_file, pack_folder, unpack, unpack_to
from engine.data.dataset import Dataset
from engine.data.preprocess import run_preprocess
from engine.data.preprocess.config import PreprocessOptions
from engine.motion.config import MOTION_FILE
from engine.nerf.train_config import NERF_FILE
from engine.training import TrainOptions, run_training


@dataclass(frozen=True)
class TrainJob:
    name: str
    recording: Path
    """A video, or a dataset folder from `syncanim preprocess` (on the driver)."""
    preset: str
    size: int
    time_limit_min: float | None
    seed: int
    report: bool

    def pack(self) -> Package:
        return pack_file(self.recording) if self.recording.is_file() else pack_folder(self.recording, None)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TrainOutcome:
    name: str
    avatar: Package
    """The avatar folder: models, logs, validation images and report/ (not the resumable training state)."""
    media_s: float
    """Seconds of recording learnt from."""
    wall_s: float
    node: str


def finished_avatar(folder: Path, report: bool) -> bool:
    """Whether `folder` holds a whole avatar (and its report, where one is asked for)."""
    files = [NERF_FILE, MOTION_FILE] + (["report/report.json"] if report else [])
    return all((folder / name).is_file() for name in files)


def extract_avatar(package: Package, target: Path) -> Path:
    """The returned avatar into `target` (a stale one there is replaced whole, never mixed with the new one)."""
    return unpack_to(package, target, replace=True)


def train_job(job: TrainJob, recording: Package, universal: Package | None, cpus: int) -> TrainOutcome:
    """Make the avatar of `job` on this node with `cpus` cores, from `universal` (None: the bundled universal motion
    model): preprocess (a video), train, evaluate."""
    start = time.perf_counter()
    limit_threads(cpus)
    work = cache_root() / "train" / f"{job.name}-{recording.digest}"
    data = dataset_folder(job, unpack(recording), work / "data")
    avatar = work / "avatar"
    run_training(TrainOptions(data, avatar, preset=job.preset, seed=job.seed, time_limit_min=job.time_limit_min,
                              universal=None if universal is None else unpack(universal), progress=False))
    if job.report:
        from engine.eval.eval_config import EvalOptions
        from engine.eval.report import run_eval

        run_eval(EvalOptions(avatar=avatar, data=data, out=avatar / "report", video=False, progress=False))
    meta = Dataset(data).meta
    return TrainOutcome(job.name, pack_folder(avatar, None), meta.frames / meta.fps, time.perf_counter() - start,
                        socket.gethostname())


def dataset_folder(job: TrainJob, unpacked: Path, target: Path) -> Path:
    """The job's dataset: the shipped one, or its video preprocessed into `target` (once: a retry reuses it)."""
    if (unpacked / "meta.json").is_file():
        return unpacked
    if (target / "meta.json").is_file():
        return target
    video = next(p for p in unpacked.iterdir() if p.is_file())
    return Path(run_preprocess(PreprocessOptions(video=video, out_dir=target, size=job.size, progress=False)))
