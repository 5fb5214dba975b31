"""Lip sync against a speaker's own mouth: where `syncanim eval --audio` is given a video of someone speaking (a
`syncanim synth` clip, a recording of a person), the avatar's rendered mouth is compared with the speaker's, frame
by frame. The speech envelope, the proxy otherwise, rewards a mouth that follows loudness: a speaker's own mouth
scores well below 1 against it, so the report shows the speaker's envelope figure beside the avatar's."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.data.preprocess.decode import inspect_source, resampled_frames
from engine.data.preprocess.track import track_frames
from engine.eval import metrics


def has_video(path: Path) -> bool:
    """The file holds a video track (a wav or flac does not; an unreadable file is left to the audio decoder)."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except av.error.FFmpegError:
        return False


def speaker_opening(path: Path, fps: float, frames: int, face_model: Path | None) -> np.ndarray:
    """The mouth opening [frames] of the face in `path`'s video, at `fps`, aligned with the file's sound as
    `decode_file` gives it (frame k plays with the sound at k / fps); NaN where no face was found or the video
    ended."""
    source = inspect_source(path)
    raw = track_frames(resampled_frames(source, fps), fps, face_model, video=False)
    points = raw.landmarks[..., :2].astype(np.float64) * np.array([source.width, source.height], np.float64)
    opening = metrics.mouth_opening(points)  # NaN where no face: its landmarks are NaN
    skip = int(round(source.audio_offset_s * fps))  # the sound starts this many frames into the video
    if skip < 0:
        opening = np.concatenate([np.full(-skip, np.nan), opening])
    aligned = opening[max(skip, 0):max(skip, 0) + frames]
    return np.concatenate([aligned, np.full(frames - len(aligned), np.nan)])


def speaker_figures(rendered: np.ndarray, speaker: np.ndarray, envelope: np.ndarray,
                    speech: np.ndarray) -> dict[str, Any]:
    """The audio-driven run's lip sync against the speaker's mouth, and the speaker's own figures; curves [T]."""
    found = np.isfinite(speaker)
    return {
        "lip_sync_corr": metrics.correlation(rendered, speaker),
        "lip_sync_reference": "MediaPipe mouth opening of the speaker in the --audio video",
        "speaker": {
            "faces_found": int(found.sum()),
            "lip_sync_corr_envelope": metrics.correlation(speaker, envelope),
            "mouth_open_speech": metrics.masked_mean(speaker, speech & found),
            "mouth_open_silence": metrics.masked_mean(speaker, ~speech & found),
        },
    }
