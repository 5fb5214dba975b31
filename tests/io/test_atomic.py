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
