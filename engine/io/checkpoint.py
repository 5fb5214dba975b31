"""Checkpoints: named tensors in a safetensors file with JSON metadata in its header; atomic writes, checked loads.

Every metadata value is stored JSON-encoded under its key (safetensors headers hold str -> str only), so nested
dicts, lists and numbers come back as they went in. `load_checkpoint(path, expect=...)` compares chosen metadata
entries with what the caller is about to use (feature extractor, blendshape names, ...) and refuses a mismatch
with a message naming the file, both values and how to fix it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.io.atomic import atomic_path

if TYPE_CHECKING:
    import torch

FORMAT = "syncanim-checkpoint"
FORMAT_VERSION = 1
_FORMAT_KEY = "__format__"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not one of ours."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was made for other settings than the caller's (features, blendshapes, ...)."""


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write `tensors` (name -> tensor of any shape) and JSON-able `metadata` to `path` atomically; return the path."""
    from safetensors.torch import save_file

    path = Path(path)
    if _FORMAT_KEY in metadata:
        raise ValueError(f"metadata key {_FORMAT_KEY!r} is reserved for the checkpoint format; rename it")
    header = {key: json.dumps(value, sort_keys=True) for key, value in metadata.items()}
    header[_FORMAT_KEY] = json.dumps({"format": FORMAT, "version": FORMAT_VERSION})
    # safetensors refuses views that share storage; a contiguous copy per tensor is cheap for our model sizes.
    tensors = {name: t.detach().contiguous().cpu().clone() for name, t in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        save_file(tensors, str(tmp), metadata=header)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Only the metadata of a checkpoint (no tensors are read)."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own types for truncated or foreign files
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({error}); re-create it") from error
    return _decode(header, path)


def load_checkpoint(path: str | os.PathLike, expect: dict[str, Any] | None = None,
                    fix: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of `path`. Each `expect` entry must equal the stored metadata value (nested dicts are
    compared key by key), else CheckpointMismatchError; `fix` replaces the generic advice in that message."""
    from safetensors.torch import load_file

    metadata = read_metadata(path)
    if expect:
        check_metadata(metadata, expect, Path(path), fix)
    try:
        tensors = load_file(str(path))
    except Exception as error:
        raise CheckpointError(f"{path}: cannot read its tensors ({error}); re-create the checkpoint") from error
    return tensors, metadata


def check_metadata(metadata: dict[str, Any], expect: dict[str, Any], path: Path, fix: str | None = None) -> None:
    """Raise CheckpointMismatchError listing every `expect` entry that differs from `metadata`."""
    found = []
    for key, wanted in expect.items():
        if key not in metadata:
            found.append((key, "<missing>", _plain(wanted)))
            continue
        found += _differences(metadata[key], _plain(wanted), key)
    if found:
        listed = "; ".join(f"{key}: checkpoint has {stored!r}, expected {wanted!r}" for key, stored, wanted in found)
        advice = fix or ("Use settings that match the checkpoint, or re-train it with the settings you run with.")
        raise CheckpointMismatchError(f"{path} does not match what it is loaded for ({listed}). {advice}")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's content, read in 1 MB chunks (weight files run to 90 MB): which weights a result
    came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train it first (e.g. `syncanim train`) or pass "
                              "the right path")
    return path


def _decode(header: dict[str, str], path: Path) -> dict[str, Any]:
    tag = header.get(_FORMAT_KEY)
    try:
        tag = json.loads(tag) if tag else {}
        if tag.get("format") != FORMAT:
            raise CheckpointError(f"{path} is a safetensors file but not a {FORMAT} (no format tag); re-create it "
                                  "with save_checkpoint")
        if tag.get("version") != FORMAT_VERSION:
            raise CheckpointError(f"{path} has checkpoint format version {tag.get('version')}, this engine reads "
                                  f"{FORMAT_VERSION}; re-train or convert it")
        return {key: json.loads(value) for key, value in header.items() if key != _FORMAT_KEY}
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: metadata is not JSON ({error}); re-create the checkpoint") from error


def _plain(value: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists, numpy scalars numbers)."""
    return json.loads(json.dumps(value, default=_to_builtin))


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _differences(stored: Any, wanted: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        found = []
        for key in sorted(set(stored) | set(wanted)):
            found += _differences(stored.get(key, "<missing>"), wanted.get(key, "<missing>"), f"{prefix}.{key}")
        return found
    return [] if stored == wanted else [(prefix, stored, wanted)]
