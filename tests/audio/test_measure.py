"""measure.py: the latency budget term by term, and the shape of the bench numbers (no timing asserted)."""
from __future__ import annotations

import math

import pytest

from engine.audio.features.mel import MelExtractor
from engine.audio.measure import latency_budget, measure_extractors
from engine.audio.settings import AudioSettings


def test_latency_budget_terms_add_up_within_the_200_ms_budget() -> None:
    terms = latency_budget(AudioSettings(), MelExtractor())
    assert terms == {
        "input_block": 10.0, "ring_to_frame_loop": 40.0, "video_frame_span": 40.0, "extractor_window": 5.0,
        "lookahead": 40.0, "right_context": 0.0, "block_rounding": 0.0, "total": 135.0,
    }
    shorter = latency_budget(AudioSettings(lookahead_frames=1, block_frames=160), MelExtractor())
    # An odd look-ahead ends the window inside a block of 2: the block's second frame costs 20 ms more.
    assert shorter["lookahead"] == 20.0 and shorter["input_block"] == 10.0 and shorter["block_rounding"] == 20.0
    assert shorter["total"] == 135.0


@pytest.mark.slow
def test_measure_extractors_reports_each_extractor(tmp_path) -> None:
    import torch
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    HubertModel(HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                             conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2),
                ).save_pretrained(tmp_path)
    result = measure_extractors(1.0, hubert_model=str(tmp_path))
    assert set(result["extractors"]) == {"mel", "whisper", f"hubert ({tmp_path})"}
    for entry in result["extractors"].values():
        assert entry["video_frames"] == entry["offline_frames"] == 23  # 1 s: frames whose look-ahead it reaches
        for key in ("rtf_streaming", "rtf_offline", "ms_per_video_frame_mean", "ms_per_video_frame_max"):
            assert math.isfinite(entry[key]) and entry[key] > 0
        assert entry["latency_with_compute_ms"] == pytest.approx(
            entry["latency_ms"]["total"] + entry["ms_per_video_frame_mean"])
    assert result["extractors"][f"hubert ({tmp_path})"]["dim"] == 16 and result["extractors"]["whisper"]["dim"] == 384
