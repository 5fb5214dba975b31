"""masks.npz written and read frame by frame, so long videos never hold T x S x S masks in memory or on disk.

Each mask's frames go, deflated one by one, into a scratch file per mask; close() inflates them into a zip (the
layout np.savez_compressed makes, so Masks.load reads it) beside the target and moves it into place. Scratch
compressed frame by frame is what a killed run leaves: raw masks were 3 x T x S x S bytes (590 MB per 30 s at
512 px), deflated they are about 1% of that. Scratch files are named by the writing process (atomic_path), so the
next writer of the folder removes what a killed one left.
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.io.atomic import atomic_path

MASK_NAMES = ("person", "head", "torso", "hand")
SCRATCH_LEVEL = 1
"""zlib level of the scratch frames, as of the zip close() writes (why: there)."""
_LENGTH = struct.Struct("<I")


class MaskFileWriter:
    """Fill with write(k, ...) for k = 0, 1, ..., T-1 in order, then close(); abort() drops everything."""

    def __init__(self, path: Path, frames: int, size: int, scratch: Path) -> None:
        self.path = Path(path)
        self.frames, self.size = frames, size
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.parts = {name: atomic_path(self.scratch / f"{name}.deflated") for name in MASK_NAMES}
        self.files = {name: open(part, "wb") for name, part in self.parts.items()}
        self.rects = {"face_rect": np.zeros((frames, 4), np.int32), "lip_rect": np.zeros((frames, 4), np.int32)}
        self.written = 0

    def write(self, k: int, person: np.ndarray, head: np.ndarray, torso: np.ndarray, face_rect: np.ndarray,
              lip_rect: np.ndarray, hand: np.ndarray | None = None) -> None:
        """Frame k: masks uint8 [S, S] (255 inside; no hand: none), rects int (x0, y0, x1, y1)."""
        if k != self.written:
            raise ValueError(f"{self.path}: mask frame {k} written, expected frame {self.written} (frames go in order)")
        hand = np.zeros_like(person) if hand is None else hand
        for name, mask in zip(MASK_NAMES, (person, head, torso, hand)):
            # Each frame its own length-prefixed deflate block: close() inflates one frame at a time.
            block = zlib.compress(np.ascontiguousarray(mask, np.uint8).tobytes(), SCRATCH_LEVEL)
            self.files[name].write(_LENGTH.pack(len(block)) + block)
        self.rects["face_rect"][k], self.rects["lip_rect"][k] = face_rect, lip_rect
        self.written += 1

    def close(self) -> Path:
        if self.written != self.frames:
            raise ValueError(f"{self.path}: only {self.written} of its {self.frames} frames of masks were written")
        self._close_files()
        tmp = atomic_path(self.path)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": (self.frames, self.size, self.size)}
        # Level 1: binary masks shrink about as well as at the default level (1.1% vs 0.6%) in half the time.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as archive:
            for name in MASK_NAMES:
                with archive.open(f"{name}.npy", "w", force_zip64=True) as target:
                    np.lib.format.write_array_header_1_0(target, header)
                    for frame in _scratch_frames(self.parts[name]):
                        target.write(frame)
            for name, array in self.rects.items():
                buffer = io.BytesIO()
                np.save(buffer, array)
                archive.writestr(f"{name}.npy", buffer.getvalue())
        os.replace(tmp, self.path)
        self._remove_scratch()
        return self.path

    def abort(self) -> None:
        self._close_files()
        self._remove_scratch()
        atomic_path(self.path).unlink(missing_ok=True)

    def _close_files(self) -> None:
        for handle in self.files.values():
            handle.close()

    def _remove_scratch(self) -> None:
        for part in self.parts.values():
            part.unlink(missing_ok=True)
        try:
            self.scratch.rmdir()
        except OSError:
            pass  # another process is writing masks into the same folder


def _scratch_frames(path: Path) -> Iterator[bytes]:
    """The raw frames of one scratch file, in order."""
    with open(path, "rb") as handle:
        while prefix := handle.read(_LENGTH.size):
            (length,) = _LENGTH.unpack(prefix)
            yield zlib.decompress(handle.read(length))


def mask_frames(path: Path, name: str) -> Iterator[np.ndarray]:
    """The frames of mask `name` in masks.npz in order, uint8 [S, S] each, read as a stream (the whole [T, S, S]
    array never sits in memory)."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(handle)
        frame_bytes = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
        for _ in range(shape[0]):
            yield np.frombuffer(handle.read(frame_bytes), dtype).reshape(shape[1:])


def has_mask(path: Path, name: str) -> bool:
    """Whether masks.npz holds mask `name` (datasets made before the hands were masked have no 'hand')."""
    with zipfile.ZipFile(path) as archive:
        return f"{name}.npy" in archive.namelist()


def read_mask_frames(path: Path, name: str, indices: list[int]) -> dict[int, np.ndarray]:
    """Frames `indices` of mask `name` in masks.npz -> {k: uint8 [S, S]}, streamed (see mask_frames)."""
    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    for k, mask in enumerate(mask_frames(path, name)):
        if k in wanted:
            found[k] = mask
        if len(found) == len(wanted):
            break
    return found
