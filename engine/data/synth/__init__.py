"""Synthetic talking presenter with known ground truth: espeak-ng speech, a rigged face, offscreen rendering."""
from engine.data.synth.config import SynthConfig
from engine.data.synth.pipeline import run_synth

__all__ = ["SynthConfig", "run_synth"]
