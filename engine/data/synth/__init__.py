"""Synthetic talking presenter with known ground truth: espeak-ng speech, a rigged face, offscreen rendering."""
from engine.data.synth.config import SynthOptions

__all__ = ["SynthOptions", "run_synth"]


def __getattr__(name: str):
    # Lazy, so that importing a leaf module (e.g. speech in a worker process) does not pull in the renderer.
    if name == "run_synth":
        from engine.data.synth.pipeline import run_synth

        return run_synth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
