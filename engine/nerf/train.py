"""NeRF training: `train_nerf(config)` runs the stages upper body, head and lips on one dataset and writes
AVATAR_DIR/nerf.safetensors, validation images and a log; resumable from AVATAR_DIR/.nerf-train/.

Stage 1 (body) fits the upper-body field over the background plate on pixels outside the head mask. Stage 2
(head) fits the head field in front of the frozen upper body, half of the rays on the head's bounding box and
shares of the rest on the brows and eyes, where the expression channels show, and on the lips.
Stage 3 (lips) alternates such steps with a lip patch (L2 + lambda (1 - SSIM), or lambda LPIPS as Eq. 15:
TrainNerfConfig.lip_loss), and gives every other one of its plain steps to the same kind of patch over the brows and
eyes of a blink frame (`lips_stage_patch`, `eye_patch_weights`). Every step renders one training frame with
its true pose, blendshapes and speech-feature window (as tracked by preprocess), except that a patch reads the
channels of the region it does not show from another frame (`_Trainer.patch_inputs`).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from engine.audio.features import feature_spec, make_extractor
from engine.audio.settings import AudioSettings
from engine.data.dataset import HAND, HEAD, TORSO, Dataset, DatasetError
from engine.data.preprocess.masks import upper_face_rect
from engine.io.atomic import atomic_path
from engine.motion.config import BLINK_CHANNELS, MOUTH
from engine.motion.data import blink_signal, blink_threshold, dataset_windows
from engine.nerf.avatar import AvatarModel, AvatarSpec, render_rays, save_avatar, tighten_grid
from engine.nerf.camera import FramingRange, Intrinsics
from engine.nerf.exposure import measure_exposure
from engine.nerf.kernels.runtime import init_taichi
from engine.nerf.losses import LIP_WEIGHTS, lip_term, photometric, psnr, weighted_mean
from engine.nerf.plugin import resolve_device
from engine.nerf.tcnn import TcnnUnavailable, fuse_mlps, resolve_backend, unfuse_mlps
from engine.nerf.torso_motion import TorsoMotion, measure_torso_motion
from engine.nerf.train_config import NERF_FILE, NerfDims, TrainNerfConfig
from engine.training_loop import Saved, TrainingLoop, start_run

log = logging.getLogger(__name__)

STAGES = ("body", "head", "lips")
VAL_CHUNK = 16384
HEAD_BOX_GROWTH = 1.2
"""Head steps draw their head rays on the head mask's box grown by this factor: the silhouette's outside edge (hair
against the background) is learned from rays that just miss the head."""


@dataclass
class TrainingData:
    """Everything a step reads, as tensors on the training device. T frames, S = size, K expression channels."""

    frames: torch.Tensor
    """[T, S, S, 3] uint8."""
    regions: torch.Tensor
    """[T, S, S] uint8: 0 background, TORSO, HEAD or HAND (engine.data.dataset), the head, torso and hand masks."""
    head_box: torch.Tensor
    """[T, 4] i64 (x0, y0, x1, y1) bounding box of the head mask (the face rectangle where the mask is empty)."""
    lip_rect: torch.Tensor
    """[T, 4] i64 (x0, y0, x1, y1)."""
    upper_face: torch.Tensor
    """[T, 4] i64 (x0, y0, x1, y1) around the brows and eyes (from the tracked landmarks)."""
    euler: torch.Tensor
    """[T, 3] degrees."""
    trans: torch.Tensor
    """[T, 3] cm."""
    expression: torch.Tensor
    """[T, K]."""
    windows: torch.Tensor
    """[C, T, W, D] raw speech-feature windows of C versions of the audio (0: the recording, then augmented ones)."""
    background: torch.Tensor
    """[S, S, 3] float in [0, 1]."""
    torso_shift: torch.Tensor
    """[T, 2] each frame's shift of the shoulders and chest the head pose does not explain (engine/nerf/torso_motion.py;
    zeros when the config turns it off)."""
    exposure: torch.Tensor
    """[T, 3] each frame's exposure against the background plate (engine/nerf/exposure.py; ones when the config
    turns it off): renders are multiplied by it wherever they meet the frame."""
    train: np.ndarray
    val: np.ndarray


def feature_spec_dict(settings: AudioSettings, fps: float) -> dict:
    """The FeatureSpec (as a dict) of `settings`' speech features: what the audio network is trained on and what the
    engine must compute to drive it (checked when the render system loads the avatar)."""
    spec = feature_spec(settings, make_extractor(settings)).to_dict()
    spec["video_fps"] = fps
    return spec


def dataset_feature_windows(dataset, settings: AudioSettings, frames: int, copies: int = 0,
                            seed: int = 0) -> tuple[np.ndarray, str, int]:
    """The windows [1 + copies, T, W, D] of `settings`' extractor: the dataset's recording, then `copies` augmented
    versions of its audio (engine/motion/data.py: dataset_windows)."""
    extractor = make_extractor(settings)
    windows = np.stack(list(dataset_windows(dataset, extractor, settings, frames, copies, seed)))
    return np.ascontiguousarray(windows, np.float32), extractor.id, 50 // round(settings.video_fps)


def _head_boxes(regions: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """[T, 4] (x0, y0, x1, y1) around each frame's head pixels, `fallback`'s box where a frame has none."""
    out = np.asarray(fallback, np.int64).copy()
    for t, frame in enumerate(regions):
        head = frame == HEAD
        ys, xs = np.flatnonzero(head.any(1)), np.flatnonzero(head.any(0))
        if len(ys):
            out[t] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out


def head_dims(config: TrainNerfConfig, silent: bool, root: Path) -> NerfDims:
    """The network sizes to train: the config's, without the head's audio input unless it asks for one and the
    recording has speech."""
    if config.head_audio and silent:
        log.warning("%s is a silent recording: the head is trained without audio input (--head-audio needs speech)",
                    root)
    if config.head_audio and not silent:
        return config.dims
    return replace(config.dims, audio_dim=0)


def load_training_data(config: TrainNerfConfig, device: torch.device) -> tuple[TrainingData, AvatarSpec]:
    """Read the dataset and derive the avatar's spec; errors name the file and the fix."""
    data = Dataset(config.data)
    tracks, meta = data.tracks, data.meta
    missing = [n for n in config.expression if n not in tracks.blendshape_names]
    if missing:
        raise DatasetError(f"{config.data / 'tracks.npz'} has no blendshapes {missing}; re-run `syncanim preprocess` "
                           "or pass expression names it has")
    for name in ("masks.npz", "background.png"):
        if not (data.root / name).is_file():
            raise DatasetError(f"{data.root / name} is missing; re-run `syncanim preprocess VIDEO -o {data.root}`")
    regions, (face_rect, lip_rect) = data.regions(), data.mask_rects()
    frames = data.frames()
    windows, extractor, group = dataset_feature_windows(data, config.audio, meta.frames, config.audio_copies,
                                                       config.seed)
    columns = [tracks.blendshape_names.index(n) for n in config.expression]
    train, val = data.train_indices, data.val_indices
    if len(train) == 0:
        raise DatasetError(f"{data.root / 'meta.json'}: no training frames (val_start={meta.val_start})")

    def t(array, dtype=None):
        return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)

    size = meta.size
    intrinsics = Intrinsics(meta.camera.focal_px, meta.camera.cx, meta.camera.cy, size)
    torso = TorsoMotion(np.zeros((meta.frames, 2), np.float32), None, ())
    if config.torso_motion:
        torso = measure_torso_motion(frames, regions, tracks.euler_deg, tracks.trans, intrinsics, train, val,
                                     meta.fps, progress=config.progress)
    background = data.background()
    exposure = np.ones((meta.frames, 3), np.float32)
    if config.exposure:
        exposure = measure_exposure(frames, regions, background, progress=config.progress)
    rise = AvatarSpec.breathing_rise if torso.rise is None else torso.rise  # too short to tell: the usual breath
    face = np.asarray(face_rect, np.float64)[train]
    center = (float((face[:, 0] + face[:, 2]).mean() / (2 * size)),
              float((face[:, 1] + face[:, 3]).mean() / (2 * size)))
    default_side = min(1.0, config.default_view_faces * float((face[:, 3] - face[:, 1]).mean()) / size)
    spec = AvatarSpec(
        dims=head_dims(config, meta.silent, data.root), expression=tuple(config.expression),
        feature_dim=windows.shape[3], window_frames=windows.shape[2], group=group, extractor=extractor,
        intrinsics=intrinsics,
        framing=FramingRange(center, default_side), head_box=tuple(config.head_box_cm),
        grid_resolution=config.grid_resolution, steps_per_diagonal=config.steps_per_diagonal,
        rest_euler=tuple(float(v) for v in tracks.euler_deg[train].mean(0)),
        rest_trans=tuple(float(v) for v in tracks.trans[train].mean(0)), breathing_rise=rise,
        torso_follow=torso.follow, torso_profile=torso.profile,
    )
    td = TrainingData(
        frames=t(frames), regions=t(regions), head_box=t(_head_boxes(regions, face_rect)),
        lip_rect=t(np.asarray(lip_rect, np.int64)),
        upper_face=t(upper_face_rect(tracks.landmarks2d, size).astype(np.int64)),
        euler=t(tracks.euler_deg, torch.float32), trans=t(tracks.trans, torch.float32),
        expression=t(tracks.blendshapes[:, columns], torch.float32), windows=t(windows),
        background=t(background.astype(np.float32) / 255.0), torso_shift=t(torso.shifts), exposure=t(exposure),
        train=train, val=val,
    )
    return td, spec


def _fit_scaler(model: AvatarModel, data: TrainingData) -> None:
    """Fit the inputs' normalisation on the training frames: the speech-feature scaler and the head's blendshape
    standardisation."""
    feats = data.windows[0, torch.as_tensor(data.train, device=data.windows.device)].reshape(-1, data.windows.shape[3])
    model.scaler.mean.copy_(feats.mean(0))
    model.scaler.std.copy_(feats.std(0).clamp(min=1e-3))
    expression = data.expression[torch.as_tensor(data.train, device=data.expression.device)]
    model.head.expression_mean.copy_(expression.mean(0))
    model.head.expression_std.copy_(expression.std(0).clamp(min=0.02))  # a still channel is not blown up


def _param_groups(model: AvatarModel, stage: str, config: TrainNerfConfig) -> list[dict]:
    if stage == "body":
        grid = [model.body.encoder.table, model.body.anchors]
        nets = [*model.body.deform_net.parameters(), *model.body.colour_net.parameters()]
    else:
        grid = [model.head.encoder.table]
        nets = [p for name, p in model.head.named_parameters() if not name.startswith("encoder.")]
    return [{"params": grid, "lr": config.lr_grid, "base_lr": config.lr_grid},
            {"params": nets, "lr": config.lr_net, "base_lr": config.lr_net}]


def _optimizer(model: AvatarModel, stage: str, config: TrainNerfConfig) -> torch.optim.AdamW:
    body = stage == "body"
    model.body.requires_grad_(body)
    model.head.requires_grad_(not body)
    # No weight decay: decaying hash-grid rows that few rays touch erases them (the reference's AdamW default did).
    return torch.optim.AdamW(_param_groups(model, stage, config), betas=(0.9, 0.99), eps=1e-15, weight_decay=0.0)


def _gather(data: TrainingData, frame: int, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Target colour [R, 3], background [R, 3], head, torso and seen masks [R] at integer pixels [R, 2] of a frame
    (seen: no hand covers the pixel)."""
    u, v = pixels[:, 0], pixels[:, 1]
    target, region = data.frames[frame, v, u].float() / 255.0, data.regions[frame, v, u]
    return (target, data.background[v, u], (region == HEAD).float(), (region == TORSO).float(),
            (region != HAND).float())


def _unseen_as_rendered(target: torch.Tensor, rendered: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """The target [R, 3] with the render in place of pixels a hand covers, which thus cost nothing: the avatar draws
    no hands, and a patch's perceptual term needs every pixel of its grid."""
    return torch.where(seen[:, None] > 0, target, rendered.detach())


def _random_pixels(n: int, size: int, gen: torch.Generator, box: torch.Tensor | None = None) -> torch.Tensor:
    if box is None:
        return torch.randint(0, size, (n, 2), generator=gen)
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = min(max(0, x0), size - 1), min(max(0, y0), size - 1)  # a box clipped to the frame's edge stays inside
    u = torch.randint(x0, max(x0 + 1, min(size, x1)), (n,), generator=gen)
    v = torch.randint(y0, max(y0 + 1, min(size, y1)), (n,), generator=gen)
    return torch.stack([u, v], -1)


def head_step_pixels(rays: int, size: int, gen: torch.Generator, head_box: torch.Tensor,
                     focus: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """Pixels [rays, 2] of a head step: half on the head's box, and each (box, share) of `focus` takes `share` of
    all the rays out of the other half, which covers the whole frame: there most rays miss the head's carved grid
    and teach the head field nothing but its edge."""
    half = rays // 2
    counts = [round(rays * share) for _, share in focus]
    if sum(counts) > rays - half:
        raise ValueError(f"focus shares {[share for _, share in focus]} exceed the frame's half of the rays")
    parts = [_random_pixels(rays - half - sum(counts), size, gen), _random_pixels(half, size, gen, head_box)]
    return torch.cat(parts + [_random_pixels(n, size, gen, box) for (box, _), n in zip(focus, counts)])


def _grown(rect: torch.Tensor, factor: float, size: int) -> torch.Tensor:
    x0, y0, x1, y1 = (float(v) for v in rect)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, 4) * factor / 2, max(y1 - y0, 4) * factor / 2
    return torch.tensor([max(0, cx - hw), max(0, cy - hh), min(size, cx + hw), min(size, cy + hh)])


def _patch_pixels(rect: torch.Tensor, patch: int) -> torch.Tensor:
    """A patch x patch grid of integer pixels spanning rect (x0, y0, x1, y1), row-major."""
    x0, y0, x1, y1 = (float(v) for v in rect)
    us = torch.linspace(x0, max(x0, x1 - 1), patch).round().long()
    vs = torch.linspace(y0, max(y0, y1 - 1), patch).round().long()
    v, u = torch.meshgrid(vs, us, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], -1)


@torch.no_grad()
def visual_hull(model: AvatarModel, data: TrainingData, n_frames: int = 24, agree: float = 0.8) -> torch.Tensor:
    """[G^3] bool: occupancy cells inside the (slightly grown) head mask in at least `agree` of the training frames
    that see them. Marching starts from this carved grid, so early head steps do not spend samples on the whole box
    (ER-NeRF marks cells no training camera sees for the same reason)."""
    from engine.nerf.camera import euler_to_matrix, project

    grid, spec = model.grid, model.spec
    g, size = grid.resolution, spec.intrinsics.size
    idx = torch.arange(g**3, device=data.regions.device)
    ijk = torch.stack([idx % g, (idx // g) % g, idx // (g * g)], -1).float() + 0.5
    lo = torch.tensor(grid.lo, device=idx.device)
    centres = lo + ijk * torch.tensor(grid.cell_size, device=idx.device)
    grow = 2 * max(1, round(0.03 * size)) + 1
    inside = torch.zeros(g**3, device=idx.device)
    seen = torch.zeros(g**3, device=idx.device)
    picks = np.unique(np.linspace(0, len(data.train) - 1, n_frames).round().astype(int))
    for frame in data.train[picks]:
        head = ((data.regions[frame] == HEAD) | (data.regions[frame] == HAND)).float()  # a hand may hide the head
        mask = torch.nn.functional.max_pool2d(head[None, None], grow, 1, grow // 2)[0, 0]
        cam = centres @ euler_to_matrix(data.euler[frame]).T + data.trans[frame]
        uv = (project(cam, spec.intrinsics) * size).floor().long()
        visible = (uv >= 0).all(-1) & (uv < size).all(-1)
        u, v = uv[:, 0].clamp(0, size - 1), uv[:, 1].clamp(0, size - 1)
        seen += visible.float()
        inside += (visible & (mask[v, u] > 0)).float()
    return (inside >= agree * seen) & (seen > 0)


def rare_expression_weights(expression: torch.Tensor, boost: float, floor: float = 0.02,
                            neighbours: int = 10) -> torch.Tensor:
    """[T] draw weights of frames with expression [T, K], in inverse proportion to how crowded their expression is:
    (d / median d)^2, clipped to [1, `boost`], where d is the distance to the `neighbours`-th nearest frame in the
    channels' robust units (1.4826 MAD, at least `floor`). A blink held in five frames of a thousand, drawn
    uniformly (or boosted with every frame that is merely unusual in one of many channels), is too seldom seen
    for the head field to learn closed eyes."""
    median = expression.median(0).values
    spread = ((expression - median).abs().median(0).values * 1.4826).clamp(min=floor)
    z = (expression - median) / spread
    k = min(neighbours, len(z) - 1)
    if k < 1:
        return torch.ones(len(z))
    distance = torch.cat([torch.cdist(chunk, z).topk(k + 1, largest=False).values[:, -1]
                          for chunk in z.split(2048)])
    typical = distance.median().clamp(min=1e-6)
    return (distance / typical).pow(2).clamp(1.0, float(boost))


def lips_stage_patch(step: int, eyes: bool) -> str | None:
    """What step `step` of the lips stage renders: 'lips' (odd steps), 'eyes' (every fourth, where `eyes`) or None
    (rays spread as in the head stage). The paper's lip patch sharpens the mouth; the eye patch does the same for a
    blink: with rays alone, some trainings of one real recording rendered its closed eyes over a ghost of the iris."""
    if step % 2:
        return "lips"
    return "eyes" if eyes and step % 4 == 2 else None


def eye_patch_weights(expression: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor | None:
    """[T] draw weights of the eye patches' frames, of the head's expression [T, K] with channels `names`: 1 on the
    frames whose eyelids are past the take's blink threshold (half-way from open to its deepest blink,
    `blink_threshold`), 0 elsewhere, so that every patch shows a closed eye. Drawn by how rare the eyelids are, most
    patches went to half-shut eyes and some trainings still rendered the blink too shallow to be seen (README,
    "Blinks"). None where the head reads no eyelids or the take holds no clear blink."""
    if not set(BLINK_CHANNELS) <= set(names):
        return None
    signal = blink_signal(expression, names)
    closed = (signal >= blink_threshold(signal.cpu().numpy())).float()
    return closed if bool(closed.any()) else None


class _Trainer:
    def __init__(self, config: TrainNerfConfig, model: AvatarModel, data: TrainingData, device: torch.device):
        self.config, self.model, self.data, self.device = config, model, data, device
        self.gen = torch.Generator().manual_seed(config.seed)
        self.scores: dict[str, float] = {}
        """Each stage's last validation PSNR."""
        self.size = model.spec.intrinsics.size
        self.hull: torch.Tensor | None = None
        train = torch.as_tensor(data.train, device=data.expression.device)
        expression, boost = data.expression[train], config.rare_expression_boost
        self.head_weights = rare_expression_weights(expression, boost).cpu()
        eyes = eye_patch_weights(expression, tuple(config.expression))
        self.eye_weights = eyes.cpu() if eyes is not None and config.eye_patches else None
        """Draw weights of the eye patches' frames (None: the lips stage renders none)."""
        self.mouth = torch.tensor([n in MOUTH for n in config.expression], device=data.expression.device)
        """[K] the expression channels of the mouth and jaw."""
        self.lip_loss, self.lip_term = lip_term(config.lip_loss, config.lip_patch, device)
        self.lip_weight = LIP_WEIGHTS[self.lip_loss] if config.lip_weight is None else config.lip_weight

    def carve(self) -> None:
        """Restrict the occupancy grid to the head's visual hull (before the head stages and after each update)."""
        if self.hull is None:
            self.hull = visual_hull(self.model, self.data)
        self.model.grid.set_occupied(self.model.grid.occupied.bool() & self.hull)

    def frame_inputs(self, frame: int,
                     version: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pose, audio code of audio version `version`, and blendshapes of `frame`."""
        d = self.data
        audio = self.model.audio_code(d.windows[version, frame:frame + 1])[0]
        return d.euler[frame], d.trans[frame], audio, d.expression[frame]

    def patch_inputs(self, inputs: tuple[torch.Tensor, ...], version: int, patch: str) -> tuple[torch.Tensor, ...]:
        """A patch's inputs with the channels it does not show taken from another training frame, drawn as the head
        steps draw theirs: an eye patch reads that frame's mouth, jaw and audio, a lip patch its brows and eyelids.
        A take's blinks fall while the mouth is shut; a field that saw them only so shut a speaking avatar's mouth at
        each blink, or rendered the blink too shallow to be seen (README, "Blinks")."""
        d = self.data
        donor = int(d.train[int(torch.multinomial(self.head_weights, 1, generator=self.gen))])
        euler, trans, audio, expression = inputs
        if patch == "eyes":
            _, _, audio, other = self.frame_inputs(donor, version)
            return euler, trans, audio, torch.where(self.mouth, other, expression)
        return euler, trans, audio, torch.where(self.mouth, expression, d.expression[donor])

    def step_loss(self, stage: str, step: int) -> torch.Tensor:
        """The loss of one step of `stage` on one random training frame (occupancy updates on schedule)."""
        d = self.data
        patch = lips_stage_patch(step, self.eye_weights is not None) if stage == "lips" else None
        if stage == "body":
            pick = int(torch.randint(0, len(d.train), (1,), generator=self.gen))
        else:
            weights = self.eye_weights if patch == "eyes" else self.head_weights
            pick = int(torch.multinomial(weights, 1, generator=self.gen))
        frame = int(d.train[pick])
        version = int(torch.randint(0, len(d.windows), (1,), generator=self.gen))
        inputs = self.frame_inputs(frame, version)
        if patch is not None:
            inputs = self.patch_inputs(inputs, version, patch)
        if stage == "body":
            return self.body_loss(frame, inputs)
        loss = self.head_loss(frame, inputs, patch)
        if step % self.config.grid_every == 0:
            cells = None if self.model.grid.resolution <= 32 else self.model.grid.resolution**3 // 8
            # torch draws on a device only from a generator of that device: the CPU one serves the CPU alone.
            generator = self.gen if self.device.type == "cpu" else None
            self.model.update_grid(inputs[2].detach(), inputs[3], cells, generator)
            self.carve()
        return loss

    def body_loss(self, frame: int, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Eq. 9 on pixels outside the head mask, plus the upper body's alpha against the torso mask."""
        cfg = self.config
        pixels = _random_pixels(cfg.rays, self.size, self.gen).to(self.device)
        target, bg, head, torso, seen = _gather(self.data, frame, pixels)
        out = render_rays(self.model, pixels.float() + 0.5, *inputs, bg, head=False,
                          torso_shift=self.data.torso_shift[frame])
        keep = (1.0 - head) * seen
        alpha_err = weighted_mean((out["body_alpha"] - torso) ** 2, keep)
        return photometric(out["rgb"] * self.data.exposure[frame], target, keep) + cfg.mask_weight * alpha_err

    def head_loss(self, frame: int, inputs: tuple[torch.Tensor, ...], patch: str | None = None) -> torch.Tensor:
        """L_head (half the rays on the head's box) or, on patch steps, L_lip of Eq. 15 on the `patch` ('lips' or
        'eyes': the brows and eyes)."""
        cfg, d = self.config, self.data
        lips = _grown(d.lip_rect[frame], 1.25, self.size)
        if patch is not None:
            rect = lips if patch == "lips" else _grown(d.upper_face[frame], 1.1, self.size)
            pixels = _patch_pixels(rect, cfg.lip_patch).to(self.device)
        else:
            focus = [(d.upper_face[frame], cfg.upper_face_rays), (lips, cfg.lip_rays)]
            head_box = _grown(d.head_box[frame], HEAD_BOX_GROWTH, self.size)
            pixels = head_step_pixels(cfg.rays, self.size, self.gen, head_box, focus).to(self.device)
        target, bg, head, _, seen = _gather(d, frame, pixels)
        jitter = torch.rand(pixels.shape[0], generator=self.gen).to(self.device)
        out = render_rays(self.model, pixels.float() + 0.5, *inputs, bg, max_samples=cfg.max_samples, jitter=jitter,
                          torso_shift=d.torso_shift[frame])
        rgb = out["rgb"] * d.exposure[frame]
        opacity_err = weighted_mean((out["head_opacity"] - head) ** 2, seen)
        loss = photometric(rgb, target, seen) + cfg.mask_weight * opacity_err
        if patch is not None:
            p, target = cfg.lip_patch, _unseen_as_rendered(target, rgb, seen)
            return loss + self.lip_weight * self.lip_term(rgb.view(p, p, 3), target.view(p, p, 3))
        if not self.model.head.hears:
            return loss
        return loss + cfg.ambient_weight * self.ambient(frame, pixels, out)

    def ambient(self, frame: int, pixels: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean |v_aud| of samples on rays outside the (grown) lip rectangle: audio attention stays on the mouth."""
        lower = _grown(self.data.lip_rect[frame], 1.5, self.size).to(self.device)
        u, v = pixels[:, 0], pixels[:, 1]
        outside = ~((u >= lower[0]) & (u < lower[2]) & (v >= lower[1]) & (v < lower[3]))
        weight = outside[out["sample_ray"]].float()
        return weighted_mean(out["v_aud"].abs().mean(-1), weight)

    @torch.no_grad()
    def render_frame(self, frame: int, head: bool) -> torch.Tensor:
        """The whole frame [S, S, 3] at the dataset size with the frame's true conditions and exposure."""
        s = self.size
        v, u = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
        pixels = torch.stack([u.reshape(-1), v.reshape(-1)], -1).to(self.device)
        euler, trans, audio, expression = self.frame_inputs(frame)
        parts = []
        for start in range(0, pixels.shape[0], VAL_CHUNK):
            chunk = pixels[start:start + VAL_CHUNK]
            bg = self.data.background[chunk[:, 1], chunk[:, 0]]
            out = render_rays(self.model, chunk.float() + 0.5, euler, trans, audio, expression, bg, head=head,
                              max_samples=4 * self.config.max_samples, torso_shift=self.data.torso_shift[frame])
            parts.append(out["rgb"])
        return (torch.cat(parts).view(s, s, 3) * self.data.exposure[frame]).clamp(0, 1)

    def validate(self, stage: str, step: int) -> float:
        d, cfg = self.data, self.config
        frames = d.val if len(d.val) else d.train
        picks = np.unique(np.linspace(0, len(frames) - 1, max(1, cfg.val_frames)).round().astype(int))
        scores, tiles = [], []
        for i in picks:
            frame = int(frames[i])
            pred = self.render_frame(frame, head=stage != "body")
            gt = d.frames[frame].float() / 255.0
            scores.append(psnr(pred, gt))
            tiles.append(torch.cat([gt, pred], 1))
        _write_png(cfg.avatar_dir / "val" / f"{stage}_{step:06d}.png", torch.cat(tiles, 0))
        return float(np.mean(scores))


GRID_FRAMES = 4
"""Training frames (evenly spread) the render grid's alpha is chosen on."""


@torch.no_grad()
def fit_render_grid(model: AvatarModel, data: TrainingData, alphas: tuple[float, ...]) -> dict:
    """Tighten the trained (permissive) occupancy grid at the alpha of `alphas` whose real-time renders (the engine's
    sample budget, whole frames at the dataset size) of GRID_FRAMES training frames come closest to them; returns
    {"alpha", "psnr": {alpha: dB}, "occupied"} for the checkpoint's metadata."""
    from engine.nerf.render import AvatarRenderer

    trained = model.grid.occupied.clone().bool()
    frames = data.train[np.unique(np.linspace(0, len(data.train) - 1, GRID_FRAMES).round().astype(int))]
    size = model.spec.intrinsics.size
    scores = {}
    for alpha in alphas:
        model.grid.set_occupied(trained)
        tighten_grid(model, alpha)
        renderer = AvatarRenderer(model)
        errors = []
        for frame in (int(f) for f in frames):
            window = data.windows[0, frame].cpu().numpy() if model.head.hears else None
            rgba = renderer.render(data.euler[frame].cpu().numpy(), data.trans[frame].cpu().numpy(),
                                   data.expression[frame].cpu().numpy(), None, window, size=(size, size), zoom=1.0,
                                   torso_shift=tuple(data.torso_shift[frame].tolist()))
            exposed = (rgba[..., :3] * data.exposure[frame]).clamp(0, 1)
            errors.append(psnr(exposed, data.frames[frame].float() / 255.0))
        scores[alpha] = float(np.mean(errors))
    best = max(scores, key=scores.get)
    model.grid.set_occupied(trained)
    occupied = tighten_grid(model, best)
    log.info("render grid: alpha %.2f (%.1f%% of cells), real-time PSNR on %d training frames %s", best,
             100 * occupied, len(frames), ", ".join(f"{a:.2f}: {v:.2f} dB" for a, v in scores.items()))
    return {"alpha": best, "psnr": {f"{a:.2f}": v for a, v in scores.items()}, "occupied": occupied}


def _write_png(path: Path, image: torch.Tensor) -> None:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    iio.imwrite(tmp, (image.cpu().numpy() * 255.0 + 0.5).astype(np.uint8))
    os.replace(tmp, path)


def _stage_deadline(config: TrainNerfConfig, stage: str, now: float, end: float, done: int = 0) -> float:
    """When `stage` must stop (on the clock of `now` and `end`): the time left until `end` shared by the steps
    still to run (`done` of this stage's are behind it), so a slow or busy machine shortens every stage instead of
    never reaching the lips, and a stage that finishes early (the upper body's steps are cheap) leaves its time to
    the next ones."""
    steps = _stage_steps(config)
    left = steps[stage] - done
    remaining = left + sum(steps[s] for s in STAGES[STAGES.index(stage) + 1:])
    return now + (end - now) * left / max(1, remaining)


def lr_scale(decay: float, step_fraction: float, start: float, deadline: float, now: float) -> float:
    """Learning-rate factor of a stage: exponential from 1 to `decay`, along the steps or along the time to the
    stage's deadline, whichever is further: a stage the deadline cuts short still ends at its low rate."""
    time_fraction = (now - start) / (deadline - start) if deadline > start else 0.0
    return decay ** min(1.0, max(step_fraction, time_fraction))


class _Stage:
    """One stage's craft for the training loop: its own AdamW, whose learning rates fall towards the end of its
    steps or of its time, whichever comes first; each validation renders the validation frames and logs their
    PSNR."""

    validates_when_stopped = False

    def __init__(self, trainer: _Trainer, loop: TrainingLoop, stage: str, start: float, deadline: float) -> None:
        self.trainer, self.loop, self.stage, self.start, self.deadline = trainer, loop, stage, start, deadline
        self.name, self.total = f"nerf {stage}", _stage_steps(trainer.config)[stage]
        self.optimizer = _optimizer(trainer.model, stage, trainer.config)
        if stage != "body":
            trainer.carve()
        self.loss = 0.0
        """The last step's loss."""

    def step(self, step: int) -> dict[str, str]:
        config = self.trainer.config
        scale = lr_scale(config.lr_decay, step / max(1, self.total), self.start, self.deadline, self.loop.clock())
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * scale
        loss = self.trainer.step_loss(self.stage, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.loss = float(loss.detach())
        return {"loss": f"{self.loss:.4f}"}

    def validate(self, done: int) -> dict:
        scores = self.trainer.scores
        scores[self.stage] = self.trainer.validate(self.stage, done)
        return {"stage": self.stage, "step": done, "loss": self.loss, "val_psnr": scores[self.stage],
                "seconds": self.loop.clock()}

    def state(self, stopped: bool) -> tuple[dict[str, torch.Tensor], dict]:
        """The stage, whether its deadline stopped it, its place on the run's clock (deadline None: no limit) and
        the limit that placed it, and every stage's last score."""
        deadline = None if self.deadline == float("inf") else self.deadline
        return {}, {"stage": self.stage, "out_of_time": stopped, "stage_start": self.start,
                    "stage_deadline": deadline, "time_limit_s": self.trainer.config.time_limit_s,
                    "scores": self.trainer.scores}


def _stage_steps(config: TrainNerfConfig) -> dict[str, int]:
    return {"body": config.body_steps, "head": config.head_steps, "lips": config.lip_steps}


def _load_moments(saved: Saved, optimizer: torch.optim.AdamW) -> None:
    """AdamW's moments of a resumed stage; states written before the shared training loop kept them by (group,
    parameter) with their steps in the metadata."""
    if "opt_steps" not in saved.meta:
        saved.load_optimizer(optimizer)
        return
    for i, j, step in saved.meta["opt_steps"]:
        p = optimizer.param_groups[i]["params"][j]
        moments = {key: saved.tensors[f"opt.{i}.{j}.{key}"].to(p.device) for key in ("exp_avg", "exp_avg_sq")}
        optimizer.state[p] = {"step": torch.tensor(step), **moments}


def _resume_point(config: TrainNerfConfig, saved: Saved | None, now: float,
                  end: float) -> tuple[int, int, tuple[float, float] | None]:
    """Where this run starts: (index of its first stage, that stage's first step, (start, deadline) of a stage
    resumed part-way, else None). A finished stage is never trained again, nor one its deadline stopped under the
    same time limit; under another limit (more time given to a run the limit stopped) the time left is shared out
    again from here."""
    if saved is None:
        return 0, 0, None
    meta = saved.meta
    stage, index = meta["stage"], STAGES.index(meta["stage"])
    same_limit = float(meta.get("time_limit_s", config.time_limit_s)) == config.time_limit_s
    if saved.step >= _stage_steps(config)[stage] or (meta.get("out_of_time", False) and same_limit):
        return index + 1, 0, None
    deadline = meta.get("stage_deadline")
    deadline = float("inf") if deadline is None else float(deadline)
    if not same_limit:
        deadline = _stage_deadline(config, stage, now, end, saved.step)
    return index, saved.step, (float(meta.get("stage_start", 0.0)), deadline)


def _start_mlp_backend(config: TrainNerfConfig, model: AvatarModel, device: torch.device) -> str:
    """Hand the MLPs to tiny-cuda-nn when the config's backend resolves to it; returns 'torch' or 'tcnn'."""
    if resolve_backend(config.mlp_backend, device) == "torch":
        return "torch"
    try:
        fused = fuse_mlps(model)
    except TcnnUnavailable as error:
        if config.mlp_backend == "tcnn":
            raise
        log.warning("training the NeRF's MLPs with torch: %s", error)
        return "torch"
    log.info("NeRF MLPs on tiny-cuda-nn's FullyFusedMLP (half precision): %s", ", ".join(fused) or "none")
    return "tcnn"


def train_nerf(config: TrainNerfConfig) -> Path:
    """Train the renderer of config.data into config.avatar_dir; returns the path of nerf.safetensors."""
    # Taichi's CPU pool follows `threads` when this run starts it: with one thread the marcher packs samples in
    # ray order and a CPU run repeats bit for bit (with more, their order, and so the sums, vary from run to run).
    device = torch.device(init_taichi(resolve_device(config.device), cpu_threads=config.threads or None))
    start_run(config)
    config.avatar_dir.mkdir(parents=True, exist_ok=True)
    data, spec = load_training_data(config, device)
    model = AvatarModel(spec).to(device)
    model.background.copy_(data.background)
    if config.torso_motion:
        model.frame_torso_shift = data.torso_shift.cpu()
    if config.exposure:
        model.frame_exposure = data.exposure.cpu()
    _fit_scaler(model, data)
    trainer = _Trainer(config, model, data, device)
    loop = TrainingLoop(config, config.avatar_dir, "nerf", {"spec": model.spec.to_json()}, {"model": model},
                        {"trainer": trainer.gen})
    saved = loop.resume(restart_on_mismatch=True)
    if saved is not None:  # (a state from before the scores were kept: the log has them)
        scores = saved.meta["scores"] if "scores" in saved.meta else {r["stage"]: r["val_psnr"] for r in loop.history}
        trainer.scores = dict(scores)
    mlp_backend = _start_mlp_backend(config, model, device)
    index, first, timing = _resume_point(config, saved, loop.clock(), loop.end)
    trained = saved.meta["stage"] if saved is not None else STAGES[0]
    for i, name in enumerate(STAGES[index:]):
        now, resumed = loop.clock(), i == 0 and timing is not None
        # A fresh run's first stage and a resumed stage take a step even past the limit (a run writes a model);
        # other stages start only while time is left.
        if now > loop.end and not (resumed or (i == 0 and saved is None)):
            break
        start, deadline = timing if resumed else (now, _stage_deadline(config, name, now, loop.end))
        stage = _Stage(trainer, loop, name, start, deadline)
        if resumed:
            _load_moments(saved, stage.optimizer)
        loop.run(stage, first if resumed else 0, deadline)
        trained = name
    model.eval()
    unfuse_mlps(model)
    grid = {}
    if trained != "body":  # the head was trained: tighten its grid for the real-time sample budget
        grid = fit_render_grid(model, data, config.render_grid_alphas)
    return save_avatar(config.avatar_dir / NERF_FILE, model,
                       {"val_psnr": trainer.scores, "mlp_backend": mlp_backend, "render_grid": grid,
                        "lip_loss": {"term": trainer.lip_loss, "weight": trainer.lip_weight},
                        "config": json.loads(json.dumps(asdict(config), default=str)),
                        "features": feature_spec_dict(config.audio, float(Dataset(config.data).meta.fps))})
