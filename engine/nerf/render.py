"""The rendering API: a trained avatar turns (pose, blendshapes, audio window, framing, size) into RGBA [H, W, 4].

    renderer = AvatarRenderer.load(AVATAR_DIR, device="cpu")      # Taichi must run on that device
    rgba = renderer.render(euler_deg, trans, blendshapes, names, window, size=(256, 256), zoom=0.0)

The inference path is the training model's function computed another way: per-frame conditions are folded into
weights and biases once per frame (a_h and b, with the attention nets' linear second layers, into the first sigma
layer; the pose condition into the upper body's first biases), and every per-pixel and per-sample tensor lives in
buffers allocated once per output size and reused (`FrameBuffers`), so steady-state frames allocate nothing large.
Framing moves the crop through which the dataset camera looks (engine/nerf/camera.py); the output is rendered at
the requested size, never resized.

The one exception is `head_scale`: the head, which costs nearly all of a CPU frame, may be marched through the
same crop at a fraction of the output resolution; its premultiplied colour and opacity are then upsampled
bilinearly (pixel centres aligned) and composited over the full-resolution upper body and plate. head_scale 1
is the exact path; `resolve_head_scale` and `resolve_precision` pick the fast settings per device ('auto').
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from engine.nerf.avatar import AvatarModel, load_avatar, nerf_path, sample_background
from engine.nerf.camera import (
    FRAMING_ZOOM, camera_directions, crop_pixels, crop_rect, euler_to_matrix, head_rays,
)
from engine.nerf.encodings import frequency_encode
from engine.nerf.head import SIGMA_CLAMP
from engine.nerf.kernels.composite import ACCUM_WIDTH
from engine.nerf.kernels.march import RaySamples
from engine.nerf.upper_body import anchor_rows, shoulder_weights
from engine.nerf.volume import VolumeBuffers, render_volume

WHERE = "engine/nerf/render.py"
AUTO_HEAD_SCALE_CPU = 0.5
"""head_scale 'auto' on a CPU for outputs of more than AUTO_HEAD_PIXELS pixels (1 on CUDA and below)."""
AUTO_HEAD_PIXELS = 128 * 128
"""Largest output (width x height) whose head 'auto' marches at full resolution on a CPU."""


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """'auto' -> 'bfloat16' on a CPU whose oneDNN runs bfloat16 matmuls natively (AVX-512 BF16 / AMX), else
    'float32' (CUDA renders in float32: its frame is far inside the budget); others pass through."""
    if precision != "auto":
        return precision
    if torch.device(device).type != "cpu":
        return "float32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        native = False
    return "bfloat16" if native else "float32"


def resolve_head_scale(head_scale: float | str, width: int, height: int, device: str | torch.device) -> float:
    """'auto' -> AUTO_HEAD_SCALE_CPU on a CPU above AUTO_HEAD_PIXELS output pixels, else 1; numbers pass through."""
    if head_scale != "auto":
        return float(head_scale)
    if torch.device(device).type == "cpu" and width * height > AUTO_HEAD_PIXELS:
        return AUTO_HEAD_SCALE_CPU
    return 1.0


def padded_rows(m: int, capacity: int) -> int:
    """m rounded up to one of 8 to 16 sizes per octave (at most 1/8 more, or up to 255 rows below 4096), capped at
    `capacity`.

    oneDNN builds a bfloat16 matmul primitive per shape (about 0.6 ms on this class of CPU) and caches it; each
    march round has a new sample count, so unpadded rounds rebuild every primitive every frame."""
    step = max(256, 1 << max(0, m.bit_length() - 4))
    return min(capacity, -(-m // step) * step)


class FrameBuffers:
    """Everything one output size needs, allocated once: rays, the framing's pixel codes, field scratch, output."""

    def __init__(self, model: AvatarModel, width: int, height: int, per_round: int, device: torch.device,
                 dtype: torch.dtype = torch.float32, head_size: tuple[int, int] | None = None) -> None:
        n = width * height
        spec, head, body = model.spec, model.head, model.body
        head_width, head_height = head_size or (width, height)
        nh = head_width * head_height
        m = nh * per_round
        e, a, k, h = head.encoding_dim, spec.dims.audio_dim, len(spec.expression), spec.dims.head_hidden
        self.width, self.height, self.zoom = width, height, None
        self.head_width, self.head_height = head_width, head_height
        self.pixels = torch.empty(n, 2, device=device)
        self.dirs = torch.empty(n, 3, device=device)
        scaled = (head_width, head_height) != (width, height)
        # the head's rays, and [R, 5] head accumulators upsampled to the output (None when the head is at full size)
        self.head_pixels = torch.empty(nh, 2, device=device) if scaled else self.pixels
        self.head_dirs = torch.empty(nh, 3, device=device) if scaled else self.dirs
        self.head_up = torch.empty(n, ACCUM_WIDTH, device=device) if scaled else None
        self.rays_o = torch.empty(nh, 3, device=device)
        self.rays_d = torch.empty(nh, 3, device=device)
        self.background = torch.empty(n, 3, device=device)
        self.volume = VolumeBuffers.allocate(nh, per_round, device)
        low = dtype != torch.float32

        def mlp(*shape: int) -> torch.Tensor:  # matmul operands and results: the MLP precision
            # zeros: low-precision matmuls also run over the padding rows past a round's samples (`padded_rows`)
            return (torch.zeros if low else torch.empty)(*shape, device=device, dtype=dtype)

        # the attention nets' second layers fold into the first sigma layer (AvatarRenderer.frame_weights): it reads
        # the encoding and the attention hidden units, two contiguous operands (a strided [enc | att] row is slower)
        self.head_in = torch.empty(m, e, device=device)  # the encoder writes float32
        self.head_x = mlp(m, e) if low else self.head_in
        self.head_att = mlp(m, (2 if head.hears else 1) * h)
        self.head_h1 = mlp(m, h)
        self.head_h2 = mlp(m, h)
        self.head_out = mlp(m, 1 + spec.dims.geo_features)
        self.colour_h = mlp(m, spec.dims.color_hidden)
        self.colour_out = mlp(3, m)  # transposed: a [M, 3] matmul result runs at a fraction of BLAS speed
        self.sigma = torch.empty(m, device=device)
        self.rgb = torch.empty(m, 3, device=device)
        bh, eb = spec.dims.body_hidden, body.encoder.out_dim
        self.body_in = torch.empty(n, eb + body.pixel_dim, device=device)
        self.body_x = mlp(n, eb + body.pixel_dim) if low else self.body_in
        self.pixel_code = mlp(n, body.pixel_dim)
        self.deform_h1 = mlp(n, bh)
        self.deform_h2 = mlp(n, bh)
        self.offset = mlp(n, 2)
        self.moved = torch.empty(n, 2, device=device)
        self.body_h1 = mlp(n, bh)
        self.body_h2 = mlp(n, bh)
        self.body_mlp = mlp(n, 4)
        self.body_out = torch.empty(n, 4, device=device)
        self.out = torch.empty(height, width, 4, device=device)


class AvatarRenderer:
    """A trained avatar on its render device; `render` returns [H, W, 4] float32 straight-alpha RGBA there."""

    def __init__(self, model: AvatarModel, per_round: int = 4, max_rounds: int = 6, precision: str = "float32",
                 t_thresh: float = 1e-2, head_scale: float | str = 1.0) -> None:
        if precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"{WHERE}: precision={precision!r}; use 'float32', 'bfloat16' (CPUs with AVX-512 "
                             "BF16 run the MLPs about 1.5x faster in it) or 'auto'")
        if head_scale != "auto" and not (isinstance(head_scale, (int, float)) and 0.0 < head_scale <= 1.0):
            raise ValueError(f"{WHERE}: head_scale={head_scale!r}; use a fraction in (0, 1] of the output "
                             "resolution (1: the head at full resolution) or 'auto'")
        self.model = model.eval()
        self.spec = model.spec
        self.device = model.background.device
        precision = resolve_precision(precision, self.device)
        self.precision = precision
        self.head_scale = head_scale
        """Fraction of the output resolution the head is marched at ('auto': `resolve_head_scale`)."""
        self.dtype = torch.float32 if precision == "float32" else torch.bfloat16
        self.per_round, self.max_rounds = per_round, max_rounds
        self.t_thresh = t_thresh
        """Rays stop taking samples once their transmittance falls below this. Measured on a trained synthetic
        presenter at 128^2: 4 x 4 samples with 1e-2 match 8 x 2 with 1e-3 (49.8 vs 49.9 dB against 64 rounds) with
        19% fewer field evaluations."""
        self._buffers: dict[tuple[int, int, int, int], FrameBuffers] = {}
        self._weights = self._static_weights()
        self._torso_profile = torch.tensor(self.spec.torso_profile, device=self.device)  # on the device once

    @classmethod
    def load(cls, avatar: str | Path, device: str = "cpu", specialize: bool = True, **kwargs) -> AvatarRenderer:
        """AVATAR_DIR (or its nerf.safetensors) -> a renderer on `device` ('cpu' or 'cuda', where Taichi runs)."""
        return cls(load_avatar(nerf_path(Path(avatar)), device, specialize=specialize), **kwargs)

    @property
    def expression_names(self) -> tuple[str, ...]:
        return self.spec.expression

    @torch.no_grad()
    def _static_weights(self) -> dict[str, torch.Tensor]:
        """Weight matrices rearranged once for the buffered inference path: transposed, the attention nets' first
        layers side by side (their second layers fold into the first sigma layer per frame, `frame_weights`), the
        colour output layer kept [3, C] (its [M, 3] result runs at a fraction of BLAS speed; [3, M] does not)."""
        head, body = self.model.head, self.model.body
        e1 = head.expression_attention[0].weight
        a1 = head.audio_attention[0].weight if head.hears else e1[:0]
        s, c = head.sigma_net, head.colour_net
        d, bc = body.deform_net, body.colour_net
        cd = body.condition_dim
        weights = {
            "att1": torch.cat([a1, e1]).T.contiguous(),
            "s2": s[2].weight.T.contiguous(), "s2b": s[2].bias, "s3": s[4].weight.T.contiguous(), "s3b": s[4].bias,
            "c1": c[0].weight.T.contiguous(), "c1b": c[0].bias, "c2": c[2].weight, "c2b": c[2].bias[:, None],
            "d1": d[0].weight[:, :-cd].T.contiguous(), "d2": d[2].weight.T.contiguous(), "d2b": d[2].bias,
            "d3": d[4].weight.T.contiguous(), "d3b": d[4].bias,
            "b1": bc[0].weight[:, :-cd].T.contiguous(), "b2": bc[2].weight.T.contiguous(), "b2b": bc[2].bias,
            "b3": bc[4].weight.T.contiguous(), "b3b": bc[4].bias,
        }
        return {name: w.to(self.dtype) for name, w in weights.items()}

    def buffers(self, width: int, height: int, zoom: float) -> FrameBuffers:
        """The buffers of this output size, with the framing's per-pixel data refreshed when the zoom changed."""
        if width < 1 or height < 1:
            raise ValueError(f"{WHERE}: size=({width}, {height}); width and height must be >= 1 pixel")
        head = self.head_size(width, height)
        buf = self._buffers.get((width, height, *head))
        if buf is None:
            buf = self._buffers[(width, height, *head)] = FrameBuffers(
                self.model, width, height, self.per_round, self.device, self.dtype, head)
        if buf.zoom != zoom:
            self._frame_view(buf, zoom)
        return buf

    def head_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) in rays of the head's grid for an output of width x height pixels."""
        scale = resolve_head_scale(self.head_scale, width, height, self.device)
        return max(1, round(width * scale)), max(1, round(height * scale))

    @torch.no_grad()
    def _frame_view(self, buf: FrameBuffers, zoom: float) -> None:
        spec, body = self.spec, self.model.body
        rect = crop_rect(zoom, buf.width / buf.height, spec.framing)
        crop_pixels(rect, buf.width, buf.height, spec.intrinsics.size, out=buf.pixels)
        camera_directions(buf.pixels, spec.intrinsics, out=buf.dirs)
        if buf.head_up is not None:  # the same crop seen through a coarser grid of rays
            crop_pixels(rect, buf.head_width, buf.head_height, spec.intrinsics.size, out=buf.head_pixels)
            camera_directions(buf.head_pixels, spec.intrinsics, out=buf.head_dirs)
        buf.background.copy_(sample_background(self.model.background, buf.pixels))
        code = frequency_encode(buf.pixels / spec.intrinsics.size * 2.0 - 1.0, spec.dims.pixel_freqs)
        buf.pixel_code.copy_(code)
        buf.body_in[:, body.encoder.out_dim:] = code
        buf.zoom = zoom

    def expression_vector(self, blendshapes, names: Sequence[str] | None) -> torch.Tensor:
        """Blendshape values (a mapping name -> value, or [K'] with `names`, or [K] in the model's order) -> [K].
        A channel the values do not name takes the training frames' mean (an average face, not an extreme one)."""
        wanted = self.spec.expression
        average = self.model.head.expression_mean.tolist()
        if isinstance(blendshapes, Mapping):
            values = [float(blendshapes.get(n, m)) for n, m in zip(wanted, average)]
        elif names is not None:
            lookup = dict(zip(names, np.asarray(blendshapes, np.float32).tolist()))
            values = [float(lookup.get(n, m)) for n, m in zip(wanted, average)]
        else:
            values = np.asarray(blendshapes, np.float32).reshape(-1).tolist()
            if len(values) != len(wanted):
                raise ValueError(f"{WHERE}: {len(values)} blendshape values without names; pass names or the "
                                 f"model's {len(wanted)} in the order {wanted}")
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def render(
        self,
        euler_deg,
        trans,
        blendshapes,
        names: Sequence[str] | None = None,
        audio_window=None,
        size: tuple[int, int] = (256, 256),
        zoom: float | str = 0.0,
        background: bool = True,
        torso_shift: tuple[float, float] = (0.0, 0.0),
    ) -> torch.Tensor:
        """One frame -> RGBA [H, W, 4] float32 in [0, 1] (straight alpha) on the render device.

        euler_deg [3] (roll, pitch, yaw, degrees), trans [3] (cm): head pose in the dataset camera; blendshapes:
        see `expression_vector`; audio_window [W, D] raw speech features (None: the training mean, a neutral
        mouth); size (width, height) in pixels; zoom in [0, 1] or a preset name ('default', 'med', 'max');
        background: composite over the avatar's background plate (alpha 1) or leave it transparent; torso_shift:
        (x, y) shift of the shoulders and chest in fractions of the dataset side, as training measured them
        (engine/nerf/torso_motion.py): the grid is read that far off, so y > 0 raises them (a breath in). The
        returned tensor is a buffer reused by the next call of the same size: copy it to keep it.
        """
        if isinstance(zoom, str):
            if zoom not in FRAMING_ZOOM:
                raise ValueError(f"{WHERE}: framing {zoom!r} is not one of {sorted(FRAMING_ZOOM)}")
            zoom = FRAMING_ZOOM[zoom]
        width, height = int(size[0]), int(size[1])
        buf = self.buffers(width, height, float(zoom))
        model, spec = self.model, self.spec
        rotation = euler_to_matrix(torch.as_tensor(np.asarray(euler_deg, np.float32), device=self.device))
        t = torch.as_tensor(np.asarray(trans, np.float32), device=self.device)
        expression = self.expression_vector(blendshapes, names)
        audio = self._audio_code(audio_window)
        shift = tuple(float(v) for v in np.asarray(torso_shift, np.float64).reshape(-1))
        if len(shift) != 2 or not np.all(np.isfinite(shift)):
            raise ValueError(f"{WHERE}: torso_shift {torso_shift} is not two numbers; pass (0, 0) for the rest torso")
        self._render_body(buf, rotation, t, shift)
        head_rays(buf.head_dirs, rotation, t, out_o=buf.rays_o, out_d=buf.rays_d)
        first = self.frame_weights(audio, expression)
        bias = model.head.sigma_net[0].bias.to(self.dtype)
        accum = render_volume(
            buf.rays_o, buf.rays_d, model.grid, lambda s: self._head_field(buf, s, first, bias), buf.volume,
            spec.dt, per_round=self.per_round, max_rounds=self.max_rounds, t_thresh=self.t_thresh,
        )
        if buf.head_up is not None:
            accum = self._upsample_head(buf, accum)
        return self._compose(buf, accum, background)

    def _audio_code(self, audio_window) -> torch.Tensor:
        """The head's audio code [A] of a raw feature window [W, D] (None: the training mean, a neutral mouth); [0]
        for a head without audio input, which ignores the window."""
        spec = self.spec
        if not self.model.head.hears:
            return torch.zeros(0, device=self.device)
        if audio_window is None:
            window = torch.full((1, spec.window_frames, spec.feature_dim), float("nan"), device=self.device)
        else:
            window = torch.as_tensor(np.asarray(audio_window, np.float32), device=self.device)[None]
            if window.shape[1:] != (spec.window_frames, spec.feature_dim):
                raise ValueError(f"{WHERE}: audio window of shape {tuple(window.shape[1:])}; this avatar was trained "
                                 f"on [{spec.window_frames}, {spec.feature_dim}] windows of extractor {spec.extractor}")
        return self.model.audio_code(window)[0]

    @staticmethod
    def _upsample_head(buf: FrameBuffers, accum: torch.Tensor) -> torch.Tensor:
        """Head accumulators [h w, 5] of the coarse grid -> buf.head_up [H W, 5], bilinear with pixel centres
        aligned (both grids tile the same crop); premultiplied colour and opacity interpolate correctly."""
        # channels-last views of the row-major [rows, columns, 5] buffers: the upsample writes into head_up
        coarse = accum.view(1, buf.head_height, buf.head_width, ACCUM_WIDTH).permute(0, 3, 1, 2)
        fine = buf.head_up.view(1, buf.height, buf.width, ACCUM_WIDTH).permute(0, 3, 1, 2)
        torch.ops.aten.upsample_bilinear2d.out(coarse, [buf.height, buf.width], False, None, None, out=fine)
        return buf.head_up

    @torch.no_grad()
    def frame_weights(self, audio: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """The first sigma layer of this frame [E + 2 H, H] over [enc, attention hidden units] ([E + H, H] for a head
        without audio input).

        v_aud = relu(enc A1) A2 and v_exp = relu(enc E1) E2 end linearly, and a_h, b are constant over the frame,
        so W_a diag(a_h) v_aud = (W_a diag(a_h) A2) relu(enc A1): the attention nets' second layers fold into the
        first sigma layer once per frame and no per-sample v_aud, v_exp are formed (about a quarter of the head's
        matmul work)."""
        head = self.model.head
        e, a = head.encoding_dim, self.spec.dims.audio_dim
        w = head.frame_weights(audio, expression)  # [H, E + A + K]
        parts = [w[:, :e]]
        if head.hears:
            parts.append(w[:, e:e + a] @ head.audio_attention[2].weight)  # [H, A] [A, H]
        parts.append(w[:, e + a:] @ head.expression_attention[2].weight)  # [H, K] [K, H]
        return torch.cat(parts, 1).T.contiguous().to(self.dtype)

    def _head_field(self, buf: FrameBuffers, samples: RaySamples, first: torch.Tensor, bias: torch.Tensor):
        w = self._weights
        m = samples.positions.shape[0]
        e = self.model.head.encoding_dim
        self.model.head.encoder(samples.positions, out=buf.head_in[:m], out_column=0)
        # float32 runs on exactly the m samples; lower precisions on m padded to a recurring size (the padding rows
        # hold earlier rounds' values and their results are never read)
        mp = m if self.dtype == torch.float32 else padded_rows(m, buf.head_x.shape[0])
        x, att = buf.head_x[:mp], buf.head_att[:mp]
        if x.data_ptr() != buf.head_in.data_ptr():
            x[:m].copy_(buf.head_in[:m])
        torch.mm(x, w["att1"], out=att).relu_()
        h1, h2, out = buf.head_h1[:mp], buf.head_h2[:mp], buf.head_out[:mp]
        torch.addmm(bias, x, first[:e], out=h1).addmm_(att, first[e:]).relu_()
        torch.addmm(w["s2b"], h1, w["s2"], out=h2).relu_()
        torch.addmm(w["s3b"], h2, w["s3"], out=out)
        sigma = buf.sigma[:m]
        sigma.copy_(out[:m, 0]).clamp_(max=SIGMA_CLAMP).exp_()
        hc, rgb = buf.colour_h[:mp], buf.rgb[:m]
        torch.addmm(w["c1b"], out[:, 1:], w["c1"], out=hc).relu_()
        rgb.copy_(torch.addmm(w["c2b"], w["c2"], hc.T, out=buf.colour_out[:, :mp])[:, :m].T)
        rgb.sigmoid_().mul_(1.002).sub_(0.001)
        return sigma, rgb

    def _render_body(self, buf: FrameBuffers, rotation: torch.Tensor, trans: torch.Tensor,
                     shift: tuple[float, float]) -> None:
        body, w = self.model.body, self._weights
        condition = body.condition(rotation, trans, self.spec.intrinsics)
        deform_bias, colour_bias = (b.to(self.dtype) for b in body.frame_biases(condition))
        torch.addmm(deform_bias, buf.pixel_code, w["d1"], out=buf.deform_h1).relu_()
        torch.addmm(w["d2b"], buf.deform_h1, w["d2"], out=buf.deform_h2).relu_()
        buf.moved.copy_(torch.addmm(w["d3b"], buf.deform_h2, w["d3"], out=buf.offset))
        buf.moved.add_(buf.pixels, alpha=1.0 / self.spec.intrinsics.size)
        if any(shift):
            chin, shoulders = anchor_rows(body.anchors, rotation, trans, self.spec.intrinsics)
            weights = shoulder_weights(chin, shoulders, buf.pixels[:, 1] / self.spec.intrinsics.size,
                                       self._torso_profile).to(buf.moved.dtype)
            for axis, value in enumerate(shift):
                if value:
                    buf.moved[:, axis].add_(weights[:, axis], alpha=value)
        body.encoder(buf.moved, out=buf.body_in, out_column=0)
        if buf.body_x.data_ptr() != buf.body_in.data_ptr():
            buf.body_x.copy_(buf.body_in)
        torch.addmm(colour_bias, buf.body_x, w["b1"], out=buf.body_h1).relu_()
        torch.addmm(w["b2b"], buf.body_h1, w["b2"], out=buf.body_h2).relu_()
        buf.body_out.copy_(torch.addmm(w["b3b"], buf.body_h2, w["b3"], out=buf.body_mlp))
        buf.body_out[:, 0].sigmoid_()
        buf.body_out[:, 1:].sigmoid_().mul_(1.002).sub_(0.001)

    def _compose(self, buf: FrameBuffers, accum: torch.Tensor, background: bool) -> torch.Tensor:
        out = buf.out.view(-1, 4)
        body_alpha = buf.body_out[:, 0:1]
        head_opacity = accum[:, 4:5]
        rgb, alpha = out[:, :3], out[:, 3:4]
        # premultiplied body (over the plate: + (1 - alpha) plate), then the head in front of it; in-place forms
        # of x (1 - a), so a frame allocates nothing of image size
        torch.mul(buf.body_out[:, 1:], body_alpha, out=rgb)
        if background:
            rgb.add_(buf.background).addcmul_(buf.background, body_alpha, value=-1.0)
            alpha.fill_(1.0)
        else:
            torch.mul(head_opacity, body_alpha, out=alpha).neg_().add_(body_alpha).add_(head_opacity)
        rgb.addcmul_(rgb, head_opacity, value=-1.0).add_(accum[:, :3])
        if not background:
            rgb.div_(alpha).nan_to_num_(0.0, 0.0, 0.0)
        out.clamp_(0.0, 1.0)
        return buf.out
