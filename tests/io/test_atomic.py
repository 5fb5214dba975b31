"""Atomic writes: the temporary name is hidden beside the target, stable within a process and its own to each process,
so two processes writing one folder never fill each other's files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.io.atomic import atomic_path, write_text_atomic


def test_the_temporary_name_is_hidden_stable_and_keeps_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    tmp = atomic_path(target)
    assert tmp.parent == tmp_path and tmp.name.startswith(".report.json.") and tmp.suffix == ".json"
    assert atomic_path(target) == tmp


def test_two_processes_fill_different_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "curves.npz"
    code = f"from pathlib import Path; from engine.io.atomic import atomic_path; print(atomic_path(Path({str(target)!r})))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    assert Path(other) != atomic_path(target) and Path(other).parent == tmp_path


def test_write_text_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "a.md", "one")
    write_text_atomic(tmp_path / "a.md", "two")
    assert [p.name for p in tmp_path.iterdir()] == ["a.md"] and (tmp_path / "a.md").read_text() == "two"


def test_what_killed_writers_left_is_removed_and_live_writers_files_are_not(tmp_path: Path) -> None:
    import os

    target = tmp_path / "nerf.safetensors"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a process that has ended
    stale = tmp_path / f".nerf.safetensors.{gone}.partial.safetensors"
    live = tmp_path / f".nerf.safetensors.{os.getppid()}.partial.safetensors"
    other = tmp_path / f".report.json.{gone}.partial.json"  # another file's: left for its own writer
    for path in (stale, live, other):
        path.write_bytes(b"half a file")
    tmp = atomic_path(target)
    assert not stale.exists() and live.exists() and other.exists() and tmp.parent == tmp_path
