"""Speech feature extractors behind one interface, and the FeatureSpec that models store and check at load.

Every extractor produces 50 feature frames per second from 16 kHz audio: frame j is computed from samples
[j*HOP, j*HOP + WIN) (HOP = 320, WIN = 400: HuBERT's own framing, which the mel extractor copies), so video frame k at
25 fps owns frames 2k and 2k+1, the pairing the paper's data uses (HuBERT [T_video, 2, 1024]).

An extractor computes `block_frames` frames per call from a window of audio that also holds `context_frames` frames
before them and `right_frames` after (HuBERT and Whisper attend to all of it; mel needs none). Calls are aligned to
multiples of `block_frames` from sample 0, with silence before the start, so streaming and offline extraction run
exactly the same calls (engine/audio/streaming.py).
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from engine.audio.settings import AudioSettings, GateParams

SAMPLE_RATE = 16000
HOP = 320
WIN = 400
FEATURE_HZ = SAMPLE_RATE // HOP

# Keys that describe where a model came from or runs, not what it computes: never part of the check.
_INFORMATIONAL = {"model", "device"}


class FeatureMismatchError(ValueError):
    """A model was trained on different speech features than the engine computes."""


class FeatureExtractor(ABC):
    """The interface. Subclasses set `id`, `dim` and the three frame counts, and implement `compute` and `params`."""

    id: str = ""
    dim: int = 0
    context_frames: int = 0
    block_frames: int = 2
    right_frames: int = 0

    @property
    def window_samples(self) -> int:
        """Samples per call: (context + block + right - 1) * HOP + WIN."""
        return (self.context_frames + self.block_frames + self.right_frames - 1) * HOP + WIN

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-able parameters that change the features (stored in every model trained on them)."""

    @abstractmethod
    def compute(self, windows: np.ndarray) -> np.ndarray:
        """windows [B, window_samples] float32 -> features [B, block_frames, dim] float32 (the block's frames)."""


@dataclass(frozen=True)
class FeatureSpec:
    """Resource: what the engine's feature windows are; models store `to_dict()` and call `check` at load."""

    extractor: str
    params: dict
    dim: int
    window_frames: int
    lookahead_frames: int
    sample_rate: int = SAMPLE_RATE
    hop: int = HOP
    win: int = WIN
    video_fps: float = 25.0
    gate: dict | None = None
    """The noise gate's parameters the samples passed before the extractor (None: no gate)."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(**data)

    def gate_params(self) -> GateParams:
        """The noise gate these features were computed through (a disabled one when the spec names none)."""
        if self.gate is None:
            return GateParams(enabled=False)
        return GateParams(**{key: tuple(v) if isinstance(v, list) else v for key, v in self.gate.items()})

    def check(self, stored: dict[str, Any], where: str) -> None:
        """Refuse a model (file `where`) whose stored spec differs from this one in anything but informational keys."""
        differences = _differences(stored, self.to_dict())
        if differences:
            listed = "; ".join(f"{key}: model {a!r}, engine {b!r}" for key, a, b in differences)
            raise FeatureMismatchError(
                f"{where} was trained on other speech features than the engine computes ({listed}). "
                f"Run the engine with the audio settings the model was trained with (extractor "
                f"{stored.get('extractor')!r}, {stored.get('window_frames')} frames, look-ahead "
                f"{stored.get('lookahead_frames')}), or retrain it on these features."
            )


def _differences(stored: Any, current: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(stored, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(stored) | set(current)):
            if key in _INFORMATIONAL:
                continue
            found += _differences(stored.get(key), current.get(key), f"{prefix}{key}.")
        return found
    return [] if stored == current else [(prefix.rstrip("."), stored, current)]


def make_extractor(settings: AudioSettings) -> FeatureExtractor:
    """The extractor `settings.extractor` names (Whisper and HuBERT load weights here: call from a startup system)."""
    if settings.sample_rate != SAMPLE_RATE:
        raise ValueError(f"speech features need AudioSettings.sample_rate={SAMPLE_RATE}, got {settings.sample_rate}")
    if settings.extractor == "mel":
        from engine.audio.features.mel import MelExtractor

        return MelExtractor(settings.mel)
    if settings.extractor == "whisper":
        from engine.audio.features.whisper import WhisperExtractor

        return WhisperExtractor(settings.whisper)
    if settings.extractor == "hubert":
        from engine.audio.features.hubert import HubertExtractor

        return HubertExtractor(settings.hubert)
    raise ValueError(f"unknown feature extractor {settings.extractor!r}; AudioSettings.extractor is 'mel', 'whisper' "
                     "or 'hubert'")


def settings_for(spec: FeatureSpec, base: AudioSettings | None = None) -> AudioSettings:
    """`base` (default AudioSettings()) changed to compute exactly the features `spec` describes: what a model was
    trained on. Extractor parameters are taken by name from the stored ones; the rest (device, threads) stay."""
    base = base or AudioSettings()
    if spec.extractor not in ("mel", "whisper", "hubert"):
        raise FeatureMismatchError(f"unknown speech feature extractor {spec.extractor!r} in a stored model; "
                                   "retrain it with this engine")
    current = getattr(base, spec.extractor)
    stored = {f.name: spec.params[f.name] for f in fields(current) if f.name in spec.params}
    return replace(base, extractor=spec.extractor, window_frames=spec.window_frames,
                   lookahead_frames=spec.lookahead_frames, video_fps=spec.video_fps, gate=spec.gate_params(),
                   **{spec.extractor: replace(current, **stored)})


def feature_spec(settings: AudioSettings, extractor: FeatureExtractor) -> FeatureSpec:
    return FeatureSpec(
        extractor=extractor.id, params=extractor.params(), dim=extractor.dim,
        window_frames=settings.window_frames, lookahead_frames=settings.lookahead_frames,
        video_fps=settings.video_fps, gate=_gate_spec(settings),
    )


def _gate_spec(settings: AudioSettings) -> dict | None:
    """The noise gate's parameters as a stored spec holds them (JSON types), None when the gate is off."""
    if not settings.gate.enabled:
        return None
    params = json.loads(json.dumps(asdict(settings.gate)))
    del params["enabled"]
    return params
