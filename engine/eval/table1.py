"""The paper's Table 1 for one eval report: its columns in its order, one row for the reconstruction and one for the
audio-driven run, and for every figure this machine could not measure, the reason."""
from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("PSNR", "↑", "psnr"), ("LPIPS", "↓", "lpips"), ("SSIM", "↑", "ssim"), ("FID", "↓", "fid"),
    ("LMD", "↓", "lmd"), ("AUE", "↓", None), ("SyncScore", "↑", None),
    ("Diversity", "↑", "pose_div_rendered"), ("EAR", "↓", "ear_error"),
)
"""(the paper's name, which way is better, the report key of a section holding it; None: never measured here)."""
GROUPS = (("Image Quality", ("PSNR", "LPIPS", "SSIM", "FID")), ("Lip Sync", ("LMD", "AUE", "SyncScore")),
          ("Head Motion", ("Diversity", "EAR")))
"""The paper's column groups."""
UNAVAILABLE_AS = {"AUE": "AUE", "SyncScore": "SyncScore (LSE-C, LSE-D)", "LPIPS": "LPIPS", "FID": "FID"}
"""The name each column has in a report's "unavailable" list."""
UNITS = ("PSNR in dB; LMD in pixels of the compared frames, mean over MediaPipe's 40 lip points; Diversity: per-axis "
         "std of MediaPipe's head pose (roll, pitch, yaw) on the rendered frames, degrees (the paper's comes from "
         "Hopenet features, so only trends compare); EAR: mean |eye aspect ratio of the render - of the truth frame|; "
         "SyncScore is the paper's LSE-C (SyncNet confidence).")


def _reason(name: str, key: str | None, section: dict[str, Any], report: dict[str, Any]) -> str:
    """Why `name` has no value in `section`."""
    unavailable = report.get("unavailable", {})
    if "unavailable" in section:
        return str(section["unavailable"])
    if key is None:
        return str(unavailable.get(UNAVAILABLE_AS[name], "not measured by this engine"))
    if section.get(f"{key}_unavailable"):
        return str(section[f"{key}_unavailable"])
    if name in UNAVAILABLE_AS and UNAVAILABLE_AS[name] in unavailable:
        return str(unavailable[UNAVAILABLE_AS[name]])
    return "not measured in this run"


def _label(run: str, section: dict[str, Any]) -> str:
    if run == "reconstruction":
        return "reconstruction (true pose and expression)"
    if "unavailable" in section:
        return "audio-driven (not run)"
    audio = section.get("audio") or "?"
    name = audio if audio == "validation audio" else Path(audio).name
    return f"audio-driven, {section.get('mode', '?')} ({name})"


def table1_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of Table 1: {"run", "label", "values": {column: number or None}, "missing": {column: reason}}."""
    rows = []
    for run in ("reconstruction", "audio_driven"):
        section = report.get(run) or {"unavailable": "not run"}
        values: dict[str, Any] = {}
        missing: dict[str, str] = {}
        for name, _, key in COLUMNS:
            value = None if key is None or "unavailable" in section else section.get(key)
            values[name] = value
            if value is None:
                missing[name] = _reason(name, key, section, report)
        rows.append({"run": run, "label": _label(run, section), "values": values, "missing": missing})
    return rows


def fid_note(report: dict[str, Any]) -> str | None:
    """How many frames each measured FID took (of how many in its run) and the cap; None when no FID was measured."""
    runs, caps = [], set()
    for run, label in (("reconstruction", "reconstruction"), ("audio_driven", "audio-driven")):
        section = report.get(run) or {}
        if section.get("fid") is None or not section.get("fid_frames"):
            continue
        used, total = section["fid_frames"], section.get("fid_run_frames") or section["fid_frames"]
        runs.append(f"{label}: {used[0]} of {total[0]} frames against {used[1]} of {total[1]}")
        caps.add(section.get("fid_max_frames"))
    if not runs:
        return None
    caps.discard(None)  # a report from before the cap
    taken = f"at most {max(caps)} frames a side, evenly spaced over each run" if caps else "the frames of each run"
    return (f"FID: Inception-v3 features of {taken} ({'; '.join(runs)}). FID grows as the sets shrink, so compare "
            "it only between runs of the same frame counts, not with papers' 50,000-image FIDs.")


def table1_markdown(rows: list[dict[str, Any]], fmt, extra: tuple[str, ...] = ()) -> list[str]:
    """Markdown lines: the table (n/a [k] where a figure is missing), then the units, `extra` notes (one paragraph
    each) and the numbered reasons."""
    notes: list[str] = []
    cells: list[list[str]] = []
    for row in rows:
        line = [row["label"]]
        for name, _, _ in COLUMNS:
            if name in row["missing"]:
                why = row["missing"][name]
                if why not in notes:
                    notes.append(why)
                line.append(f"n/a [{notes.index(why) + 1}]")
            else:
                line.append(fmt(row["values"][name], 4))
        cells.append(line)
    header = ["", *(f"{name} {arrow}" for name, arrow, _ in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in cells]
    groups = "; ".join(f"{group}: {', '.join(names)}" for group, names in GROUPS)
    lines += ["", f"The paper's groups: {groups}. {UNITS}", ""]
    lines += [line for note in extra for line in (note, "")]
    lines += [f"- [{k}] {why}" for k, why in enumerate(notes, 1)]
    return lines + ([""] if notes else [])
