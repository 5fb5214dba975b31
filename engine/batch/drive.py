"""`syncanim batch` and `syncanim batch-train` on the driver: what is already done is skipped, the rest goes to Ray,
each result is written (atomically) the moment it arrives."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.batch.cluster import Attempt, run_tasks, start_ray
from engine.batch.config import BatchOptions, BatchTrainOptions, ClusterOptions
from engine.batch.jobs import BatchError, RenderJob, load_jobs
from engine.batch.render import JobOutcome, Shipment, render_job
from engine.batch.shipping import pack_folder
from engine.batch.summary import BatchSummary, JobRecord
from engine.batch.train import TrainJob, TrainOutcome, extract_avatar, finished_avatar, train_job
from engine.io.atomic import write_bytes_atomic
from engine.scene import SCENES_DIR
from engine.scene.api import check_avatar_folder

BUNDLED_AVATAR = Path(__file__).resolve().parents[2] / "assets" / "avatar"
DEFAULT_SCENE = SCENES_DIR / "clip.py"


def run_batch(options: BatchOptions) -> BatchSummary:
    """Render every job of options.jobs not already in options.out; returns the batch's summary (printed)."""
    defaults: dict = {"size": options.size}
    if options.avatar is not None:
        defaults["avatar"] = str(options.avatar.expanduser().resolve())
    jobs = load_jobs(options.jobs, defaults)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(out, "render batch")
    todo = []
    for job in jobs:
        if (out / job.output).is_file():
            summary.add(JobRecord(job.name, "skipped"))
        else:
            todo.append(job)
    with stoppable(summary):
        if todo:
            render_remaining(todo, out, options.cluster, summary)
    summary.print()
    return summary


@contextmanager
def stoppable(summary: BatchSummary) -> Iterator[None]:
    """Ctrl-C or SIGTERM stops the batch: what has finished is kept (and recorded); the same command finishes the
    rest."""
    try:
        yield
    except KeyboardInterrupt:
        summary.stopped = True
        summary.save()


def render_remaining(jobs: list[RenderJob], out: Path, cluster: ClusterOptions, summary: BatchSummary) -> None:
    folders = {job.avatar or BUNDLED_AVATAR for job in jobs}
    for folder in folders:
        check_avatar_folder(folder)
    ray = start_ray(cluster.address, cluster.cpus)
    # Each avatar enters the object store once; a node fetches it once for all its jobs.
    avatars = {folder: ray.put(pack_folder(folder)) for folder in folders}
    task, cpus = remote_task(ray, render_job, cluster)

    def submit(job: RenderJob):
        return task.remote(job, avatars[job.avatar or BUNDLED_AVATAR], shipment(job), cpus)

    def keep(job: RenderJob, outcome: JobOutcome) -> None:
        write_bytes_atomic(out / job.output, outcome.video)

    run_recorded(jobs, submit, keep, cluster, summary, "rendering")


def remote_task(ray, fn, cluster: ClusterOptions):
    """`fn` as a Ray task with the resources and retries each job asks for, and the whole cores it may use."""
    task = ray.remote(fn).options(num_cpus=cluster.cpus_per_job, num_gpus=cluster.gpus_per_job,
                                  max_retries=cluster.retries)
    return task, max(1, int(cluster.cpus_per_job))


def run_recorded(jobs: list, submit, keep, cluster: ClusterOptions, summary: BatchSummary, desc: str) -> None:
    """run_tasks, each result kept by `keep(job, outcome)` and every job recorded in `summary` as it ends."""
    def done(attempt: Attempt, outcome) -> None:
        keep(attempt.item, outcome)
        summary.add(JobRecord(outcome.name, "done", attempt.tries, outcome.wall_s, outcome.media_s, outcome.node,
                              attempt.errors))

    def failed(attempt: Attempt) -> None:
        summary.add(JobRecord(attempt.item.name, "failed", attempt.tries, errors=attempt.errors))

    run_tasks(jobs, submit, retries=cluster.retries, parallel=cluster.parallel, on_done=done, on_failed=failed,
              desc=desc)


def shipment(job: RenderJob) -> Shipment:
    """The job's scene and speech as bytes (workers elsewhere cannot read the driver's files)."""
    scene = job.scene or DEFAULT_SCENE
    if job.audio is None:
        return Shipment(scene.name, scene.read_bytes())
    return Shipment(scene.name, scene.read_bytes(), job.audio.name, job.audio.read_bytes())


def run_batch_train(options: BatchTrainOptions) -> BatchSummary:
    """Make an avatar of every recording not already in options.out; returns the batch's summary (printed)."""
    names: dict[str, Path] = {}
    for recording in options.recordings:
        if not recording.exists():
            raise BatchError(f"{recording}: no such video or dataset folder")
        name = recording.stem if recording.is_file() else recording.resolve().name
        if name in names:
            raise BatchError(f"{recording} and {names[name]} would both make the avatar {name!r}; rename one")
        names[name] = recording
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(out, "training batch")
    todo = []
    for name, recording in names.items():
        if finished_avatar(out / name, options.report):
            summary.add(JobRecord(name, "skipped"))
        else:
            todo.append(TrainJob(name, recording.resolve(), options.preset, options.size, options.time_limit_min,
                                 options.seed, options.report))
    with stoppable(summary):
        if todo:
            train_remaining(todo, out, options.cluster, options.universal, summary)
    summary.print()
    return summary


def train_remaining(jobs: list[TrainJob], out: Path, cluster: ClusterOptions, universal: Path | None,
                    summary: BatchSummary) -> None:
    ray = start_ray(cluster.address, cluster.cpus)
    universal_ref = None if universal is None else ray.put(pack_folder(universal))
    task, cpus = remote_task(ray, train_job, cluster)

    def submit(job: TrainJob):
        return task.remote(job, ray.put(job.pack()), universal_ref, cpus)

    def keep(job: TrainJob, outcome: TrainOutcome) -> None:
        extract_avatar(outcome.avatar, out / job.name)

    run_recorded(jobs, submit, keep, cluster, summary, "training")
