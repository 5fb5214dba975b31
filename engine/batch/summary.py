"""A batch's record: one entry per job (done, skipped or failed with why), kept in OUT_DIR/batch_summary.json as the
jobs finish, and printed as a table at the end."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from engine.io.atomic import write_text_atomic

SUMMARY_FILE = "batch_summary.json"


@dataclass
class JobRecord:
    name: str
    status: str
    """'done', 'skipped' (its output was already there) or 'failed'."""
    tries: int = 0
    wall_s: float | None = None
    """Seconds from the job's (last) start on its worker to its result on the driver."""
    media_s: float | None = None
    """Seconds of video made (render jobs) or of recording learnt from (training jobs)."""
    node: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of media per second of work (above 1: faster than real time)."""
        return None if not self.wall_s or self.media_s is None else self.media_s / self.wall_s


class BatchSummary:
    """The records of a batch, saved (atomically) after every change, so a killed batch leaves a true record."""

    def __init__(self, out_dir: Path, kind: str) -> None:
        self.path = Path(out_dir) / SUMMARY_FILE
        self.kind = kind
        self.started = time.perf_counter()
        self.records: dict[str, JobRecord] = {}
        self.stopped = False
        """Stopped (Ctrl-C, SIGTERM) before every job had run."""

    def add(self, record: JobRecord) -> None:
        self.records[record.name] = record
        self.save()

    def save(self) -> None:
        records = [{**asdict(r), "realtime_factor": r.realtime_factor} for r in self.records.values()]
        data = {"kind": self.kind, "wall_s": time.perf_counter() - self.started, "stopped": self.stopped,
                "jobs": records}
        write_text_atomic(self.path, json.dumps(data, indent=1) + "\n")

    def exit_status(self) -> int:
        """The command's: 130 stopped, 1 a job failed, else 0."""
        return 130 if self.stopped else 1 if self.count("failed") else 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records.values())

    def print(self, console: Console | None = None) -> None:
        """The table of jobs, then the totals: jobs done per minute and media seconds per wall second."""
        console = console or Console()
        table = Table(title=f"{self.kind}: {self.path.parent}")
        for column in ("job", "status", "tries", "seconds", "media s", "x real time", "node", "why it failed"):
            table.add_column(column, overflow="fold")
        for r in self.records.values():
            rtf = r.realtime_factor
            table.add_row(r.name, r.status, str(r.tries), _num(r.wall_s), _num(r.media_s),
                          "" if rtf is None else f"{rtf:.2f}", r.node, r.errors[-1] if r.errors else "")
        console.print(table)
        wall = time.perf_counter() - self.started
        done = [r for r in self.records.values() if r.status == "done"]
        media = sum(r.media_s or 0.0 for r in done)
        console.print(f"{len(done)} done, {self.count('skipped')} skipped (already there), {self.count('failed')} "
                      f"failed in {wall:.1f} s: {60 * len(done) / max(wall, 1e-9):.2f} jobs a minute, "
                      f"{media / max(wall, 1e-9):.2f} s of media a second; record: {self.path}")
        if self.stopped:
            console.print("stopped before the end: what finished is kept; the same command makes the rest")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
