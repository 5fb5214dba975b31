"""NeRF renderer: Taichi kernels (kernels/), encodings, head and upper-body fields, training, rendering API.

kernels/     Taichi hash encoding, occupancy grid, ray marching, compositing (runtime.init_taichi starts Taichi)
camera       head pose -> canonical head rays; framing crops (default / MedScale / MaxScale / continuous zoom)
encodings    frequency codes, the audio network with temporal attention, the speech-feature scaler
head         HeadField: tri-plane hash grids + region attention for audio and expression (Eqs. 13-15)
upper_body   UpperBodyField: image-plane hash grid deformed by the head pose through trainable anchors (Eqs. 8-9)
avatar       AvatarModel (head over upper body over the background plate), render_rays, save/load
losses       photometric L2, SSIM (the lip term), PSNR
train_config TrainNerfConfig, NerfDims, nerf_preset (light: no torch)
train        train_nerf: stages body, head, lips; validation images; resumable checkpoints
tcnn         optional tiny-cuda-nn FullyFusedMLP for the MLPs while training on CUDA (checked against torch first)
render       AvatarRenderer: the engine's rendering API (RGBA [H, W, 4] on the render device)
systems      extract_avatar_views (EXTRACT) and render_avatars (RENDER), scheduled by plugin.nerf_plugin
bench        measure_render: frames per second per size for `syncanim bench`

Importing this package or any module under it never starts Taichi: call
`engine.nerf.kernels.runtime.init_taichi(device)` from a startup system or a training entry first.
"""
