"""Preprocessing: any talking-head video -> avatar dataset (decode, track, pose, crop, masks, background, features).

`run_preprocess(PreprocessOptions(video, out_dir))` makes the dataset; `write_preview(data_dir)` draws it for a check
by eye. Both import their heavy dependencies (av, mediapipe, cv2, matplotlib) only when called.
"""
from engine.data.preprocess.config import PreprocessError, PreprocessOptions
from engine.data.preprocess.pipeline import run_preprocess
from engine.data.preprocess.preview import write_preview

__all__ = ["PreprocessOptions", "PreprocessError", "run_preprocess", "write_preview"]
