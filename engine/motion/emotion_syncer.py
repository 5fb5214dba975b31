"""AudioEmotion Syncer (the paper's Eqs. 10-12): upper-face blendshape offsets from speech, a CVAE latent conditioned
on time features T and contextual audio A_seq, and the model's own previous expression.

    g(a)    = U-Net(speech window)
    A_seq   = dilated conv stack over the same causal window (its neighbouring frames)
    T       = MLP(sinusoids of the blink phase and of the time since the last blink)
    D_exp   = MLP([z, T, A_seq]),  z ~ q(z | b, state, T, A_seq) in training, N(0, I) at run time   (Eq. 11)
    S_exp   = MLP(state + N(0, sigma_S)); state = own previous expression and its velocity
    Off(b)  = state.previous + heads(MLP([g(a), D_exp, S_exp]))                                    (Eq. 10)
    mouth   = mouth_head(MLP([g(a), D_exp, S_exp]))          mouth/jaw channels (config.MOUTH): direct, not residual

Lips must follow the audio at once: a residual head would let a missed syllable carry over into the next frames
(the mouth drifts from where it was), so mouth channels are predicted as z-scored values themselves. Blinks and
brows stay residual, which keeps their slow rollouts stable. Without mouth channels the module (and its
state_dict) is exactly the paper's.

Blink timing lives in T: the phase is the time since the last blink onset divided by the interval to the next one.
In training both come from the tracked blinks; at run time the onset is read off the model's own output and each
next interval is drawn from the training intervals, so blinks keep their natural rate in speech and in silence
without replaying any tracked curve. The paper's absolute frame index would carry no such timing.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.motion.blocks import DilatedConvStack, GaussianEncoder, TemporalUNet, mlp, shrink_output, sinusoidal
from engine.motion.config import MOUTH, SyncerDims
from engine.motion.normalization import FeatureNorm, ZScore

TIME_INPUTS = 2  # blink phase (clipped), seconds since the last blink / 10 (clipped)
TIME_FREQUENCIES = 4
MAX_PHASE = 1.5
MAX_ELAPSED_S = 10.0


def time_inputs(elapsed_frames: torch.Tensor, interval_frames: torch.Tensor, fps: float) -> torch.Tensor:
    """elapsed [B], interval [B] (frames) -> the raw time inputs [B, 2] the T MLP encodes."""
    phase = (elapsed_frames / interval_frames.clamp(min=1.0)).clamp(0.0, MAX_PHASE)
    seconds = (elapsed_frames / fps).clamp(0.0, MAX_ELAPSED_S) / MAX_ELAPSED_S
    return torch.stack([phase, seconds], -1)


class AudioEmotionSyncer(nn.Module):
    def __init__(self, feature_dim: int, window: int, focus: tuple[int, ...], dims: SyncerDims,
                 names: tuple[str, ...], blink_names: tuple[str, ...], state_dropout: float = 0.1) -> None:
        super().__init__()
        h, a, k = dims.hidden, dims.audio_dim, len(names)
        self.names = tuple(names)
        self.latent = dims.latent
        self.blink_index = [names.index(n) for n in blink_names]
        self.mouth_index = [i for i, n in enumerate(names) if n in MOUTH and i not in self.blink_index]
        self.other_index = [i for i in range(k) if i not in self.blink_index and i not in self.mouth_index]
        # Heads emit [blinks, others, mouth]; this gather puts them back in `names` order without shape-dependent code.
        order = self.blink_index + self.other_index + self.mouth_index
        self.register_buffer("unpermute", torch.tensor([order.index(i) for i in range(k)]), persistent=False)
        # 1 where the output is state.previous + delta, 0 where the head's output is the value itself: the mouth
        # follows the audio at once, and in models with a mouth the blinks too follow their phase input at once (fed
        # their own outputs, residual blinks drifted open by ~0.004 z a frame until no blink fired again).
        residual = torch.ones(k)
        residual[self.mouth_index] = 0.0
        if self.mouth_index:
            residual[self.blink_index] = 0.0
        self.register_buffer("residual", residual, persistent=False)
        self.features = FeatureNorm(feature_dim)
        self.expr_norm = ZScore(k)
        self.audio = TemporalUNet(feature_dim, dims.audio_channels, a, focus, dims.unet_depth)
        self.a_seq = DilatedConvStack(feature_dim, dims.audio_channels, a, window)
        time_features = TIME_INPUTS * (2 * TIME_FREQUENCIES + 1)
        self.time = mlp([time_features, h, h // 2], final_activation=True)
        self.s_exp = mlp([2 * k, h, h], dropout=state_dropout, final_activation=True)
        self.encoder = GaussianEncoder(k + 2 * k + h // 2 + a, h, dims.latent)
        self.d_exp = mlp([dims.latent + h // 2 + a, h, h], final_activation=True)
        self.fuse = mlp([a + 2 * h, h, h], final_activation=True)
        self.blinks = mlp([h, h // 2, len(self.blink_index)])
        self.others = mlp([h, h // 2, len(self.other_index)]) if self.other_index else None
        # Created last, so a model without mouth channels draws the same initial weights as before.
        self.mouth = mlp([h, h // 2, len(self.mouth_index)]) if self.mouth_index else None
        for head in (self.blinks, self.others, self.mouth):
            if head is not None:
                shrink_output(head)

    def encode_audio(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """window [B, W, D] raw features -> (g(a) [B, A], A_seq [B, A])."""
        x = self.features(window)
        return self.audio(x), self.a_seq(x)

    def encode_time(self, raw: torch.Tensor) -> torch.Tensor:
        """raw time inputs [B, 2] (see time_inputs) -> T [B, hidden / 2]."""
        return self.time(torch.cat([raw, sinusoidal(raw, TIME_FREQUENCIES)], -1))

    def posterior(self, target: torch.Tensor, state: torch.Tensor, time: torch.Tensor,
                  a_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | target [B, K], state [B, 2K], T, A_seq) -> mu, logvar [B, latent] (training only)."""
        return self.encoder(torch.cat([target, state, time, a_seq], -1))

    def forward(self, audio: torch.Tensor, a_seq: torch.Tensor, time: torch.Tensor, state: torch.Tensor,
                z: torch.Tensor) -> torch.Tensor:
        """audio, a_seq [B, A], time [B, H/2], state [B, 2K], z [B, latent] -> expression [B, K] (z-scored):
        the previous frame plus an offset, except the mouth (and, beside it, the blinks), which heads give directly."""
        d_exp = self.d_exp(torch.cat([z, time, a_seq], -1))
        h = self.fuse(torch.cat([audio, d_exp, self.s_exp(state)], -1))
        parts = [head(h) for head in (self.blinks, self.others, self.mouth) if head is not None]
        delta = torch.cat(parts, -1).index_select(1, self.unpermute)
        if self.mouth is None:
            return state[:, :len(self.names)] + delta
        return self.residual * state[:, :len(self.names)] + delta
