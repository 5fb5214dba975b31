"""The driver side of a batch: Ray started (locally, or joined at an address), tasks submitted within the resources
each asks for, failures retried with every error kept, results written as they arrive, one progress bar."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from engine.batch.jobs import BatchError
from engine.run import sigterm_stops_the_run

log = logging.getLogger(__name__)
INSTALL = "pip install 'syncanim[cluster]'"
WAIT_S = 0.5
"""Longest wait for a result before the driver looks at its signals again."""


def require_ray():
    try:
        import ray
    except ImportError:
        raise BatchError(f"batch commands run on Ray, which is not installed here; install it with `{INSTALL}`") \
            from None
    return ray


def start_ray(address: str | None, cpus: int | None = None):
    """Ray, started on this machine (`cpus` cores, default all) or joined at `address` ('auto' or host:port)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError) as error:
        where = f"the cluster at {address}" if address else "a local Ray instance"
        raise BatchError(f"could not start or join {where}: {error}; on the head node run `ray start --head`, then "
                         "pass --address HEAD_IP:6379 (or leave --address out to run on this machine)") from None
    return ray


@dataclass
class Attempt:
    """One item's way through the batch."""

    item: Any
    tries: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = 0.0


def error_text(error: BaseException) -> str:
    """A Ray task's error as its cause's type and message (Ray wraps both in a RayTaskError with the remote
    traceback)."""
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {cause}".strip()


def run_tasks(items: Iterable[Any], submit: Callable[[Any], Any], *, retries: int, parallel: int | None,
              on_done: Callable[[Attempt, Any], None], on_failed: Callable[[Attempt], None], desc: str) -> None:
    """Submit `submit(item)` for each item (at most `parallel` at once: None, as Ray's resources allow), call
    `on_done(attempt, result)` as each returns, retry a failure up to `retries` times, then `on_failed(attempt)`."""
    ray = require_ray()
    waiting = [Attempt(item) for item in items]
    waiting.reverse()
    running: dict[Any, Attempt] = {}
    limit = parallel or len(waiting) or 1
    # After ray.init, whose own SIGTERM handler would abort the driver; waits are short so a signal is seen at once.
    with sigterm_stops_the_run(), tqdm(total=len(waiting), desc=desc, unit="job", dynamic_ncols=True) as bar:
        while waiting or running:
            while waiting and len(running) < limit:
                attempt = waiting.pop()
                attempt.tries += 1
                attempt.started = time.perf_counter()
                running[submit(attempt.item)] = attempt
            ready, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
            if not ready:
                continue
            attempt = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as error:  # the task raised, or its worker died
                attempt.errors.append(error_text(error))
                if attempt.tries <= retries:
                    log.warning("%s failed (try %d of %d), retrying: %s", attempt.item, attempt.tries, retries + 1,
                                attempt.errors[-1])
                    waiting.append(attempt)
                    continue
                on_failed(attempt)
            else:
                on_done(attempt, result)
            bar.update()
