"""The training loop both trainers share: cadence, resume as if never stopped, the time budget across resumes,
fingerprints, and a state write that dies leaves the previous state."""
import json

import pytest
import torch

import engine.training_run
from engine.io.checkpoint import CheckpointMismatchError, read_metadata
from engine.training_loop import TrainingLoop
from engine.training_run import TrainingRun


class Killed(Exception):
    """Stands for SIGKILL inside a step."""


class FakeTime:
    """time.monotonic for RunClock: it moves only when a step says so, so budgets are tested without timing."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Toy:
    """A linear fit drawing its batches from its own generator and its noise from torch's: every random state the
    loop keeps changes the result."""

    name = "toy"
    validates_when_stopped = False

    def __init__(self, model: torch.nn.Module, generator: torch.Generator, total: int, kill_at: int | None = None,
                 time: FakeTime | None = None) -> None:
        self.model, self.generator, self.total, self.kill_at, self.time = model, generator, total, kill_at, time
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
        self.saved_at: list[int] = []
        self.steps = 0
        """Steps this stage took since it was restored (its own state, kept through the loop)."""

    def step(self, step: int) -> dict[str, str]:
        if step == self.kill_at:
            raise Killed
        if self.time is not None:
            self.time.now += 1.0
        x = torch.randn(8, 3, generator=self.generator)
        loss = ((self.model(x) - x.sum(1, keepdim=True) - 0.1 * torch.randn(8, 1)) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return {"loss": f"{loss.item():.3f}"}

    def validate(self, done: int) -> dict:
        return {"step": done, "weight": self.model.weight.sum().item(), "steps": self.steps}

    def state(self, stopped: bool) -> tuple[dict, dict]:
        self.saved_at.append(self.steps)
        return {"toy.marker": torch.tensor([float(self.steps)])}, {"stopped": stopped, "steps": self.steps}


def start(folder, seed=0, total=10, fingerprint=None, kill_at=None, time=None, **settings):
    """A loop over a fresh model (its init drawn from `seed`, so only a restored state makes two runs agree)."""
    torch.manual_seed(seed)
    model, generator = torch.nn.Linear(3, 1), torch.Generator().manual_seed(0)
    run = TrainingRun(val_every=3, checkpoint_every=4, progress=False, **settings)
    loop = TrainingLoop(run, folder, "toy", fingerprint or {"fingerprint": {"size": 3}}, {"model": model},
                        {"batches": generator})
    return loop, Toy(model, generator, total, kill_at, time)


def logged(folder):
    return [json.loads(line) for line in (folder / "toy_log.jsonl").read_text().splitlines()]


def test_validation_and_checkpoints_follow_the_cadence_and_the_end(tmp_path):
    loop, toy = start(tmp_path)
    assert loop.resume() is None
    assert loop.run(toy) == 10
    assert [r["step"] for r in logged(tmp_path)] == [3, 6, 9, 10]
    assert toy.saved_at == [4, 8, 10]
    meta = read_metadata(tmp_path / ".toy-train" / "state.safetensors")
    assert meta["step"] == 10 and meta["history"] == logged(tmp_path) and meta["fingerprint"] == {"size": 3}


def test_a_killed_run_resumes_to_what_an_uninterrupted_run_makes(tmp_path):
    through, killed = tmp_path / "through", tmp_path / "killed"
    loop, toy = start(through)
    loop.resume()
    loop.run(toy)
    loop_k, toy_k = start(killed, kill_at=7)
    loop_k.resume()
    with pytest.raises(Killed):
        loop_k.run(toy_k)
    assert [r["step"] for r in logged(killed)] == [3, 6]  # the record at 6 came after the state of step 4
    loop_r, toy_r = start(killed, seed=1)  # other weights and torch's noise elsewhere: only the state can agree
    saved = loop_r.resume()
    assert saved.step == 4 and saved.tensors["toy.marker"].item() == 4 and saved.meta["steps"] == 4
    assert [r["step"] for r in logged(killed)] == [3]  # what the killed run logged after its state is gone
    saved.load_optimizer(toy_r.optimizer)
    toy_r.steps = saved.meta["steps"]
    assert loop_r.run(toy_r, saved.step) == 10
    assert torch.equal(toy_r.model.weight, toy.model.weight) and torch.equal(toy_r.model.bias, toy.model.bias)
    assert logged(killed) == logged(through)


def test_the_time_budget_counts_training_across_resumes_not_the_time_between(tmp_path, monkeypatch):
    time = FakeTime()
    monkeypatch.setattr(engine.training_run.time, "monotonic", time)
    loop, toy = start(tmp_path, total=20, time=time, time_limit_s=5.5)
    loop.resume()
    assert loop.run(toy, 0, loop.end) == 6  # the step that passed the limit is the last
    assert toy.saved_at[-1] == 6 and read_metadata(loop.state_path)["stopped"]
    time.now += 100.0  # the run lay dead: that does not count
    loop, toy = start(tmp_path, total=20, time=time, time_limit_s=5.5)
    assert loop.resume().step == 6 and loop.clock() == 6.0 and loop.clock() > loop.end  # spent under that limit
    loop, toy = start(tmp_path, total=20, time=time, time_limit_s=8.5)
    saved = loop.resume()
    saved.load_optimizer(toy.optimizer)
    assert loop.run(toy, saved.step, loop.end) == 9  # more time given: on until the larger limit
    assert start(tmp_path)[0].end == float("inf")  # no limit


def test_a_state_made_for_other_data_is_refused_or_left_for_a_fresh_run(tmp_path):
    loop, toy = start(tmp_path)
    loop.resume()
    loop.run(toy)
    other = {"fingerprint": {"size": 4}}
    with pytest.raises(CheckpointMismatchError, match=r"state.safetensors.*fingerprint.size.*delete"):
        start(tmp_path, fingerprint=other)[0].resume()
    assert len(logged(tmp_path)) == 4  # refused before anything was touched
    loop, toy = start(tmp_path, fingerprint=other)
    assert loop.resume(restart_on_mismatch=True) is None and loop.history == [] and logged(tmp_path) == []
    assert start(tmp_path, resume=False)[0].resume() is None


def test_a_state_whose_write_dies_leaves_the_previous_one(tmp_path, monkeypatch):
    import safetensors.torch

    loop, toy = start(tmp_path)
    loop.resume()
    real = safetensors.torch.save_file

    def dies_on_the_second(tensors, path, metadata=None):
        if toy.saved_at == [4, 8]:
            with open(path, "wb") as handle:
                handle.write(b"half a state")
            raise Killed
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", dies_on_the_second)
    with pytest.raises(Killed):
        loop.run(toy)
    assert read_metadata(loop.state_path)["step"] == 4
    assert [p.name for p in loop.state_path.parent.iterdir()] == ["state.safetensors"]
