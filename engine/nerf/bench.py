"""Numbers for `syncanim bench`: frames per second of the avatar renderer (AvatarRenderer.render) per output size.

With a trained avatar the numbers are what the engine will see. Without one, a model of the paper's sizes
(NerfDims defaults) with random weights stands in: its occupancy grid is set to an ellipsoid the size of a head,
so marching costs what it costs on a trained head (a random field would fill the whole box).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from engine.nerf.kernels.runtime import init_taichi
from engine.nerf.settings import NerfRenderSettings
from engine.nerf.train_config import EXPRESSION, NerfDims, TrainNerfConfig


def stand_in_renderer(device: str = "cpu", size: int = 512, seed: int = 0, **options):
    """An AvatarRenderer of the default sizes with random weights and a head-shaped occupancy grid; `options` go to
    AvatarRenderer (precision, head_scale, samples per ray)."""
    import torch

    from engine.nerf.avatar import AvatarModel, AvatarSpec
    from engine.nerf.camera import FramingRange, Intrinsics
    from engine.nerf.render import AvatarRenderer

    torch.manual_seed(seed)
    config = TrainNerfConfig(data=Path("."), avatar_dir=Path("."))  # its defaults: head box, grid, step
    spec = AvatarSpec(
        dims=NerfDims(audio_dim=0), expression=EXPRESSION, feature_dim=80, window_frames=16, group=2, extractor="mel",
        intrinsics=Intrinsics(focal_px=0.8 * size, cx=size / 2, cy=size / 2, size=size),
        framing=FramingRange((0.5, 0.35), 0.6), head_box=config.head_box_cm,
        grid_resolution=config.grid_resolution, steps_per_diagonal=config.steps_per_diagonal,
        rest_euler=(0.0, 0.0, 0.0), rest_trans=(0.0, 5.0, -60.0),
    )
    model = AvatarModel(spec, specialize=True)
    with torch.no_grad():
        for table in (model.head.encoder.table, model.body.encoder.table):
            table.uniform_(-1.0, 1.0)
        g = model.grid.resolution
        idx = torch.arange(g**3)
        ijk = torch.stack([idx % g, (idx // g) % g, idx // (g * g)], -1).float() + 0.5
        centres = torch.tensor(model.grid.lo) + ijk * torch.tensor(model.grid.cell_size)
        head = ((centres / torch.tensor([8.0, 11.0, 10.0])) ** 2).sum(-1) < 1.0
        model.grid.set_occupied(head)
    return AvatarRenderer(model.to(device), **options)


def measure_render(avatar: Path | None = None, sizes: tuple[int, ...] = (128, 256), device: str = "cpu",
                   repeats: int = 10, zoom: float = 0.0, settings: NerfRenderSettings | None = None
                   ) -> dict[str, Any]:
    """Median and min milliseconds per rendered frame (and FPS) per square size; Taichi starts on `device`.

    `settings` (default: the engine's NerfRenderSettings defaults, so the numbers are what the engine runs) give
    the samples per ray, the precision and the head scale; the report names the resolved ones."""
    import numpy as np
    import torch

    from engine.nerf.render import AvatarRenderer

    init_taichi(device)
    s = settings or NerfRenderSettings()
    options = dict(per_round=s.per_round, max_rounds=s.max_rounds, t_thresh=s.t_thresh, precision=s.precision,
                   head_scale=s.head_scale)
    renderer = (AvatarRenderer.load(avatar, device, **options) if avatar is not None
                else stand_in_renderer(device, **options))
    spec = renderer.spec
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    window = np.zeros((spec.window_frames, spec.feature_dim), np.float32)
    report: dict[str, Any] = {"device": device, "avatar": str(avatar) if avatar else "stand-in (random weights)",
                              "zoom": zoom, "precision": renderer.precision, "per_round": s.per_round,
                              "max_rounds": s.max_rounds, "t_thresh": s.t_thresh, "sizes": {}}
    for size in sizes:
        def frame(k: int) -> None:
            euler = np.array([0.0, 2.0 * np.sin(k), 3.0 * np.cos(k)], np.float32)
            renderer.render(euler, spec.rest_trans, {}, audio_window=window, size=(size, size), zoom=zoom)

        start = time.perf_counter()
        frame(0)
        sync()
        first = time.perf_counter() - start
        times = []
        for k in range(repeats):
            start = time.perf_counter()
            frame(k + 1)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
        median = statistics.median(times)
        report["sizes"][str(size)] = {"median_ms": median, "min_ms": min(times), "fps": 1e3 / median,
                                      "first_call_s": first, "head_rays": list(renderer.head_size(size, size))}
    return report
