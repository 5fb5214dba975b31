"""`syncanim train`: one command trains an avatar's motion syncers and its NeRF renderer, each from its preset."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from engine.audio.settings import AudioSettings
from engine.data.dataset import Dataset, DatasetError
from engine.io.checkpoint import CheckpointError, read_metadata
from engine.motion.config import EXPRESSION, MOTION_FILE, motion_preset
from engine.nerf.train_config import NERF_FILE

log = logging.getLogger(__name__)
BUNDLED_UNIVERSAL = Path(__file__).resolve().parents[1] / "assets" / "universal"
"""The universal audio-to-expression model shipped with the engine (assets/README.md says how it was made)."""


@dataclass(frozen=True)
class TrainOptions:
    """Train an avatar from a preprocessed dataset: the motion syncers, the NeRF renderer, or both."""

    data: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DATA_DIR")]
    """The dataset folder written by `syncanim preprocess`."""
    avatar_dir: Annotated[Path, tyro.conf.arg(aliases=("-o",), metavar="AVATAR_DIR")]
    """Where the avatar is written (motion.safetensors, nerf.safetensors, logs, validation images)."""
    preset: Literal["test", "cpu", "gpu"] = "cpu"
    """'test': tiny models in seconds (smoke tests); 'cpu': within an hour on 2 cores; 'gpu': the paper's schedule."""
    stage: Literal["all", "motion", "nerf", "blinks"] = "all"
    """Train only the motion syncers, only the renderer (upper body, head, lips), or both in that order. Once both
    parts exist, each run ends by measuring the blink gain (how far past the person's own blink peak the eyelids are
    commanded so the renderer shows them shut; AVATAR_DIR/val/blinks.png): 'blinks' measures only that, for an
    avatar trained before it was measured."""
    time_limit_min: float | None = None
    """Stop each part after this many minutes (it still writes its model); default: the preset's own limit."""
    seed: int = 0
    """Seeds initialisation and sampling, so a rerun reproduces a model."""
    features: Literal["mel", "whisper"] = "mel"
    """Speech features both parts read: 'mel' (log-mel, cheapest) or 'whisper' (Whisper tiny.en's encoder, trained on
    many real voices; about 8 ms more per frame on a CPU core). The engine hears with the features of the avatar it
    shows. README: "Speech features" has the measured comparison."""
    motion: Literal["auto", "universal", "own"] = "auto"
    """Where the avatar's motion (head pose, blinks and brows, mouth and jaw) comes from: 'universal' maps the
    bundled universal audio-to-expression model onto this person's tracked ranges (seconds; the only choice for a
    silent recording), 'own' trains the avatar's own syncers on its recording, starting from the universal model;
    'auto' is 'universal' for a silent recording and 'own' otherwise."""
    universal: Path | None = None
    """The universal model's folder (its motion.safetensors); default: the bundled assets/universal, or
    $SYNCANIM_UNIVERSAL."""
    head_audio: bool = False
    """Condition the head on an audio code of the recording's speech as well as on its tracked expression (the paper's
    a_h). Off by default: the lips follow the tracked mouth, which the motion model drives from any voice. A silent
    recording trains without it either way."""
    lip_loss: Literal["auto", "lpips", "ssim"] = "ssim"
    """The lips stage's perceptual term (Eq. 15) on the lip patch: 'ssim' (1 - SSIM; it kept the mouth's shape best
    in the README's comparison), 'lpips' (AlexNet LPIPS, as the paper; its weights come from
    `python scripts/fetch_eval_weights.py`, which `make setup` runs), or 'auto': LPIPS where its weights are
    installed, else SSIM (logged)."""
    nerf_mlps: Literal["auto", "torch", "tcnn"] = "auto"
    """What computes the renderer's MLPs while training: 'tcnn' tiny-cuda-nn's fused kernels (CUDA and the optional
    `tinycudann` package), 'torch', or 'auto': tcnn wherever it can run."""
    torso_motion: bool = True
    """Measure how each frame's shoulders and chest move apart from the head (a breath, the torso's own turn) and
    train the upper body to follow, so it stays sharp; the avatar then breathes as far as the recording did and
    turns its torso after its head as the recording did.
    The eval report's torso.png plots what was measured. --no-torso-motion: the upper body follows the head pose
    alone, as the paper's does."""
    exposure: bool = True
    """Measure each frame's exposure on the background it shows (webcams re-expose as a person leans in or out)
    and train the avatar at the background plate's, so it learns the person's colours, not their average over the
    take; validation and the eval render each frame with its exposure, as with its tracked pose. --no-exposure:
    the frames are taken as they are."""
    progress: bool = True
    """Show progress bars (--no-progress: none, as in the other commands; the logs are written either way)."""


def run_training(options: TrainOptions) -> list[Path]:
    """Train the parts `options.stage` names; each part resumes from its own checkpoint. Returns the model files."""
    if options.stage == "blinks":
        return _measure_blinks(options, [])
    overrides: dict = {"seed": options.seed, "audio": AudioSettings(extractor=options.features),
                       "progress": options.progress}
    if options.time_limit_min is not None:
        overrides["time_limit_s"] = options.time_limit_min * 60.0
    if options.stage in ("all", "nerf") and options.nerf_mlps == "tcnn":
        from engine.nerf.tcnn import require_tcnn

        require_tcnn()  # before the motion stage's minutes, not after them
    _remind_checks(options.data)
    _warn_other_part(options)
    written = []
    if options.stage in ("all", "motion"):
        written.append(_train_motion(options, overrides))
    if options.stage in ("all", "nerf"):
        from engine.nerf.train import train_nerf
        from engine.nerf.train_config import nerf_preset

        config = nerf_preset(options.preset, options.data, options.avatar_dir, mlp_backend=options.nerf_mlps,
                             torso_motion=options.torso_motion, exposure=options.exposure,
                             head_audio=options.head_audio,
                             lip_loss=options.lip_loss, **overrides)
        written.append(train_nerf(config))
    return _measure_blinks(options, written)


def _measure_blinks(options: TrainOptions, written: list[Path]) -> list[Path]:
    """Measure the avatar's blink gain when both parts exist (engine/eval/blink_gain.py); the motion model keeps it."""
    motion, nerf = options.avatar_dir / MOTION_FILE, options.avatar_dir / NERF_FILE
    if not (motion.is_file() and nerf.is_file()):
        if options.stage == "blinks":
            raise FileNotFoundError(f"{options.avatar_dir}: the blink gain is measured on a trained avatar and "
                                    f"{motion if not motion.is_file() else nerf} is missing; train it first "
                                    f"(`syncanim train {options.data} -o {options.avatar_dir}`)")
        return written
    from engine.eval.blink_gain import calibrate_blinks
    from engine.nerf.kernels.runtime import active_device
    from engine.nerf.plugin import resolve_device

    calibrate_blinks(options.data, options.avatar_dir, active_device() or resolve_device("auto"))
    return written if motion in written else [*written, motion]  # its metadata was rewritten


def universal_dir(options: TrainOptions) -> Path:
    """The universal model to start from: --universal, else $SYNCANIM_UNIVERSAL, else the bundled one."""
    if options.universal is not None:
        return Path(options.universal)
    return Path(os.environ.get("SYNCANIM_UNIVERSAL", BUNDLED_UNIVERSAL))


def _train_motion(options: TrainOptions, overrides: dict) -> Path:
    """The avatar's motion model: the universal one calibrated onto the avatar, or its own syncers trained from it."""
    from engine.motion.train import train_motion
    from engine.motion.universal import calibrate_universal

    silent = Dataset(options.data).meta.silent
    motion = options.motion if options.motion != "auto" else ("universal" if silent else "own")
    if motion == "own" and silent:
        raise DatasetError(f"{options.data} is a silent recording: its own syncers have no speech to learn from; "
                           "use --motion universal (or auto)")
    universal = universal_dir(options)
    model = universal / MOTION_FILE
    if not model.is_file():
        raise FileNotFoundError(f"{model}: no universal motion model there; pass --universal DIR (made by "
                                "`syncanim universal`), or restore the bundled assets/universal")
    if motion == "universal":
        log.info("motion: the universal model %s, calibrated to %s", model, options.data)
        return calibrate_universal(universal, options.data, options.avatar_dir)
    config = motion_preset(options.preset, options.data, options.avatar_dir, blendshapes=EXPRESSION,
                           init_from=universal, **overrides)
    return train_motion(config)


def _warn_other_part(options: TrainOptions) -> None:
    """Say so when the part this run leaves alone was trained on other speech features: the avatar plays only once
    both parts hear alike (retraining them one after the other passes through this state)."""
    if options.stage == "all":
        return
    other = "nerf" if options.stage == "motion" else "motion"
    path = options.avatar_dir / (NERF_FILE if other == "nerf" else MOTION_FILE)
    if not path.is_file():
        return
    try:
        extractor = read_metadata(path).get("features", {}).get("extractor")
    except CheckpointError:
        return
    if extractor is not None and extractor != options.features:
        log.warning("%s was trained on %s speech features and this %s stage trains on %s: the avatar plays once "
                    "both match (`syncanim train --stage %s --features %s`)", path, extractor, options.stage,
                    options.features, other, options.features)


def _remind_checks(data: Path) -> None:
    """Repeat what preprocess's dataset checks found, so a weak result can be traced to its video before hours of
    training (a folder that is no dataset is reported by the stage that opens it)."""
    try:
        checks = Dataset(data).meta.checks
    except DatasetError:
        return
    for finding in checks:
        log.warning("dataset check: %s", finding["message"])
