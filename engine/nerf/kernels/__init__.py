"""Taichi kernels of the NeRF renderer, one concern per module; start Taichi with `runtime.init_taichi` first.

hash_encode: 2-D plane hash grids (forward/backward); occupancy: density grid for empty-space skipping;
march: packed ray samples through the occupancy grid; composite: volume compositing (forward/backward).
Modules are imported explicitly (`from engine.nerf.kernels import hash_encode`), so importing this package
does not import Taichi.
"""
