"""NeRF renderer: Taichi kernels (kernels/), encodings, head and upper-body fields, training, rendering API.

Importing this package or any module under it never starts Taichi: call
`engine.nerf.kernels.runtime.init_taichi(device)` from a startup system or a training entry first.
"""
