"""report.md from a report.json dict: one small table per section, like the paper's tables, and the figures linked."""
from __future__ import annotations

from typing import Any

from engine.eval.table1 import fid_note, table1_markdown, table1_rows


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
    """report.md: the paper's Table 1 first, then one section per run, what was not measured, and the figures."""
    r, a = report["reconstruction"], report["audio_driven"]
    truth = a.get("truth") or {}
    m, s = report["machine"], report["seconds"]
    data = f"Data `{report['data']}`" if report.get("data") else "No --data (no truth frames)"
    lines = [
        f"# Evaluation: {report['avatar']}",
        "",
        f"{data}; {m['cpu']} ({m['cores']} cores), device {m['device']}; "
        f"eval took {s['total']:.0f} s ({report['created']}).",
        "",
        "## The paper's Table 1",
        "",
        *table1_markdown(report.get("table1") or table1_rows(report), fmt, tuple(filter(None, [fid_note(report)]))),
        *[f"- Dataset check: {message}" for message in report.get("dataset_checks", [])],
        *([""] if report.get("dataset_checks") else []),
    ]
    lines += _reconstruction(r)
    if "unavailable" in a:
        lines += ["## Audio-driven", "", f"Not run: {a['unavailable']}.", ""]
    else:
        lines += _audio_driven(a, truth)
    if report.get("cross_audio"):
        lines += _cross_audio(a, report["cross_audio"])
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


def _measured(section: dict[str, Any], key: str, digits: int = 3) -> str:
    """A cell that is either the number or 'n/a' (the reason is in Table 1's notes and report.json)."""
    value = section.get(key)
    return "n/a" if value is None else fmt(value, digits)


def _reconstruction(r: dict[str, Any]) -> list[str]:
    """The reconstruction section's lines (or why it was not run)."""
    if "unavailable" in r:
        return ["## Reconstruction", "", f"Not run: {r['unavailable']}.", ""]
    lines = [f"## Reconstruction: {r['frames']} validation frames, true pose and expression, "
             f"{r['size']}x{r['size']} px", ""]
    lines += table(["PSNR (dB) ↑", "SSIM ↑", "LMD (px) ↓", "LPIPS ↓", "LPIPS lips ↓", "FID ↓",
                    "faces found (truth / render)"],
                   [[r["psnr"], r["ssim"], r["lmd"], _measured(r, "lpips"), _measured(r, "lpips_lips"),
                     _measured(r, "fid"), f"{r['faces_found_truth']} / {r['faces_found_render']}"]])
    lines += [f"LMD: {r['lmd_unit']}, over {r['lmd_frames']} frames with a face on both sides.", ""]
    if r.get("frames_with_hands"):
        lines += [f"A hand is in {r['frames_with_hands']} of the {r['frames']} truth frames (MediaPipe's hand "
                  f"landmarker); the avatar draws no hands. PSNR on those frames {fmt(r['psnr_with_hands'])} dB, "
                  f"on the others {fmt(r.get('psnr_without_hands'))} dB.", ""]
    if r.get("psnr_without_exposure") is not None:
        lines += [f"Each render carries its frame's exposure, which training measured on the background the frame "
                  f"shows (here {fmt(r['exposure_min'], 3)} to {fmt(r['exposure_max'], 3)} of the plate's), as it "
                  f"carries its tracked pose; at the plate's exposure the PSNR is "
                  f"{fmt(r['psnr_without_exposure'])} dB.", ""]
    if r.get("lpips_lips") is not None:
        lines += [f"LPIPS lips: the lip box of the dataset's tracks (the lips' extent and a quarter more on each "
                  f"side) on both frames, resized to {r.get('lpips_lip_side')} px, over {r['lpips_lip_frames']} "
                  "frames.", ""]
    lines += [f"The renders' mouth opening follows the truth's with correlation {fmt(r.get('mouth_open_corr'))} "
              f"(MediaPipe's own noise allows about {fmt(r.get('mouth_open_corr_ceiling'))} on these frames: the truth "
              f"measured again half a pixel over; the truth's opening varies by std "
              f"{fmt(r.get('mouth_open_std_truth'), 4)} of the face height), their eye aspect ratio with "
              f"{fmt(r.get('eye_open_corr'))}; closed eyes render "
              f"{fmt(r.get('blink_depth'), 2)} of the truth's depth (1: as deep, 0: open); the widest-open mouths "
              f"(the truth's top 10%) open {fmt(r.get('mouth_depth'), 2)} as wide as the truth's (1: as wide).", ""]
    if r.get("pose_div_rendered") is not None:
        lines += [f"Head pose measured on the frames (MediaPipe): the renders' diversity "
                  f"{fmt(r['pose_div_rendered'])} deg, the truth frames' {fmt(r.get('pose_div_truth_frames'))} deg; "
                  f"they differ from the truth frames' pose by {fmt(r.get('pose_error_deg'))} deg on average.", ""]
    return lines


def _cross_audio(a: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The cross-audio table: the main run and each --cross-audio clip driving the avatar, one row each."""
    from pathlib import Path

    runs = ([] if "unavailable" in a else [a]) + rows
    lines = ["## Cross-audio: the avatar driven by each clip", ""]
    body = []
    for run in runs:
        name = run["audio"] if run["audio"] == "validation audio" else Path(run["audio"]).name
        speech = run.get("speech_fraction")
        body.append([name, run["seconds"], None if speech is None else round(100 * speech),
                     run.get("lip_sync_corr_envelope"), run.get("mouth_open_speech"), run.get("mouth_open_silence"),
                     run.get("blinks_per_min"), run.get("blinks_per_min_motion"), run.get("pose_div_rendered"),
                     run.get("pose_div_commanded")])
    lines += table(["driving clip", "s", "speech %", "lip-sync corr (envelope) ↑", "mouth open, speech",
                    "mouth open, silence", "blinks/min rendered", "blinks/min commanded", "pose div rendered (deg)",
                    "pose div commanded (deg)"], body)
    lines += ["Every clip drives the same avatar from the same seed; lip-sync corr: the rendered mouth opening "
              "against the clip's speech envelope (comparable across clips); rendered: MediaPipe on the frames, "
              "commanded: the motion model's output; pose diversity over all frames.", ""]
    return lines


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
    if speaker := a.get("speaker"):
        rows.append(["speaker (the --audio video)", None, speaker["lip_sync_corr_envelope"],
                     speaker["mouth_open_speech"], speaker["mouth_open_silence"]])
    lines += table(["", "lip-sync corr ↑", "corr with envelope", "mouth open, speech", "mouth open, silence"], rows)
    lines += [f"lip-sync corr: correlation of the rendered mouth opening with the {a['lip_sync_reference']}.", ""]
    if a.get("mouth_above_rest"):
        m = a["mouth_above_rest"]
        lines += table(["above the closed level", "rest level", "speech", "silence", "silence / speech ↓"],
                       [["audio-driven", m["rest"], m["speech"], m["silence"], m["silence_over_speech"]]])
        lines += ["Closed level: the 5th percentile of the clip's opening (lips that part slightly at rest still "
                  "close to it).", ""]
    lines += ["### Head motion (pose diversity: per-axis std of the Euler angles, degrees)", ""]
    motion = a.get("head_motion") or {}
    commanded = motion.get("commanded") or {}
    rows = [["commanded (motion model)", a["pose_div_speech"], a["pose_div_silence"], a["pose_div_ratio"],
             commanded.get("all")]]
    if motion:
        seen = motion["rendered"]
        rows.append(["rendered (MediaPipe on the frames)", seen["speech"], seen["silence"], seen["ratio"], seen["all"]])
    if truth:
        rows.append(["truth (dataset tracks)", truth["pose_div_speech"], truth["pose_div_silence"],
                     truth["pose_div_ratio"], truth.get("pose_div_all")])
    lines += table(["", "speech", "silence", "speech / silence", "all frames"], rows)
    if motion:
        lines += ["Commanded: the poses the motion model sent to the renderer; rendered: what MediaPipe's facial "
                  "transformation matrix finds on the rendered frames (as the paper measures the frames). A renderer "
                  "that ignored the pose would show commanded motion and none rendered.", ""]
    lines += [f"Speech mask: {a['vad']}.", "", "### Blinks per minute", ""]
    rows = [["commanded: the motion model's eyeBlink", a["blinks_per_min_motion"]],
            ["rendered: EAR of MediaPipe's landmarks on the frames", a["blinks_per_min"]],
            ["rendered: MediaPipe's eyeBlink on the frames", a["blinks_per_min_rendered_blendshape"]]]
    if truth:
        rows.append(["truth frames, EAR (MediaPipe)", truth.get("blinks_per_min_ear")])
        rows.append(["truth eyeBlink (dataset tracks)", truth["blinks_per_min"]])
    lines += table(["measured on", "blinks / min"], rows)
    if a.get("blink_rule"):
        lines += [f"Blink counting: {a['blink_rule']}.", ""]
    if a.get("blink_gain") is not None:
        lines += [f"Blinks are shown at {a['blink_gain']:.1f}x the person's own blink peak: the gain `syncanim train` "
                  "measured for this renderer to show them shut (AVATAR_DIR/val/blinks.png).", ""]
    if a.get("blendshape_mae"):
        lines += ["### Upper face: mean absolute error of the predicted blendshapes against the tracked truth", ""]
        names = list(a["blendshape_mae"])
        lines += table(["mean", *names], [[a["blendshape_mae_mean"], *(a["blendshape_mae"][n] for n in names)]])
    return lines
