"""The avatar dataset on disk (what `preprocess` writes and `train` / `eval` read): layout, writers, a validating reader.

DATA_DIR/
  meta.json        Meta: fps, size, frame count, crop, camera intrinsics, validation split, smoothing, versions
  audio.wav        16 kHz mono speech, aligned with frame 0 at t = 0
  frames.mkv       the cropped frames, lossless (FFV1), size x size
  tracks.npz       Tracks: per-frame head pose, blendshapes, landmarks and a validity flag
  masks.npz        Masks: person / head / torso masks and face / lip rectangles
  background.png   the background plate (person removed, holes filled)
  features/<id>.npz   cached speech features for extractor <id> (with its parameters)
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.io.atomic import atomic_path, write_text_atomic

FORMAT = "syncanim-dataset"
VERSION = 1
MESH_POINTS = 478


class DatasetError(ValueError):
    """A dataset folder is missing a file or holds inconsistent data; the message names both and the fix."""


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    tmp = atomic_path(path)
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics of the dataset frames (pixels, at the dataset size)."""

    focal_px: float
    cx: float
    cy: float
    model: str = "pinhole"


@dataclass(frozen=True)
class Meta:
    fps: float
    size: int
    """Side of the square frames in pixels."""
    frames: int
    sample_rate: int
    camera: Camera
    crop: tuple[int, int, int, int]
    """(x, y, width, height) of the crop in the source video's pixels (one crop for the whole video)."""
    source_size: tuple[int, int]
    """(width, height) of the source video."""
    val_start: int
    """First validation frame: frames [val_start, frames) are held out (the last 10%)."""
    smoothing: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    source: str = ""
    silent: bool = False
    """The recording holds no speech (no audio track, nothing above -50 dBFS, or `--silent`): the head learns its
    mouth from the tracked face alone, and speech reaches it through the universal audio-to-expression model."""
    counts: dict = field(default_factory=dict)
    """What preprocess found: frames with a face, frames interpolated, train and validation frames."""
    source_info: dict = field(default_factory=dict)
    """The input as decoded: frame rate, codec, rotation, where the audio came from, whether the head stayed
    inside the crop at every pose."""
    checks: list = field(default_factory=list)
    """Findings of the dataset checks (engine/data/preprocess/checks.py): {"check", "value", "message"} each, for
    what in the video will limit the avatar; empty when nothing did."""

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict, path: Path) -> Meta:
        if data.get("format") != FORMAT:
            raise DatasetError(f"{path} is not a {FORMAT} meta.json (format={data.get('format')!r})")
        if data.get("version") != VERSION:
            raise DatasetError(f"{path} has dataset version {data.get('version')}, this engine reads {VERSION}; "
                               "re-run `syncanim preprocess` on the video")
        fields = {k: v for k, v in data.items() if k not in ("format", "version")}
        try:
            fields["camera"] = Camera(**fields["camera"])
            fields["crop"] = tuple(fields["crop"])
            fields["source_size"] = tuple(fields["source_size"])
            return cls(**fields)
        except (KeyError, TypeError) as error:
            raise DatasetError(f"{path}: malformed meta.json ({error}); re-run `syncanim preprocess`") from error


@dataclass
class Tracks:
    """Per-frame tracking. T frames, K blendshapes.

    euler_deg [T, 3]      head rotation (roll, pitch, yaw) in degrees, the paper's Eq. 1 order
    trans [T, 3]          head translation in the camera frame (cm)
    blendshapes [T, K]    ARKit blendshape scores in [0, 1], named by blendshape_names
    landmarks2d [T, 478, 2]  MediaPipe face landmarks in dataset pixels
    valid [T]             False where no face was found and the values were interpolated
    """

    euler_deg: np.ndarray
    trans: np.ndarray
    blendshapes: np.ndarray
    blendshape_names: list[str]
    landmarks2d: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        frames = len(self.euler_deg)
        expected = {
            "euler_deg": (frames, 3), "trans": (frames, 3), "blendshapes": (frames, len(self.blendshape_names)),
            "landmarks2d": (frames, MESH_POINTS, 2), "valid": (frames,),
        }
        for name, shape in expected.items():
            actual = np.shape(getattr(self, name))
            if actual != shape:
                raise DatasetError(f"tracks.{name} has shape {actual}, expected {shape}")
        for name in ("euler_deg", "trans", "blendshapes", "landmarks2d"):
            if not np.isfinite(getattr(self, name)).all():
                raise DatasetError(f"tracks.{name} contains NaN or inf; interpolate missing frames before saving")

    def __len__(self) -> int:
        return len(self.euler_deg)

    def blendshape(self, name: str) -> np.ndarray:
        """One blendshape curve [T] by its ARKit name."""
        try:
            return self.blendshapes[:, self.blendshape_names.index(name)]
        except ValueError:
            raise KeyError(f"no blendshape {name!r}; have {self.blendshape_names}") from None

    def save(self, path: Path) -> None:
        save_npz_atomic(
            path, euler_deg=self.euler_deg.astype(np.float32), trans=self.trans.astype(np.float32),
            blendshapes=self.blendshapes.astype(np.float32), blendshape_names=np.array(self.blendshape_names),
            landmarks2d=self.landmarks2d.astype(np.float32), valid=self.valid.astype(bool),
        )

    @classmethod
    def load(cls, path: Path) -> Tracks:
        with np.load(path) as data:
            missing = {"euler_deg", "trans", "blendshapes", "blendshape_names", "landmarks2d", "valid"} - set(data.files)
            if missing:
                raise DatasetError(f"{path} lacks {sorted(missing)}; re-run `syncanim preprocess`")
            return cls(
                data["euler_deg"], data["trans"], data["blendshapes"], [str(n) for n in data["blendshape_names"]],
                data["landmarks2d"], data["valid"],
            )


TORSO, HEAD, HAND = 1, 2, 3
"""Labels of `Dataset.regions` (0 is the background). HAND marks pixels a hand covers: the avatar draws no hands and
nothing tells what is behind them, so training learns nothing there."""


@dataclass
class Masks:
    """Segmentation per frame at the dataset size. T frames, S = size.

    person [T, S, S] uint8   255 where the person is (head, neck, torso, hair)
    head [T, S, S] uint8     255 on the head (face, hair, ears) above the jaw line
    torso [T, S, S] uint8    255 on the neck, shoulders and clothes
    face_rect [T, 4] int     (x0, y0, x1, y1) of the face, pixels
    lip_rect [T, 4] int      (x0, y0, x1, y1) of the lips, pixels
    hand [T, S, S] uint8     255 where a hand (or its forearm) covers the picture; None in datasets made before
    """

    person: np.ndarray
    head: np.ndarray
    torso: np.ndarray
    face_rect: np.ndarray
    lip_rect: np.ndarray
    hand: np.ndarray | None = None

    def save(self, path: Path) -> None:
        save_npz_atomic(path, **{k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def load(cls, path: Path) -> Masks:
        with np.load(path) as data:
            return cls(**{name: data[name] for name in ("person", "head", "torso", "face_rect", "lip_rect")},
                       hand=data["hand"] if "hand" in data.files else None)


class FrameWriter:
    """Lossless frames (FFV1 in Matroska) into a partial file, moved into place by close()."""

    def __init__(self, path: Path, fps: float) -> None:
        import av

        self.path = Path(path)
        self._tmp = atomic_path(self.path)
        self._container = av.open(str(self._tmp), "w")
        self._stream = self._container.add_stream("ffv1", rate=round(fps))
        self._stream.pix_fmt = "bgr0"
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """One RGB frame [S, S, 3] uint8."""
        import av

        if self.frames == 0:
            self._stream.height, self._stream.width = frame.shape[:2]
        packets = self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
        self._container.mux(packets)
        self.frames += 1

    def close(self) -> Path:
        self._container.mux(self._stream.encode())
        self._container.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._container.close()
        self._tmp.unlink(missing_ok=True)


def read_frames(path: Path, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Decode (index, RGB frame [S, S, 3] uint8) pairs in order; only `indices` if given."""
    import av

    wanted = None if indices is None else set(indices)
    last = max(wanted, default=-1) if wanted is not None else None
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if last is not None and index > last:
                break
            if wanted is None or index in wanted:
                yield index, frame.to_ndarray(format="rgb24")


class Dataset:
    """A preprocessed dataset folder, checked on open; arrays load when first asked for."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if self.root.is_file():
            raise DatasetError(f"{self.root} is a file, not a dataset folder; make a dataset from a video with "
                               f"`syncanim preprocess {self.root} -o DATA_DIR` and pass DATA_DIR")
        if not meta_path.is_file():
            raise DatasetError(f"{self.root} is not a dataset (no meta.json); make one with "
                               f"`syncanim preprocess VIDEO -o {self.root}`")
        self.meta = Meta.from_json(json.loads(meta_path.read_text()), meta_path)
        for name in ("audio.wav", "frames.mkv", "tracks.npz"):
            if not (self.root / name).is_file():
                raise DatasetError(f"{self.root / name} is missing; the preprocess run did not finish. "
                                   f"Re-run `syncanim preprocess VIDEO -o {self.root}` (it resumes)")
        self._tracks: Tracks | None = None

    @property
    def tracks(self) -> Tracks:
        if self._tracks is None:
            self._tracks = Tracks.load(self.root / "tracks.npz")
            if len(self._tracks) != self.meta.frames:
                raise DatasetError(f"{self.root}: tracks.npz has {len(self._tracks)} frames, meta.json says "
                                   f"{self.meta.frames}; re-run `syncanim preprocess`")
        return self._tracks

    @property
    def train_indices(self) -> np.ndarray:
        return np.arange(self.meta.val_start)

    @property
    def val_indices(self) -> np.ndarray:
        return np.arange(self.meta.val_start, self.meta.frames)

    def audio(self) -> np.ndarray:
        """Mono float32 [N] at meta.sample_rate."""
        from engine.audio.sources import decode_file

        return decode_file(self.root / "audio.wav", self.meta.sample_rate)

    def frames(self, indices: Iterable[int] | None = None) -> np.ndarray:
        """RGB frames [N, S, S, 3] uint8 (all frames, or `indices` in increasing order), decoded straight into one
        array (a long video's frames are most of a training run's memory)."""
        wanted = range(self.meta.frames) if indices is None else sorted(set(indices))
        size = self.meta.size
        out = np.empty((len(wanted), size, size, 3), np.uint8)
        count = 0
        for count, (_, frame) in enumerate(read_frames(self.root / "frames.mkv", wanted), start=1):
            out[count - 1] = frame
        if count != len(wanted):
            raise DatasetError(f"{self.root / 'frames.mkv'} ends before frame {wanted[count]}: {count} of the "
                               f"{len(wanted)} frames asked for were read (meta.json says {self.meta.frames}); re-run "
                               f"`syncanim preprocess VIDEO -o {self.root}`")
        return out

    def masks(self) -> Masks:
        """Every mask as stored (three [T, S, S] arrays); training reads the compact `regions` instead."""
        return Masks.load(self.root / "masks.npz")

    def regions(self) -> np.ndarray:
        """[T, S, S] uint8 per pixel: 0 background, TORSO, HEAD or HAND: the head and torso masks (which never overlap:
        the torso is the person less the head) and over them the hands, in one array, a third of the frames' memory,
        streamed from masks.npz."""
        from engine.data.preprocess.maskfile import has_mask, mask_frames

        size = self.meta.size
        out = np.zeros((self.meta.frames, size, size), np.uint8)
        hands = has_mask(self.root / "masks.npz", "hand")
        for name, label in [("torso", TORSO), ("head", HEAD)] + [("hand", HAND)] * hands:
            count = 0
            for count, mask in enumerate(mask_frames(self.root / "masks.npz", name), start=1):
                out[count - 1][mask > 127] = label
            if count != self.meta.frames:
                raise DatasetError(f"{self.root / 'masks.npz'}: {name} has {count} frames, meta.json says "
                                   f"{self.meta.frames}; re-run `syncanim preprocess VIDEO -o {self.root}`")
        return out

    def mask_rects(self) -> tuple[np.ndarray, np.ndarray]:
        """Face and lip rectangles [T, 4] int (x0, y0, x1, y1) from masks.npz (without reading the masks)."""
        with np.load(self.root / "masks.npz") as stored:
            return stored["face_rect"], stored["lip_rect"]

    def background(self) -> np.ndarray:
        """The background plate [S, S, 3] uint8."""
        import imageio.v3 as iio

        return iio.imread(self.root / "background.png")[..., :3]

    def features_path(self, extractor_id: str) -> Path:
        return self.root / "features" / f"{extractor_id}.npz"
