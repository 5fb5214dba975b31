"""The `syncanim` command: one subcommand per pipeline step. Parsing only; the work lives in the packages."""
from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Annotated, Any

import tyro

from engine.batch.config import BatchOptions, BatchTrainOptions
from engine.data.preprocess.config import PreprocessOptions
from engine.data.synth.config import SynthOptions
from engine.eval.bench_config import BenchOptions
from engine.eval.eval_config import EvalOptions
from engine.eval.universal_config import UniversalEvalOptions
from engine.motion.config import UniversalOptions
from engine.run import DemoOptions, RunOptions, ScheduleOptions, control_flags_given
from engine.training import TrainOptions


def _run(options: RunOptions) -> int:
    from engine.run import run_scene

    result = run_scene(options)
    print(f"{result.frames} frames, {result.seconds:.2f} s: {result.exit_reason}")
    return 0


def _schedule(options: ScheduleOptions) -> int:
    from engine.run import print_schedule

    print_schedule(options)
    return 0


def _demo(options: DemoOptions) -> int:
    from engine.run import demo_run_options

    return _run(demo_run_options(options))


def _synth(config: SynthOptions) -> int:
    from engine.data.synth import run_synth

    print(f"wrote {run_synth(config)}")
    return 0


def _preprocess(config: PreprocessOptions) -> int:
    from engine.data.preprocess import run_preprocess, write_preview

    if config.preview is not None:
        for path in write_preview(config.preview):
            print(f"wrote {path}")
    else:
        print(f"wrote {run_preprocess(config)}")
    return 0


def _train(options: TrainOptions) -> int:
    from engine.nerf.tcnn import TcnnUnavailable
    from engine.training import run_training

    try:
        for path in run_training(options):
            print(f"wrote {path}")
    except TcnnUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _universal(options: UniversalOptions) -> int:
    from engine.motion.universal import run_universal

    print(f"wrote {run_universal(options)}")
    return 0


def _bench(config: BenchOptions) -> int:
    from engine.eval.bench import run_bench

    run_bench(config)
    return 0


def _eval(config: EvalOptions) -> int:
    from engine.eval.report import print_compare, run_eval

    if config.compare is not None:
        print_compare(*config.compare)
        return 0
    report = run_eval(config)
    print(f"wrote {config.out / 'report.json'} and {config.out / 'report.md'} ({report['seconds']['total']:.0f} s)")
    return 0


def _eval_universal(config: UniversalEvalOptions) -> int:
    from engine.eval.universal import measure_universal

    measure_universal(config.universal_dir, config.data, config.out, seed=config.seed, max_lag=config.max_lag)
    print(f"wrote {config.out / 'universal_report.json'}, universal_report.md and jaw.png")
    return 0


def _batch(options: BatchOptions) -> int:
    from engine.batch.drive import run_batch

    return run_batch(options).exit_status()


def _batch_train(options: BatchTrainOptions) -> int:
    from engine.batch.drive import run_batch_train

    return run_batch_train(options).exit_status()


# name -> (options type, handler). Handlers import their package lazily so `--help` stays fast.
COMMANDS: dict[str, tuple[type, Callable[[Any], int]]] = {
    "synth": (Annotated[SynthOptions, tyro.conf.PositionalRequiredArgs], _synth),
    "run": (RunOptions, _run),
    "demo": (DemoOptions, _demo),
    "schedule": (ScheduleOptions, _schedule),
    "preprocess": (PreprocessOptions, _preprocess),
    "train": (TrainOptions, _train),
    "universal": (UniversalOptions, _universal),
    "bench": (BenchOptions, _bench),
    "eval": (EvalOptions, _eval),
    "eval-universal": (UniversalEvalOptions, _eval_universal),
    "batch": (BatchOptions, _batch),
    "batch-train": (BatchTrainOptions, _batch_train),
}


def _plain(kind: Any) -> type:
    """The class inside an Annotated[...] command type."""
    return getattr(kind, "__origin__", kind)


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors about the user's input (files, settings, devices) whose message names the value and the fix: shown
    as one line with exit status 2, without a traceback. So are the file system's refusals (a missing file, a file
    where a folder should be, no permission): their message names the path."""
    from engine.audio.devices import AudioDeviceError
    from engine.audio.features import FeatureMismatchError
    from engine.audio.sources import AudioFormatError
    from engine.batch.jobs import BatchError
    from engine.data.dataset import DatasetError
    from engine.data.preprocess.config import PreprocessError
    from engine.data.synth.config import SynthError
    from engine.eval.report import EvalError
    from engine.eval.universal import UniversalEvalError
    from engine.io.checkpoint import CheckpointError
    from engine.scene.control_settings import ControlSettingsError
    from engine.scene.loader import SceneError

    return (AudioDeviceError, AudioFormatError, BatchError, CheckpointError, ControlSettingsError, DatasetError,
            EvalError, FeatureMismatchError, PreprocessError, SceneError, SynthError, UniversalEvalError,
            FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def _joined_lines(docstring: str) -> str:
    """A docstring's lines joined into paragraphs; blank lines and "- " items still break."""
    lines: list[str] = []
    for line in inspect.cleandoc(docstring).splitlines():
        if lines and lines[-1] and line and not line.startswith(("- ", "* ")):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line.rstrip())
    return "\n".join(lines)


def _help_reads_as_paragraphs() -> None:
    """tyro keeps an option docstring's line breaks wherever a line starts with other than a letter, and every
    continuation line starts indented, so --help broke each option's text at its source lines."""
    tyro._strings.remove_single_line_breaks = _joined_lines


def parse(argv: Sequence[str] | None = None) -> Any:
    """The options of the command in `argv` (default: the process's arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _help_reads_as_paragraphs()
    options = tyro.extras.subcommand_cli_from_dict(
        {name: spec[0] for name, spec in COMMANDS.items()},
        args=argv,
        description="SyncAnimation Engine: real-time audio-driven NeRF talking avatars.",
    )
    if isinstance(options, RunOptions):
        # Which control flags were typed (not only their values): a scene's own defaults never override them.
        options = replace(options, control_given=control_flags_given(argv))
    return options


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not sys.stderr.isatty():
        # A log file or a service's journal: a progress line every 30 s, not ten a second.
        os.environ.setdefault("TQDM_MININTERVAL", "30")
    options = parse(argv)
    handler = next(handler for kind, handler in COMMANDS.values() if isinstance(options, _plain(kind)))
    try:
        return handler(options)
    except _user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
