"""The `hubert` extractor: hidden states of a transformers HubertModel loaded offline (local folder or HF cache)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.features import FeatureExtractor
from engine.audio.settings import HubertParams

_ARCHITECTURE_KEYS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim", "conv_kernel",
    "conv_stride", "feat_extract_norm", "do_stable_layer_norm", "num_conv_pos_embeddings",
)


def _load_model(name: str) -> Any:
    from transformers import HubertModel

    try:
        # local_files_only is HF_HUB_OFFLINE for this one call: a folder, or the cache, never the network.
        return HubertModel.from_pretrained(name, local_files_only=True)
    except OSError as error:
        raise FileNotFoundError(
            f"HuBERT model {name!r} is neither a local folder nor in the Hugging Face cache ({error}). "
            "On a machine with internet run `huggingface-cli download facebook/hubert-large-ls960-ft` (or "
            "`HubertModel.from_pretrained(...).save_pretrained(DIR)`), then pass AudioSettings.hubert.model=DIR; "
            "or use the built-in extractor: AudioSettings.extractor='mel'."
        ) from error


def _wants_normalised_input(name: str) -> bool:
    """Whether the checkpoint's preprocessor z-scores each input (hubert-large-ls960-ft does; the base model not)."""
    folder = Path(name)
    if folder.is_dir():
        config = folder / "preprocessor_config.json"
        return bool(json.loads(config.read_text()).get("do_normalize", False)) if config.is_file() else False
    try:
        from transformers import Wav2Vec2FeatureExtractor

        return bool(Wav2Vec2FeatureExtractor.from_pretrained(name, local_files_only=True).do_normalize)
    except OSError:
        return False


def _weights_digest(model: Any) -> str:
    """A short fingerprint of the weights, so features from another checkpoint with the same shape are refused."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.endswith("weight") and tensor.ndim >= 1:
            digest.update(name.encode())
            digest.update(tensor.detach().float().reshape(-1)[:4096].cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class HubertExtractor(FeatureExtractor):
    """Each call runs the model on `context + block + right` frames of audio and keeps the block's hidden states."""

    id = "hubert"

    def __init__(self, params: HubertParams = HubertParams(), model: Any = None) -> None:
        """Load `params.model` offline, or wrap `model` (an already loaded HubertModel, e.g. a random one for bench)."""
        import torch

        if params.block_frames < 1 or params.context_frames < 0 or params.right_frames < 0:
            raise ValueError(f"HubertParams frame counts must be block >= 1, context >= 0, right >= 0: {params}")
        self._params = params
        self.context_frames = params.context_frames
        self.block_frames = params.block_frames
        self.right_frames = params.right_frames
        device = params.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = (model if model is not None else _load_model(params.model)).eval().to(self.device)
        config = self.model.config
        layers = config.num_hidden_layers
        if not -1 <= params.layer <= layers:
            raise ValueError(
                f"HubertParams.layer={params.layer} but {params.model!r} has {layers} layers (0..{layers}, -1 = last)")
        self.dim = config.hidden_size
        self.normalise = _wants_normalised_input(params.model) if model is None else False
        self._architecture = {key: getattr(config, key) for key in _ARCHITECTURE_KEYS}
        self._digest = _weights_digest(self.model)

    def params(self) -> dict[str, Any]:
        p = self._params
        return {
            "model": p.model, "layer": p.layer, "context_frames": p.context_frames, "block_frames": p.block_frames,
            "right_frames": p.right_frames, "normalise_input": self.normalise, "weights": self._digest,
            "architecture": json.loads(json.dumps(self._architecture)),
        }

    def compute(self, windows: np.ndarray) -> np.ndarray:
        """windows [B, window_samples] -> [B, block_frames, hidden_size]."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
            if self.normalise:
                # Wav2Vec2FeatureExtractor's zero-mean unit-variance, per call window.
                x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-7)
            wanted_hidden = self._params.layer != -1
            out = self.model(x, output_hidden_states=wanted_hidden)
            hidden = out.hidden_states[self._params.layer] if wanted_hidden else out.last_hidden_state
            start = self.context_frames
            if hidden.shape[1] != start + self.block_frames + self.right_frames:
                raise RuntimeError(
                    f"{self._params.model!r} gave {hidden.shape[1]} frames for {windows.shape[1]} samples; the engine "
                    "expects HuBERT framing (400-sample receptive field, stride 320)"
                )
            return hidden[:, start:start + self.block_frames].float().cpu().numpy()
