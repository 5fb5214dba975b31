#!/usr/bin/env python3
"""The universal audio-to-expression model on held-out voices heard through rooms and a telephone band: each
clip's speech convolved with an image-method room response (pyroomacoustics) or band-limited, then the model's
jawOpen against MediaPipe's tracks of the presenter's frames, as `syncanim eval-universal` measures the dry clips.

    .venv/bin/python scripts/universal_rooms.py MODEL_DIR DATA_DIR... [-o OUT.json]

DATA_DIR: held-out clips (`scripts/make_universal_corpus.sh --heldout OUT`, then OUT/heldout/*/data). Needs
pyroomacoustics (`pip install pyroomacoustics==0.10.1`), for this measurement only. assets/README.md quotes a run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from functools import partial
from pathlib import Path

import numpy as np

RATE = 16000
FIGURES = ("jaw_corr", "channel_corr_mean", "pose_div_ratio")
ROOMS = {  # name: (width x depth x height in m, RT60 in s, talker-to-microphone distance in m)
    "office, 1 m away": ((5.0, 4.0, 3.0), 0.4, 1.0),
    "living room, 2 m away": ((6.0, 5.0, 2.7), 0.6, 2.0),
    "hall, 3 m away": ((12.0, 9.0, 5.0), 1.0, 3.0),
}


def in_room(speech: np.ndarray, dims: tuple[float, ...], rt60: float, distance: float) -> np.ndarray:
    """speech [N] as a microphone `distance` m away hears it in a shoebox room (walls absorbing for `rt60`)."""
    import pyroomacoustics as pra
    from scipy.signal import fftconvolve

    absorption, order = pra.inverse_sabine(rt60, list(dims))
    room = pra.ShoeBox(list(dims), fs=RATE, materials=pra.Material(absorption), max_order=order,
                       air_absorption=True)
    talker = np.array([dims[0] / 2 - distance / 2, dims[1] / 2 + 0.3, 1.5])
    room.add_source(talker)
    room.add_microphone(talker + np.array([distance, -0.2, -0.3]))
    room.compute_rir()
    return _same_level(fftconvolve(speech, np.asarray(room.rir[0][0]))[:len(speech)], speech)


def phone_band(speech: np.ndarray) -> np.ndarray:
    """speech [N] through a telephone line's band (a 4th-order Butterworth band-pass, 300-3400 Hz)."""
    from scipy.signal import butter, sosfilt

    return _same_level(sosfilt(butter(4, [300.0, 3400.0], btype="bandpass", fs=RATE, output="sos"), speech), speech)


def _same_level(out: np.ndarray, speech: np.ndarray) -> np.ndarray:
    from engine.audio.augment import speech_level

    out = out * speech_level(speech) / max(speech_level(out), 1e-12)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def conditions() -> dict:
    rooms = {name: partial(in_room, dims=d, rt60=t, distance=m) for name, (d, t, m) in ROOMS.items()}
    return {"dry": None, **rooms, "telephone band (300-3400 Hz)": phone_band}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the universal model's folder (its motion.safetensors)")
    parser.add_argument("data", type=Path, nargs="+", help="held-out datasets with speech")
    parser.add_argument("-o", "--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    if importlib.util.find_spec("pyroomacoustics") is None:
        parser.error("this measurement needs pyroomacoustics: pip install pyroomacoustics==0.10.1")
    from engine.eval.universal import UniversalEvalError, run_clip
    from engine.motion.runtime import motion_path

    if not motion_path(args.model).is_file():
        parser.error(f"{motion_path(args.model)} is missing: pass the folder of a universal model (assets/universal)")
    rows = {}
    print("| heard | jawOpen corr (per clip) | all channels (mean corr) | pose speech / pauses |\n|---|---|---|---|")
    for name, heard in conditions().items():
        try:
            clips = [run_clip(args.model, d, seed=0, max_lag=5, heard=heard)[0] for d in args.data]
        except UniversalEvalError as error:
            parser.error(str(error))
        rows[name] = {d.parent.name: {k: c[k] for k in FIGURES} for d, c in zip(args.data, clips)}
        mean = rows[name]["mean"] = {k: float(np.nanmean([c[k] for c in clips])) for k in FIGURES}
        per_clip = " / ".join(f"{c['jaw_corr']:.2f}" for c in clips)
        print(f"| {name} | {mean['jaw_corr']:.3f} ({per_clip}) | {mean['channel_corr_mean']:.3f} | "
              f"{mean['pose_div_ratio']:.2f}x |", flush=True)
    if args.out:
        from engine.io.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps({"model": str(args.model), "rooms": ROOMS, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
