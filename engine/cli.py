"""The `syncanim` command: one subcommand per pipeline step. Parsing only; the work lives in the packages."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import tyro

from engine.scene.run import DemoOptions, RunOptions


def _run(options: RunOptions) -> int:
    from engine.scene.run import run_scene

    result = run_scene(options)
    print(f"{result.frames} frames, {result.seconds:.2f} s: {result.exit_reason}")
    return 0


def _demo(options: DemoOptions) -> int:
    from engine.scene.run import demo_run_options

    return _run(demo_run_options(options))


# name -> (options type, handler). Handlers import their package lazily so `--help` stays fast.
COMMANDS: dict[str, tuple[type, Callable[[Any], int]]] = {
    "run": (RunOptions, _run),
    "demo": (DemoOptions, _demo),
}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = tyro.extras.subcommand_cli_from_dict(
        {name: spec[0] for name, spec in COMMANDS.items()},
        args=argv,
        description="SyncAnimation Engine: real-time audio-driven NeRF talking avatars.",
    )
    handler = next(spec[1] for spec in COMMANDS.values() if isinstance(options, spec[0]))
    from engine.scene.loader import SceneError

    try:
        return handler(options)
    except SceneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
