"""Frame clock, fixed-step accumulator, and a master clock that can follow audio playback."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MOTION_HZ = 25.0


@dataclass
class Time:
    """Resource: the current frame's time, read by every system."""

    delta: float = 0.0
    """Seconds of master-clock time since the previous frame."""
    elapsed: float = 0.0
    """Master-clock seconds since the first frame."""
    frame: int = 0
    """Index of the current frame (0 for the first)."""


@dataclass
class FixedTime:
    """Resource: turns variable frame times into whole fixed steps (motion runs at 25 Hz at any FPS)."""

    step: float = 1.0 / MOTION_HZ
    """Seconds per fixed step."""
    max_steps_per_frame: int = 8
    """After a long stall, run at most this many steps and drop the rest instead of spiralling."""
    accumulator: float = -1.0
    """Seconds accumulated but not yet run; starts at one step, since the step beginning at t=0 is due at once."""
    steps_total: int = 0
    steps_this_frame: int = 0
    dropped: float = 0.0
    """Seconds discarded by the max_steps_per_frame cap, for diagnostics."""
    skipped_steps: int = 0
    """Steps discarded by the cap: the steps run after a stall are the latest ones, so step k run in all is step
    k + skipped_steps on the clock (systems that stamp their steps with a time stay on the clock)."""

    def __post_init__(self) -> None:
        if self.accumulator < 0:
            self.accumulator = self.step

    def accumulate(self, delta: float) -> int:
        """Add `delta` seconds; return how many fixed steps are now due."""
        self.accumulator += max(0.0, delta)
        # A tiny epsilon so 25 frames of 1/25 s give 25 steps despite float rounding.
        steps = int((self.accumulator + 1e-9) / self.step)
        if steps > self.max_steps_per_frame:
            self.dropped += (steps - self.max_steps_per_frame) * self.step
            self.skipped_steps += steps - self.max_steps_per_frame
            steps = self.max_steps_per_frame
            self.accumulator = self.step * 0.5
        else:
            self.accumulator = max(0.0, self.accumulator - steps * self.step)
        self.steps_this_frame = steps
        self.steps_total += steps
        return steps

    @property
    def elapsed(self) -> float:
        return self.steps_total * self.step

    @property
    def overstep(self) -> float:
        """Fraction of a step accumulated but not yet run, in [0, 1): for interpolating between steps."""
        return min(self.accumulator / self.step, 1.0)


class MasterClock:
    """Resource: where 'now' comes from. One of three sources:

    - wall: the monotonic system clock (window runner, no audio device);
    - stepped: exactly `1/fps` per frame, so headless runs are deterministic and A/V-exact;
    - slaved: an audio device's playback position, so video never drifts from sound.

    Time never runs backwards: a source that jumps back is held until it catches up.
    """

    def __init__(self, source: str = "wall", fps: float = 25.0) -> None:
        if source not in ("wall", "stepped"):
            raise ValueError(f"clock source must be 'wall' or 'stepped' (use slave_to for audio), got {source!r}")
        self.source = source
        self.fps = fps
        self._now = 0.0
        self._wall_origin: float | None = None
        self._slave: Callable[[], float] | None = None
        self._slave_name = ""
        self._slave_offset = 0.0
        self._started = False

    @property
    def now(self) -> float:
        return self._now

    @property
    def describe(self) -> str:
        return f"slaved to {self._slave_name}" if self._slave else self.source

    def slave_to(self, position: Callable[[], float], name: str = "audio") -> None:
        """Follow `position()` (seconds, e.g. samples played / rate) from the current time on."""
        self._slave = position
        self._slave_name = name
        self._slave_offset = self._now - position()

    def unslave(self) -> None:
        self._slave = None
        self._wall_origin = time.perf_counter() - self._now

    def tick(self) -> float:
        """Advance to the present and return it (called once per frame; the first call returns 0)."""
        if not self._started:
            self._started = True
            self._wall_origin = time.perf_counter()
            return self._now
        if self._slave is not None:
            try:
                candidate = self._slave() + self._slave_offset
            except Exception as error:  # a dead device must not stop the engine
                log.warning("clock source %s failed (%s); falling back to the wall clock", self._slave_name, error)
                self.unslave()
                return self.tick()
        elif self.source == "stepped":
            candidate = self._now + 1.0 / self.fps
        else:
            if self._wall_origin is None:
                self._wall_origin = time.perf_counter() - self._now
            candidate = time.perf_counter() - self._wall_origin
        self._now = max(self._now, candidate)
        return self._now
