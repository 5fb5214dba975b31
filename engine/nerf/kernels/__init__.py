"""Taichi kernels of the NeRF renderer, one concern per module; start Taichi with `runtime.init_taichi` first.

runtime: init_taichi (ti.cpu or ti.cuda, once per process); common: shared @ti.func helpers;
hash_encode: 2-D plane hash grids (forward/backward); occupancy: density grid for empty-space skipping;
march: packed ray samples through the occupancy grid; composite: volume compositing (forward/backward);
launch: `fast_launch`, which every kernel wears so repeated launches skip Taichi's per-argument Python.
Modules are imported explicitly (`from engine.nerf.kernels import hash_encode`), so importing this package
does not import Taichi. All kernels take torch tensors (zero-copy when they live on Taichi's device).

Training step: march_rays(..., jitter=u) -> encoder(samples.positions) -> MLPs -> composite(...) -> loss.
Frame: engine.nerf.volume.render_volume runs rounds of march_rays(normalize=True) -> field -> composite_into
on buffers allocated once per image size.
"""
