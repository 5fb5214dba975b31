"""Numbers for `syncanim bench`: each extractor's real-time factor and the mic-to-feature latency, term by term."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from engine.audio.features import FEATURE_HZ, HOP, SAMPLE_RATE, WIN, FeatureExtractor, make_extractor
from engine.audio.features.hubert import HubertExtractor
from engine.audio.settings import AudioSettings
from engine.audio.streaming import FeatureStream, offline_windows


def latency_budget(settings: AudioSettings, extractor: FeatureExtractor) -> dict[str, float]:
    """The algorithmic delay (ms) from a sound entering the microphone to the feature window of its video frame.

    Worst case, no compute time: the input block, the wait for the next frame to drain the ring, then what the window
    of the frame at time t needs after t (the frame's own span, the extractor's window beyond its hop, the look-ahead,
    HuBERT's right context and block rounding).
    """
    per_video = round(FEATURE_HZ / settings.video_fps)
    frame_ms = 1000.0 / settings.video_fps
    hop_ms = 1000.0 * HOP / SAMPLE_RATE
    m = extractor.block_frames
    rounding = 0
    for k in range(m):
        last = per_video * k + per_video + settings.lookahead_frames - 1
        rounding = max(rounding, (last // m + 1) * m - 1 - last)
    terms = {
        "input_block": 1000.0 * settings.block_frames / settings.sample_rate,
        "ring_to_frame_loop": frame_ms,
        "video_frame_span": per_video * hop_ms,
        "extractor_window": 1000.0 * (WIN - HOP) / SAMPLE_RATE,
        "lookahead": settings.lookahead_frames * hop_ms,
        "right_context": extractor.right_frames * hop_ms,
        "block_rounding": rounding * hop_ms,
    }
    terms["total"] = sum(terms.values())
    return terms


def _time_extractor(extractor: FeatureExtractor, settings: AudioSettings, seconds: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    stream = FeatureStream(extractor, settings.window_frames, settings.lookahead_frames, settings.video_fps,
                           gate=settings.gate)
    block = settings.block_frames
    stream.push(audio[:block])
    stream.pull()  # the first call pays for lazy initialisation; keep it out of the steady numbers
    per_frame = []
    spent = 0.0
    frames = 0
    for start in range(block, len(audio), block):
        stream.push(audio[start:start + block])
        begin = time.perf_counter()
        ready = stream.pull()
        took = time.perf_counter() - begin
        spent += took
        if ready:
            per_frame.append(took * 1e3 / len(ready))
            frames += len(ready)
    begin = time.perf_counter()
    offline = offline_windows(extractor, audio, settings.window_frames, settings.lookahead_frames, settings.video_fps,
                              gate=settings.gate)
    offline_s = time.perf_counter() - begin
    heard_s = (len(audio) - block) / SAMPLE_RATE
    return {
        "dim": extractor.dim,
        "rtf_streaming": spent / heard_s,
        "rtf_offline": offline_s / (len(audio) / SAMPLE_RATE),
        "ms_per_video_frame_mean": float(np.mean(per_frame)) if per_frame else float("nan"),
        "ms_per_video_frame_max": float(np.max(per_frame)) if per_frame else float("nan"),
        "video_frames": frames,
        "offline_frames": int(len(offline)),
    }


def _random_hubert(size: str) -> Any:
    from transformers import HubertConfig, HubertModel

    if size == "base":
        config = HubertConfig()
    else:  # hubert-large-ls960-ft's shape: 24 layers, 1024 wide, layer-norm conv stack
        config = HubertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                              feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    return HubertModel(config)


def measure_extractors(seconds: float = 4.0, settings: AudioSettings | None = None,
                       hubert_sizes: tuple[str, ...] = ("base", "large"), hubert_model: str | None = None,
                       ) -> dict[str, Any]:
    """Real-time factors (compute seconds per second of audio; < 1 keeps up) and latency terms of each extractor
    (mel, whisper on the settings' threads, HuBERT).

    HuBERT is timed with the weights at `hubert_model` when given, else with randomly initialised models of the
    hubert-base / hubert-large shapes (speed does not depend on the weights; their features mean nothing).
    """
    settings = settings or AudioSettings()
    results: dict[str, Any] = {"seconds": seconds, "extractors": {}}
    candidates: list[tuple[str, Any]] = [(name, lambda n=name: make_extractor(replace(settings, extractor=n)))
                                         for name in ("mel", "whisper")]
    if hubert_model is not None:
        params = replace(settings.hubert, model=hubert_model)
        candidates.append((f"hubert ({hubert_model})", lambda p=params: HubertExtractor(p)))
    else:
        for size in hubert_sizes:
            candidates.append((f"hubert-{size} shape, random weights",
                               lambda s=size: HubertExtractor(settings.hubert, model=_random_hubert(s))))
    for name, build in candidates:
        extractor = build()
        entry = _time_extractor(extractor, settings, seconds)
        entry["latency_ms"] = latency_budget(settings, extractor)
        entry["latency_with_compute_ms"] = entry["latency_ms"]["total"] + entry["ms_per_video_frame_mean"]
        if extractor.id == "hubert":
            entry["hubert"] = {"context_frames": extractor.context_frames, "block_frames": extractor.block_frames,
                               "right_frames": extractor.right_frames, "device": str(extractor.device)}
        results["extractors"][name] = entry
    return results


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure_extractors(float(sys.argv[1]) if len(sys.argv) > 1 else 4.0), indent=2))
