"""Options of `syncanim batch` and `syncanim batch-train` (light module: parsing needs neither Ray nor torch)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from engine.display.settings import Size


@dataclass(frozen=True)
class ClusterOptions:
    """Where the tasks run and what each may use."""

    address: str | None = None
    """A Ray cluster to join ('auto', or the head's HOST:6379); default: a Ray instance on this machine."""
    cpus: int | None = None
    """Cores of the local Ray instance (default: all of this machine's); ignored with --address."""
    cpus_per_job: float = 1.0
    """Cores each job is given (its torch and Taichi threads)."""
    gpus_per_job: float = 0.0
    """GPUs (or a fraction of one) each job is given; with one, the job renders on CUDA."""
    parallel: int | None = None
    """At most this many jobs at once (default: as many as the cluster's cores and GPUs allow)."""
    retries: int = 1
    """Times a failed job is tried again (a crashed worker as well); every error is kept in the summary."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpus_per_job) and self.cpus_per_job > 0):
            raise ValueError(f"--cpus-per-job {self.cpus_per_job}: give a number of cores > 0, like 1")
        if not (math.isfinite(self.gpus_per_job) and self.gpus_per_job >= 0):
            raise ValueError(f"--gpus-per-job {self.gpus_per_job}: give 0 (CPU) or a GPU share > 0, like 0.5")
        if self.retries < 0:
            raise ValueError(f"--retries {self.retries}: give 0 or more")
        for name in ("cpus", "parallel"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} {value}: give 1 or more, or leave it out")


@dataclass(frozen=True)
class BatchOptions:
    """Render many clips: each job of JOBS is one headless engine run that writes OUT_DIR/<name>.mp4. Runs on Ray
    (this machine by default, a cluster with --address); outputs already there are skipped, so a stopped batch
    finishes what was missing when started again."""

    jobs: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="JOBS")]
    """A .jsonl (one job object per line), .csv (a header row) or .yaml (a list) of jobs; fields: name, audio or
    text, voice, avatar, scene, framing, size, background, max_seconds (README: "Batch rendering")."""
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",), metavar="OUT_DIR")]
    """Where the videos and batch_summary.json go."""
    size: Size = (512, 512)
    """The size of jobs that give none (WxH)."""
    avatar: Path | None = None
    """The avatar of jobs that name none (default: the bundled assets/avatar)."""
    cluster: Annotated[ClusterOptions, tyro.conf.OmitArgPrefixes] = ClusterOptions()


@dataclass(frozen=True)
class BatchTrainOptions:
    """Make many avatars: each recording (a video, or a dataset folder from `syncanim preprocess`) is preprocessed,
    trained and evaluated as one Ray task into AVATARS_DIR/<name>/ (the avatar, with report/). Finished avatars are
    skipped, so a stopped batch finishes what was missing when started again."""

    recordings: Annotated[tuple[Path, ...], tyro.conf.Positional, tyro.conf.arg(metavar="RECORDING")]
    """Videos (mp4, mov, ...) or dataset folders; each avatar is named after its file or folder."""
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",), metavar="AVATARS_DIR")]
    """Where each avatar's folder goes, with batch_summary.json."""
    preset: Literal["test", "cpu", "gpu"] = "cpu"
    """`syncanim train --preset`: 'test' tiny models in seconds, 'cpu' within an hour on 2 cores, 'gpu' the paper's."""
    size: int = 256
    """`syncanim preprocess --size`: the side of the square crop the avatar learns, in pixels."""
    time_limit_min: float | None = None
    """`syncanim train --time-limit-min`: each training part stops after this many minutes."""
    seed: int = 0
    universal: Path | None = None
    """`syncanim train --universal`: the universal motion model to start from (default: the bundled one)."""
    report: bool = True
    """Write each avatar's eval report (report/report.md) after training (--no-report: skip it)."""
    cluster: Annotated[ClusterOptions, tyro.conf.OmitArgPrefixes] = ClusterOptions(cpus_per_job=2.0, retries=0)
