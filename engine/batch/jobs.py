"""Render jobs: read from a JSONL, CSV or YAML list, each checked where it stands in its file before anything runs."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.display.settings import parse_size
from engine.scene.actions import backdrop_look, framing_zoom, scene_framing

SUFFIXES = (".jsonl", ".csv", ".yaml", ".yml")


class BatchError(ValueError):
    """A jobs file or job that cannot run; the message names the file, the line or job, the value and the fix."""


@dataclass(frozen=True)
class RenderJob:
    """One headless engine run that writes OUT_DIR/<name>.mp4."""

    name: str
    """The output's name (OUT_DIR/<name>.mp4); unique in the batch."""
    audio: Path | None = None
    """The speech to play (wav, flac, mp3)."""
    text: str | None = None
    """Text to speak with the built-in voice (espeak-ng, or `voice`) instead of `audio`."""
    voice: str = "en-us"
    """The voice that speaks `text`: an espeak-ng voice ('en-us', 'en-us+f3') or an installed Piper voice
    ('piper:joe')."""
    avatar: Path | None = None
    """The avatar folder (default: the bundled assets/avatar)."""
    scene: Path | None = None
    """The scene script (default: scenes/clip.py: the avatar speaks the clip, then the run ends)."""
    framing: str = "default"
    """'default', 'med', 'max' or a zoom in [0, 1]."""
    size: tuple[int, int] = (512, 512)
    """Width and height of the video in pixels."""
    background: str = "plate"
    """'plate' (the room the avatar was recorded in), a colour (#RRGGBB), 'chroma' or a picture file."""
    max_seconds: float | None = None
    """Stop the run after this much video (default: the speech's length plus a minute: a scene that never ends
    fails instead of running forever)."""

    @property
    def output(self) -> str:
        return f"{self.name}.mp4"


FIELDS = {f.name for f in fields(RenderJob)}


def load_jobs(path: Path, defaults: dict[str, Any] | None = None) -> list[RenderJob]:
    """The jobs listed in `path` (JSONL: one object per line; CSV: a header row; YAML: a list of mappings, or one
    under `jobs:`), relative paths taken from the file's folder, `defaults` filling fields a job leaves out."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise BatchError(f"{path}: a jobs file is .jsonl, .csv or .yaml; rename it or convert it")
    if not path.is_file():
        raise BatchError(f"{path}: no such jobs file")
    rows = _read_rows(path)
    if not rows:
        raise BatchError(f"{path}: lists no jobs; add one per line, like "
                         '{"audio": "speech.wav", "name": "hello"}')
    jobs = [make_job(row, where, path.parent, defaults or {}) for where, row in rows]
    seen: dict[str, str] = {}
    for (where, _), job in zip(rows, jobs, strict=True):
        if job.name in seen:
            raise BatchError(f"{path}:{where}: name {job.name!r} is also the name of {seen[job.name]}; give each job "
                             "its own name (it is the output's file name)")
        seen[job.name] = f"{path.name}:{where}"
    return jobs


def _read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where in the file, raw mapping) per job."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                rows.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise BatchError(f"{path}:{number}: not JSON ({error.msg} at column {error.colno}); each line is one "
                                 "job object") from None
        return rows
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        return [(f"line {reader.line_num}", {k: v for k, v in row.items() if k and v not in (None, "")})
                for row in reader]
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BatchError(f"{path}: not YAML ({error})") from None
    if isinstance(data, dict) and "jobs" in data:
        data = data["jobs"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise BatchError(f"{path}: a YAML jobs file is a list of jobs (or one under `jobs:`), not "
                         f"{type(data).__name__}")
    return [(f"job {number}", row) for number, row in enumerate(data, 1)]


def make_job(row: Any, where: str, base: Path, defaults: dict[str, Any]) -> RenderJob:
    """One checked RenderJob from a raw mapping; `where` names its place for the error messages."""
    if not isinstance(row, dict):
        raise BatchError(f"{where}: a job is an object of fields ({', '.join(sorted(FIELDS))}), not {row!r}")
    unknown = sorted(set(row) - FIELDS)
    if unknown:
        raise BatchError(f"{where}: unknown field(s) {unknown}; a job has {', '.join(sorted(FIELDS))}")
    values = {**defaults, **row}
    try:
        return _checked(values, base)
    except (TypeError, ValueError) as error:
        raise BatchError(f"{where}: {error}") from None


def _checked(values: dict[str, Any], base: Path) -> RenderJob:
    def file(key: str) -> Path | None:
        value = values.get(key)
        if value is None:
            return None
        resolved = (base / Path(str(value)).expanduser()).resolve()
        if not resolved.exists():
            raise ValueError(f"{key} {value!r}: {resolved} does not exist")
        return resolved

    audio, text = file("audio"), values.get("text")
    if (audio is None) == (text is None):
        raise ValueError("give the job either `audio` (a speech file) or `text` (to speak with the built-in voice)")
    if text is not None and not str(text).strip():
        raise ValueError("text is empty; give the words to speak")
    name = str(values.get("name") or (audio.stem if audio is not None else "")).strip()
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name {name!r}: give the job a plain file name (no folders), e.g. \"name\": \"welcome\"")
    size = values.get("size", (512, 512))
    size = parse_size(size) if isinstance(size, str) else tuple(int(v) for v in size)
    if len(size) != 2 or min(size) < 16 or max(size) > 4096:
        raise ValueError(f"size {values.get('size')!r}: WIDTHxHEIGHT between 16 and 4096, like 512x512")
    framing = str(values.get("framing", "default"))
    framing_zoom(scene_framing(framing))
    background = str(values.get("background", "plate"))
    if background not in ("plate", "chroma") and not background.startswith("#"):
        background = str(file("background"))
    backdrop_look(background)
    limit = values.get("max_seconds")
    if limit is not None and not (math.isfinite(float(limit)) and float(limit) > 0):
        raise ValueError(f"max_seconds {limit!r}: a number of seconds > 0")
    return RenderJob(name=name, audio=audio, text=None if text is None else str(text), voice=str(values.get(
        "voice", "en-us")), avatar=file("avatar"), scene=file("scene"), framing=framing, size=size,
        background=background, max_seconds=None if limit is None else float(limit))
