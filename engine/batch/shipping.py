"""Folders and files sent to Ray workers: packed once by the driver, put in Ray's object store once (each node then
fetches it once), unpacked once per node into a cache named by the content's digest."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

AVATAR_SUFFIXES = (".safetensors", ".json")
"""What a run reads from an avatar folder (its models and their metadata); logs, reports and images stay home."""


def cache_root() -> Path:
    """Where workers unpack what they are sent: $SYNCANIM_BATCH_CACHE, else ~/.cache/syncanim/batch."""
    return Path(os.environ.get("SYNCANIM_BATCH_CACHE", Path.home() / ".cache" / "syncanim" / "batch"))


@dataclass(frozen=True)
class Package:
    """A folder's files as one tar archive in memory, named by their content."""

    name: str
    """The folder's own name (for messages and the unpacked folder's name)."""
    digest: str
    data: bytes


def pack_folder(folder: Path, suffixes: tuple[str, ...] | None = AVATAR_SUFFIXES) -> Package:
    """The top-level files of `folder` whose suffix is in `suffixes` (None: every file, in subfolders too; hidden
    ones, such as a training's resumable state, never), in name order, as a Package."""
    folder = Path(folder)
    found = folder.iterdir() if suffixes is not None else folder.rglob("*")
    files = sorted(p for p in found if p.is_file() and (suffixes is None or p.suffix in suffixes)
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        kinds = "files" if suffixes is None else " or ".join(suffixes) + " files"
        raise FileNotFoundError(f"{folder}: no {kinds} to send (is it the folder you meant?)")
    buffer, digest = io.BytesIO(), hashlib.sha256()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            data, name = path.read_bytes(), path.relative_to(folder).as_posix()
            digest.update(name.encode() + b"\0" + data)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return Package(folder.name, digest.hexdigest()[:16], buffer.getvalue())


def pack_file(path: Path) -> Package:
    """One file as a Package (unpacked into a folder holding only it)."""
    data = Path(path).read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(Path(path).name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return Package(Path(path).stem, hashlib.sha256(data).hexdigest()[:16], buffer.getvalue())


def unpack(package: Package, root: Path | None = None) -> Path:
    """The package's folder on this node: unpacked on first use, reused after."""
    root = cache_root() if root is None else root
    target = root / f"{package.name}-{package.digest}"
    if not target.is_dir():
        unpack_to(package, target)
    return target


def unpack_to(package: Package, target: Path, replace: bool = False) -> Path:
    """Unpack into `target` through a temporary sibling renamed into place, so nobody sees half a folder: where
    `target` exists, it is kept (another worker got there first) or, with `replace`, swapped out whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    with tarfile.open(fileobj=io.BytesIO(package.data), mode="r") as tar:
        tar.extractall(partial, filter="data")
    old = None
    if replace and target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        target.rename(old / target.name)
    try:
        partial.rename(target)
    except OSError:  # another worker on this node got there first
        shutil.rmtree(partial, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target
