#!/usr/bin/env python3
"""Throughput of `syncanim batch` on this machine: the same render jobs one at a time (on every core) and as Ray
schedules them (one core each), in one run, so the ratio compares like with like on a noisy machine.

    .venv/bin/python scripts/batch_throughput.py [--jobs 20] [--seconds 10] [--size 256x256] [-o out/throughput]

Each job is the bundled avatar speaking `--seconds` of the bundled clips (cut or repeated to that length). Writes
OUT/throughput.json and prints the table; README "Batch rendering" quotes a run.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def speech(seconds: float, out: Path) -> Path:
    """The bundled clips end to end, cut (or repeated) to `seconds`, as one wav."""
    from engine.audio.sources import load_clip
    from engine.io.video import write_wav

    clips = [load_clip(p) for p in sorted((ROOT / "assets" / "audio").glob("*.wav"))]
    rate = clips[0].sample_rate
    samples = np.concatenate([c.samples for c in clips])
    samples = np.resize(samples, round(seconds * rate))
    write_wav(out, samples, rate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="256x256")
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "out" / "throughput")
    args = parser.parse_args()

    from engine.batch.cluster import start_ray
    from engine.batch.config import BatchOptions, ClusterOptions
    from engine.batch.drive import run_batch
    from engine.batch.shipping import pack_folder
    from engine.display.settings import parse_size

    args.out.mkdir(parents=True, exist_ok=True)
    clip = speech(args.seconds, args.out / "speech.wav")
    jobs = args.out / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"name": f"job{i:02d}", "audio": clip.name, "size": args.size}) + "\n"
                            for i in range(args.jobs)))
    cores = len(os.sched_getaffinity(0))
    tick = time.perf_counter()
    ray = start_ray(None)
    costs = {"ray_start_s": time.perf_counter() - tick}
    tick = time.perf_counter()
    package = pack_folder(ROOT / "assets" / "avatar")
    ray.get(ray.put(package))
    costs.update(avatar_ship_s=time.perf_counter() - tick, avatar_mb=len(package.data) / 1e6)
    ways = {"one at a time": ClusterOptions(cpus_per_job=cores, parallel=1, retries=0),
            "Ray, one core each": ClusterOptions(cpus_per_job=1, retries=0)}
    results = {}
    for label, cluster in ways.items():
        out = args.out / label.split(",")[0].replace(" ", "_")
        tick = time.perf_counter()
        summary = run_batch(BatchOptions(jobs, out, size=parse_size(args.size), cluster=cluster))
        wall = time.perf_counter() - tick
        done = [r for r in summary.records.values() if r.status == "done"]
        results[label] = {"wall_s": wall, "done": len(done), "jobs_per_min": 60 * len(done) / wall,
                          "job_s_median": float(np.median([r.wall_s for r in done])) if done else None}
    first, second = results.values()
    report = {"machine": f"{cores} cores", "jobs": args.jobs, "seconds_each": args.seconds, "size": args.size,
              **costs, "runs": results, "ratio": second["jobs_per_min"] / first["jobs_per_min"]}
    (args.out / "throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    for label, r in results.items():
        print(f"{label:>20}: {r['done']} jobs in {r['wall_s']:.0f} s = {r['jobs_per_min']:.2f} jobs a minute "
              f"(median job {r['job_s_median']:.1f} s)")
    print(f"ratio {report['ratio']:.2f}; Ray start {costs['ray_start_s']:.1f} s, avatar "
          f"{costs['avatar_mb']:.1f} MB shipped in {costs['avatar_ship_s']:.2f} s; {args.out / 'throughput.json'}")


if __name__ == "__main__":
    main()
