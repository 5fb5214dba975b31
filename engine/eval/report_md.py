"""report.md from a report.json dict: one small table per section, like the paper's tables, and the figures linked."""
from __future__ import annotations

from typing import Any


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: '-' for missing numbers, `digits` significant digits otherwise."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: dict[str, Any]) -> str:
    r, a = report["reconstruction"], report["audio_driven"]
    truth = a.get("truth") or {}
    m, s = report["machine"], report["seconds"]
    lines = [
        f"# Evaluation: {report['avatar']}",
        "",
        f"Data `{report['data']}`; {m['cpu']} ({m['cores']} cores), device {m['device']}; "
        f"eval took {s['total']:.0f} s ({report['created']}).",
        "",
        *[f"- Dataset check: {message}" for message in report.get("dataset_checks", [])],
        *([""] if report.get("dataset_checks") else []),
        f"## Reconstruction: {r['frames']} validation frames, true pose and expression, "
        f"{r['size']}x{r['size']} px",
        "",
    ]
    lines += table(["PSNR (dB) ↑", "SSIM ↑", "LMD (px) ↓", "LPIPS ↓", "faces found (truth / render)"],
                   [[r["psnr"], r["ssim"], r["lmd"], "unavailable", f"{r['faces_found_truth']} / "
                                                                     f"{r['faces_found_render']}"]])
    lines += [f"LMD: {r['lmd_unit']}, over {r['lmd_frames']} frames with a face on both sides.", ""]
    lines += [f"The renders' mouth opening follows the truth's with correlation {fmt(r.get('mouth_open_corr'))}, "
              f"their eye aspect ratio with {fmt(r.get('eye_open_corr'))}; closed eyes render "
              f"{fmt(r.get('blink_depth'), 2)} of the truth's depth (1: as deep, 0: open); the widest-open mouths "
              f"(the truth's top 10%) open {fmt(r.get('mouth_depth'), 2)} as wide as the truth's (1: as wide).", ""]
    if "unavailable" in a:
        lines += ["## Audio-driven", "", f"Not run: {a['unavailable']}.", ""]
    else:
        lines += _audio_driven(a, truth)
    lines += ["## Not measured", ""]
    lines += table(["metric", "why"], [[name, why] for name, why in report["unavailable"].items()])
    files = report.get("files", {})
    lines += ["## Figures", ""]
    for key, title in (("pose_plot", "head pose"), ("blink_plot", "blinks"), ("mouth_plot", "mouth vs speech"),
                       ("torso_plot", "torso shift")):
        if key in files:
            lines += [f"![{title}]({files[key]})", ""]
    if "video" in files:
        panels = "truth | reconstruction" + ("" if "audio_driven_video" in files else " | audio-driven")
        lines += [f"Side by side ({panels}): [{files['video']}]({files['video']})", ""]
    if "audio_driven_video" in files:
        lines += [f"Audio-driven on --audio: [{files['audio_driven_video']}]({files['audio_driven_video']})", ""]
    return "\n".join(lines)


def _audio_driven(a: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """The audio-driven section's lines."""
    lines: list[str] = []
    lines += [f"## Audio-driven: {a['mode']}, {a['audio']}, {a['seconds']:.1f} s "
              f"({100 * (a['speech_fraction'] or 0):.0f}% speech)", ""]
    lines += ["### Lip sync and mouth (inner-lip gap / face height)", ""]
    rows = [["audio-driven", a["lip_sync_corr"], a["lip_sync_corr_envelope"], a["mouth_open_speech"],
             a["mouth_open_silence"]]]
    if truth:
        rows.append(["truth", None, truth["lip_sync_corr_envelope"], truth["mouth_open_speech"],
                     truth["mouth_open_silence"]])
    lines += table(["", "lip-sync corr ↑", "corr with envelope", "mouth open, speech", "mouth open, silence"], rows)
    lines += [f"lip-sync corr: correlation of the rendered mouth opening with the {a['lip_sync_reference']}.", ""]
    if a.get("mouth_above_rest"):
        m = a["mouth_above_rest"]
        lines += table(["above the closed level", "rest level", "speech", "silence", "silence / speech ↓"],
                       [["audio-driven", m["rest"], m["speech"], m["silence"], m["silence_over_speech"]]])
        lines += ["Closed level: the 5th percentile of the clip's opening (lips that part slightly at rest still "
                  "close to it).", ""]
    lines += ["### Head motion (pose diversity: per-axis std of the Euler angles, degrees)", ""]
    rows = [["audio-driven", a["pose_div_speech"], a["pose_div_silence"], a["pose_div_ratio"]]]
    if truth:
        rows.append(["truth", truth["pose_div_speech"], truth["pose_div_silence"], truth["pose_div_ratio"]])
    lines += table(["", "speech", "silence", "speech / silence"], rows)
    lines += [f"Speech mask: {a['vad']}.", "", "### Blinks per minute", ""]
    rows = [["rendered frames, EAR (MediaPipe)", a["blinks_per_min"]],
            ["rendered frames, eyeBlink (MediaPipe)", a["blinks_per_min_rendered_blendshape"]],
            ["motion model's eyeBlink", a["blinks_per_min_motion"]]]
    if truth:
        rows.append(["truth frames, EAR (MediaPipe)", truth.get("blinks_per_min_ear")])
        rows.append(["truth eyeBlink (dataset tracks)", truth["blinks_per_min"]])
    lines += table(["measured on", "blinks / min"], rows)
    if a.get("blink_rule"):
        lines += [f"Blink counting: {a['blink_rule']}.", ""]
    if a.get("blendshape_mae"):
        lines += ["### Upper face: mean absolute error of the predicted blendshapes against the tracked truth", ""]
        names = list(a["blendshape_mae"])
        lines += table(["mean", *names], [[a["blendshape_mae_mean"], *(a["blendshape_mae"][n] for n in names)]])
    return lines
