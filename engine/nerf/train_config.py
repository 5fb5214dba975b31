"""TrainNerfConfig, the renderer's network sizes (NerfDims) and the presets (a light module: no torch at import)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from engine.audio.settings import AudioSettings
from engine.motion.config import EXPRESSION
from engine.training_run import TrainingRun

NERF_FILE = "nerf.safetensors"
"""The trained renderer inside AVATAR_DIR."""


@dataclass(frozen=True)
class NerfDims:
    """Sizes of the head and upper-body fields (stored in the checkpoint, so a model rebuilds itself at load)."""

    head_levels: int = 14
    """Levels per plane of the head's tri-plane hash encoders (the paper: L = 14, F = 1)."""
    head_log2_table: int = 14
    """log2 of the rows per level of the head encoders (the paper: 2^14)."""
    head_base_res: int = 16
    """Coarsest grid resolution of the head encoders (cells per side over the head box)."""
    head_max_res: int = 1024
    """Finest grid resolution of the head encoders."""
    head_hidden: int = 64
    """Width of the head's sigma and attention MLPs."""
    geo_features: int = 32
    """Geometry features the sigma MLP hands to the colour MLP."""
    color_hidden: int = 64
    """Width of the colour MLP."""
    audio_dim: int = 32
    """Size of the audio code a_h (and of the audio attention v_aud, Eq. 14); 0: the head takes no audio."""
    body_levels: int = 16
    """Levels of the upper body's image-plane hash encoder."""
    body_features: int = 2
    """Features per level of the upper-body encoder."""
    body_log2_table: int = 16
    """log2 of the rows per level of the upper-body encoder."""
    body_base_res: int = 16
    """Coarsest resolution of the upper-body encoder (cells per side over the dataset frame)."""
    body_max_res: int = 1024
    """Finest resolution of the upper-body encoder."""
    body_hidden: int = 32
    """Width of the upper body's deformation and colour MLPs."""
    pixel_freqs: int = 6
    """Octaves of the frequency code of image-plane coordinates fed to the upper-body MLPs."""
    anchor_freqs: int = 3
    """Octaves of the frequency code of the projected anchors (the pose condition of Eq. 8)."""


@dataclass(frozen=True)
class TrainNerfConfig(TrainingRun):
    """Train the avatar's renderer (upper body, head, lips) from a dataset made by `syncanim preprocess`."""

    data: Path
    """Dataset folder (meta.json, frames.mkv, tracks.npz, masks.npz, background.png, audio.wav)."""
    avatar_dir: Path
    """Avatar folder: nerf.safetensors, validation images (val/*.png) and nerf_log.jsonl are written here;
    resumable state goes to AVATAR_DIR/.nerf-train/."""
    audio: AudioSettings = field(default_factory=AudioSettings)
    """Speech features the audio network reads (extractor, window, look-ahead); the engine hears with them when it
    shows the avatar."""
    dims: NerfDims = field(default_factory=NerfDims)
    """Network sizes."""
    expression: tuple[str, ...] = EXPRESSION
    """Blendshapes the head is conditioned on (they must exist in the dataset's tracks): the upper face and the
    mouth, as tracked, so the lips learn from the face itself (a silent recording trains them too)."""
    head_audio: bool = False
    """Also condition the head on an audio code of the speech (the paper's a_h), beside the tracked mouth; only for
    recordings with speech. Off: the mouth follows the blendshapes alone, which any voice drives through the motion
    model."""
    body_steps: int = 15000
    """Steps of stage 1, the upper body (the paper: 15k)."""
    head_steps: int = 12000
    """Steps of stage 2, the head over the frozen upper body (the paper: 12k)."""
    lip_steps: int = 4000
    """Steps of stage 3, lip refinement (the paper: 4k); every other step renders a lip patch."""
    rays: int = 65536
    """Rays per step (the paper: 256^2)."""
    lip_patch: int = 64
    """Side of the lip and eye patches in rays (their rectangle sampled on a patch x patch grid)."""
    lip_loss: Literal["auto", "lpips", "ssim"] = "ssim"
    """The lip patch's term of Eq. 15: 'ssim' (1 - SSIM, 11-pixel Gaussian window: structure and contrast of the
    mouth), 'lpips' (AlexNet LPIPS, the paper's; its weights are fetched by `python scripts/fetch_eval_weights.py`),
    or 'auto': LPIPS where its weights are installed and the patch is at least 31 px a side, else SSIM (logged).
    SSIM by measurement (README, "Lips stage"): from one head stage of the bundled presenter, LPIPS gave 2% lower
    lip-crop LPIPS but mouths opening 6% less wide and 11% higher lip LMD on the held-out frames."""
    lip_weight: float | None = None
    """lambda of Eq. 15; default: the chosen term's own (`LIP_WEIGHTS`)."""
    eye_patches: bool = True
    """The lips stage also renders patches (the lip patch's size and term) over the brows and eyes on a quarter of
    its steps, on the frames of the take's blinks (`eye_patch_weights`) read with another frame's mouth and jaw (a
    take's blinks fall while the mouth is shut; patches show the eyes alone). A blink is a few hundred pixels of a few
    frames: from rays alone some trainings of a real face learned it as a lid over a ghost of the iris, too shallow
    to be seen."""
    rare_expression_boost: float = 30.0
    """In the head stages, frames are drawn more often the rarer their expression (a blink, a brow raise, a wide
    mouth), at most this many times as often as the most common ones, so the field learns them
    (`rare_expression_weights`)."""
    audio_copies: int = 0
    """Augmented versions of the dataset's audio trained on beside the recording (other gains, noise floors at
    5-40 dB SNR; engine/audio/augment.py): each step's frame hears one at random, validation hears the recording.
    Off by default: on the demo presenter (cpu preset) 4 copies brought a noisy pause's audio code closer to
    silence's (white noise at -40 dBFS: from 92% to 35% of speech's distance) but rendered worse lips, clean and
    noisy alike (mouth LMD 0.95 -> 1.10 px, lip-sync 0.76 -> 0.73, opening in pauses 0.068 -> 0.075)."""
    upper_face_rays: float = 0.25
    """Share of a head step's rays drawn on the box around the brows and eyes (taken from the half spread over the
    whole frame; the other half stays on the head's box). A blink changes a few hundred pixels of a few percent of
    the frames; with rays spread over the frame and the head the field rendered blinks a third as deep as the frames
    had them (EAR on held-out frames)."""
    lip_rays: float = 0.125
    """Share of a head step's rays drawn on the (grown) lip box, likewise."""
    torso_motion: bool = True
    """Measure each frame's shift of the shoulders and chest that the head pose does not explain (a breath, the
    torso's own turn; engine/nerf/torso_motion.py) and train the upper body read at it, so the field learns one
    sharp torso instead of the average of its positions; the avatar keeps the breath's rise and how the torso
    followed the head for the live engine.
    On the demo presenter three quarters of the validation error sat on the torso without it."""
    exposure: bool = True
    """Measure each frame's exposure against the background plate (engine/nerf/exposure.py) and multiply the
    renders by it wherever they are compared with the frame, so the field learns the plate's exposure."""
    mask_weight: float = 0.05
    """Weight of the opacity losses: upper-body alpha vs. the torso mask, head opacity vs. the head mask."""
    ambient_weight: float = 1e-4
    """Weight of the penalty on audio attention for samples of rays outside the lower face (Sec. 3.3: audio
    attention is lowered outside the lip area)."""
    lr_grid: float = 1e-2
    """AdamW learning rate of the hash grids and the upper-body anchors (the paper: 0.01)."""
    lr_net: float = 1e-3
    """AdamW learning rate of the MLPs and the audio network (the paper: 0.001)."""
    lr_decay: float = 0.1
    """Each stage's learning rates fall exponentially to this fraction by its last step."""
    head_box_cm: tuple[float, float, float, float, float, float] = (-12.0, -15.0, -18.0, 12.0, 15.0, 10.0)
    """(xmin, ymin, zmin, xmax, ymax, zmax) of the head in canonical head space (cm, MediaPipe's face model:
    y up, nose towards +z); the occupancy grid and the tri-plane cover it."""
    grid_resolution: int = 64
    """Cells per side of the head's occupancy grid."""
    steps_per_diagonal: int = 128
    """Ray-marching steps across the head box's diagonal (sets the step length)."""
    max_samples: int = 24
    """Most occupied samples per ray while training."""
    render_grid_alphas: tuple[float, ...] = (0.2, 0.35, 0.5, 0.65, 0.8)
    """Before saving, the occupancy grid keeps only cells where one step is at least this opaque (training marches
    with a permissive grid; the real-time renderer's budget of about 16 samples per ray must not be spent in faint
    fog). Each is tried on a few training frames with the real-time renderer and the best kept: the fog differs by
    avatar (a synthetic presenter did best at 0.2; a real webcam face lost 2 dB at 0.2 to rays that ran out of
    samples before the face, and 1 dB at 0.8 to holes)."""
    grid_every: int = 16
    """Steps between occupancy-grid updates in the head stages."""
    default_view_faces: float = 2.0
    """Height of the default framing's crop (zoom 0) in face heights (the mean face rectangle of the training
    frames), at most the whole frame: a head-and-shoulders portrait. MedScale and MaxScale widen it to the whole
    dataset frame. Narrower crops magnify the face past the detail the frames had."""
    val_frames: int = 3
    """Validation frames rendered (evenly spread over the held-out split) at each validation."""
    mlp_backend: Literal["auto", "torch", "tcnn"] = "auto"
    """What computes the MLPs while training: 'tcnn' tiny-cuda-nn's FullyFusedMLP (CUDA, `tinycudann` installed;
    half precision; hidden layers without biases), 'torch' torch's layers, 'auto' tcnn wherever it can run. The
    saved renderer is the same kind of model either way."""

    def __post_init__(self) -> None:
        shares = {"upper_face_rays": self.upper_face_rays, "lip_rays": self.lip_rays}
        if min(shares.values()) < 0 or sum(shares.values()) > 0.5:
            raise ValueError(f"{shares}: each share must be >= 0 and together at most 0.5 (they come out of the "
                             "half of a step's rays spread over the whole frame; the other half is on the head)")


def nerf_preset(name: Literal["test", "cpu", "gpu"], data: Path, avatar_dir: Path, **overrides) -> TrainNerfConfig:
    """The named preset: 'test' fits tiny fields in seconds, 'cpu' trains within an hour on 2 cores, 'gpu' the
    paper's schedule."""
    base = TrainNerfConfig(data=Path(data), avatar_dir=Path(avatar_dir))
    if name == "test":
        dims = NerfDims(head_levels=6, head_log2_table=10, head_base_res=8, head_max_res=64, head_hidden=32,
                        geo_features=8, color_hidden=32, audio_dim=8, body_levels=6, body_features=2,
                        body_log2_table=10, body_base_res=8, body_max_res=64, body_hidden=16, pixel_freqs=3)
        base = replace(base, dims=dims, body_steps=150, head_steps=150, lip_steps=20, rays=1024, lip_patch=16,
                       grid_resolution=24, steps_per_diagonal=64, max_samples=16, grid_every=8, val_frames=1,
                       val_every=50, checkpoint_every=50, threads=1,
                       audio_copies=1)  # keeps the augmented-audio path of training under test
    elif name == "cpu":
        # Head MLPs half the paper's width: a third of the FLOPs per sample, so 128^2 renders in the CPU's real-time
        # budget (0.4 dB lower val PSNR after 500 head steps on a 24 s synthetic presenter, 32.6 vs 33.0 dB).
        dims = NerfDims(head_levels=12, head_max_res=512, head_hidden=32, geo_features=16, color_hidden=32,
                        body_levels=12, body_log2_table=14, body_max_res=512)
        base = replace(base, dims=dims, body_steps=3000, head_steps=6000, lip_steps=1500, rays=4096, lip_patch=32,
                       val_every=500, checkpoint_every=500, time_limit_s=3300.0)
    elif name == "gpu":
        base = replace(base, time_limit_s=1140.0)  # the budget is 20 minutes on one H100
    else:
        raise ValueError(f"unknown NeRF preset {name!r}; use 'test', 'cpu' or 'gpu'")
    return replace(base, **overrides)
