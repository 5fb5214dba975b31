"""TrainingLoop: the step loop every trainer shares (after nerfstudio's Trainer): progress bar, validation and
checkpoint cadence, the resumable state, the time budget counted across resumes and the JSONL log.

A trainer hands the loop a Stage, its own craft: what one step does, what a validation measures and logs, what
else its state must hold. The loop owns the rest. The state file, AVATAR_DIR/.<part>-train/state.safetensors,
holds the modules' weights (`<module>.<name>`), the stage's optimizer (`opt.<index>.<key>`, its param_groups in
the metadata), the random states (`rng.<generator>`, `rng.torch`, `rng.cuda`), the run's clock and the log's
history, so a killed run resumed from it ends where an uninterrupted one would.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from engine.io.atomic import write_text_atomic
from engine.io.checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from engine.training_run import RunClock, TrainingRun

log = logging.getLogger(__name__)


def start_run(settings: TrainingRun) -> None:
    """torch's CPU threads and seed as the settings ask: the first thing a run does, before any weights are drawn."""
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)


class Stage(Protocol):
    """A trainer's craft for one stretch of steps with one optimizer; TrainingLoop.run drives it."""

    name: str
    """The progress bar's label."""
    total: int
    """The step the stage ends at."""
    optimizer: torch.optim.Optimizer
    """Its moments go into the state."""
    validates_when_stopped: bool
    """Validate (and log) also at a step the time budget stopped, not only on the cadence and at the end."""

    def step(self, step: int) -> dict[str, str]:
        """Train step `step` (0-based); returns the progress bar's postfix."""

    def validate(self, done: int) -> dict:
        """Validate after `done` steps; returns the log record."""

    def state(self, stopped: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The stage's own tensors and metadata for the resumable state (`stopped`: its time is up)."""


@dataclass
class Saved:
    """A resumable state the loop read back (weights, random states, clock and history are restored already)."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        """Steps of its stage done."""
        return int(self.meta["step"])

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Give `optimizer` (built as the saved one was) the saved moments and param groups."""
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in self.tensors.items():
            if key.startswith("opt."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": self.meta["param_groups"]})


class TrainingLoop:
    """One training run of `part` ('motion', 'nerf') into `folder`: FOLDER/<part>_log.jsonl and
    FOLDER/.<part>-train/state.safetensors.

    `fingerprint`: metadata entries a state must carry, equal, to be resumed (the data and sizes it was made for);
    `modules` and `generators`: what the state keeps by name (names 'opt' and 'rng' are the loop's own).

    A trainer builds its models, then: saved = loop.resume(); for each stage (one for the motion syncers; body,
    head, lips for the NeRF): build it, give it saved.load_optimizer(...) where it resumes, loop.run(stage, first,
    deadline)."""

    def __init__(self, settings: TrainingRun, folder: Path, part: str, fingerprint: dict[str, Any],
                 modules: dict[str, torch.nn.Module], generators: dict[str, torch.Generator]) -> None:
        self.settings, self.fingerprint, self.modules, self.generators = settings, fingerprint, modules, generators
        self.folder, self.part = Path(folder), part
        self.state_path = self.folder / f".{part}-train" / "state.safetensors"
        self.log_path = self.folder / f"{part}_log.jsonl"
        self.clock = RunClock()
        """Seconds of training so far, counted across resumes."""
        self.history: list[dict] = []
        """The log's records so far."""
        self.end = settings.time_limit_s if settings.time_limit_s > 0 else math.inf
        """Where on the clock the time limit is spent."""

    def resume(self, restart_on_mismatch: bool = False) -> Saved | None:
        """Restore the state when the settings allow it and one exists: weights, random states, clock and history
        (the optimizer's moments go to the stage through Saved.load_optimizer). None: a fresh run. A state made
        for another fingerprint raises CheckpointMismatchError, or with `restart_on_mismatch` is left for a fresh
        run. The log is rewritten to the history: nothing a stopped run logged after its state stays in it."""
        saved = None
        if self.settings.resume and self.state_path.is_file():
            saved = self._load(restart_on_mismatch)
        if saved is not None:
            self._restore(saved)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.log_path, "".join(json.dumps(record) + "\n" for record in self.history))
        return saved

    def run(self, stage: Stage, first: int = 0, deadline: float = math.inf) -> int:
        """Steps first .. stage.total, validating every val_every steps and at the end, checkpointing every
        checkpoint_every steps, at the end and at a stop; the step that ends past `deadline` (on the run's clock)
        is the last. Returns the steps done."""
        settings, done = self.settings, first
        for module in self.modules.values():
            module.train()
        with tqdm(total=stage.total, initial=first, desc=stage.name, disable=not settings.progress,
                  dynamic_ncols=True) as bar:
            for step in range(first, stage.total):
                postfix = stage.step(step)
                bar.update(1)
                bar.set_postfix(postfix, refresh=False)
                done, stopped = step + 1, self.clock() > deadline
                last = done == stage.total
                if done % settings.val_every == 0 or last or (stopped and stage.validates_when_stopped):
                    self.log(stage.validate(done))
                if done % settings.checkpoint_every == 0 or last or stopped:
                    self.save(stage, done, stopped)
                if stopped:
                    log.warning("%s stopped at step %d of %d: its time is up (%.0f s of training)", stage.name, done,
                                stage.total, self.clock())
                    break
        return done

    def log(self, record: dict) -> None:
        """Append one record to the log and the history."""
        self.history.append(record)
        with open(self.log_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def save(self, stage: Stage, done: int, stopped: bool) -> None:
        """Write the resumable state after `done` steps of `stage` (atomically: a kill leaves the previous one)."""
        own_tensors, own_meta = stage.state(stopped)
        tensors = {f"{name}.{key}": value for name, module in self.modules.items()
                   for key, value in module.state_dict().items()}
        optimizer = stage.optimizer.state_dict()
        for index, state in optimizer["state"].items():
            tensors.update({f"opt.{index}.{key}": torch.as_tensor(value) for key, value in state.items()})
        tensors.update({f"rng.{name}": generator.get_state() for name, generator in self.generators.items()})
        # Noise, dropout and latents draw from torch's own generators; on a GPU from the device's.
        tensors["rng.torch"] = torch.get_rng_state()
        device = self._device()
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        meta = {**self.fingerprint, "step": done, "param_groups": optimizer["param_groups"], "clock": self.clock(),
                "history": self.history, **own_meta}
        save_checkpoint(self.state_path, {**tensors, **own_tensors}, meta)

    def _load(self, restart_on_mismatch: bool) -> Saved | None:
        try:
            return Saved(*load_checkpoint(self.state_path, expect=self.fingerprint, fix=(
                f"The saved training state was made with other data or sizes: delete {self.state_path.parent} or "
                "pass --no-resume.")))
        except CheckpointMismatchError:
            if not restart_on_mismatch:
                raise
            log.warning("%s was made with other data or sizes: %s training starts over", self.state_path, self.part)
            return None

    def _restore(self, saved: Saved) -> None:
        tensors, meta = saved.tensors, saved.meta
        for name, module in self.modules.items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        # Each random state is restored where the state has it (the oldest states kept only the batches').
        for name, generator in self.generators.items():
            if f"rng.{name}" in tensors:
                generator.set_state(tensors[f"rng.{name}"])
        if "rng.torch" in tensors:
            torch.set_rng_state(tensors["rng.torch"])
        device = self._device()
        if "rng.cuda" in tensors and device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        self.clock = RunClock(float(meta.get("clock", 0.0)))
        self.history = list(meta["history"]) if "history" in meta else self._logged()

    def _logged(self) -> list[dict]:
        """The log's records: the history of a state from before the state kept one."""
        if not self.log_path.is_file():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def _device(self) -> torch.device:
        module = next(iter(self.modules.values()))
        return next(module.parameters()).device
