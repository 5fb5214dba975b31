"""The NeRF renderer's frame systems: snapshot each avatar's state (EXTRACT), render it (RENDER).

    EXTRACT  extract_avatar_views: frozen AvatarViews (pose, blendshapes, audio window, framing, size per avatar)
    RENDER   render_avatars: AvatarViews -> each avatar's AvatarImage (the display's compositor frames them)

The render system reads only the snapshot, never live components. Models load on first use per avatar folder
and stay in the NerfAvatars resource; torch and Taichi are imported inside the systems, so this module is light.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.features import FeatureSpec
from engine.audio.plugin import voice_features
from engine.components import Avatar, AvatarImage, AvatarViewport, Framing
from engine.ecs import Entity, World
from engine.io.checkpoint import read_metadata
from engine.motion.components import MotionController, MotionState
from engine.nerf.settings import HeadScale, NerfRenderSettings, QualitySettings, RenderDevice, chosen_quality
from engine.time import Time


@dataclass(frozen=True)
class AvatarView:
    """One avatar's frozen render inputs."""

    entity: Entity
    folder: Path
    euler_deg: np.ndarray | None
    """[3] degrees; None: the avatar's rest pose (nothing drives it yet)."""
    trans: np.ndarray | None
    """[3] cm; None: the rest pose."""
    blendshapes: np.ndarray | None
    """[K] values named by `names`; None: all zero."""
    names: tuple[str, ...]
    window: np.ndarray | None
    """[W, D] raw speech features of the avatar's voice at the step's time; None: no audio yet."""
    zoom: float
    size: tuple[int, int]
    """(width, height) in pixels."""
    breath: float = 0.0
    """-1 (breathed out) .. 1 (breathed in); 0 when nothing drives the avatar."""
    trail_times: np.ndarray | None = None
    """[N] motion times (s) of the avatar's recent head poses, the last one now; None when nothing drives it."""
    trail_poses: np.ndarray | None = None
    """[N, 6] those poses (euler degrees, trans cm): the torso turns after the head (AvatarSpec.torso_follow)."""
    head_scale: HeadScale = "auto"
    """Fraction of the output resolution the head is marched at (QualitySettings, else NerfRenderSettings)."""
    precision: str = "auto"
    """Precision of the MLP matmuls (QualitySettings, else NerfRenderSettings)."""


TRAIL_S = 0.5
"""Seconds of head poses kept per avatar: more than the torso's longest lag (torso_motion.FOLLOW_LAGS_S)."""


@dataclass
class PoseTrails:
    """Resource: each avatar's recent head poses, (motion time, [6] pose) oldest first, for the torso's turn."""

    trails: dict[Entity, deque] = field(default_factory=dict)

    def update(self, entity: Entity, time_s: float, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Record the pose of a motion step (once per step) and return the trail as (times [N], poses [N, 6])."""
        trail = self.trails.setdefault(entity, deque())
        if trail and time_s < trail[-1][0]:
            trail.clear()  # the clock went back (a scene restart): an old trail would turn the torso wrongly
        if not trail or time_s > trail[-1][0]:
            trail.append((time_s, np.asarray(pose, np.float64)))
        while len(trail) > 1 and trail[1][0] <= time_s - TRAIL_S:
            trail.popleft()  # one pose at or before the horizon stays, for lags that reach back that far
        return np.array([t for t, _ in trail]), np.stack([p for _, p in trail])

    def keep_only(self, entities: set[Entity]) -> None:
        """Forget despawned avatars."""
        for entity in set(self.trails) - entities:
            del self.trails[entity]


@dataclass(frozen=True)
class AvatarViews:
    """Resource: the snapshot `render_avatars` draws."""

    frame: int
    views: tuple[AvatarView, ...]


@dataclass
class NerfAvatars:
    """Resource: loaded AvatarRenderers by (nerf.safetensors path, precision, head_scale); renderers of one path
    share its model (only the rearranged weights of another precision are copies)."""

    renderers: dict[tuple[Path, str, HeadScale], Any] = field(default_factory=dict)


def _window(world: World, entity: Entity, time_s: float) -> np.ndarray | None:
    controller = world.get(entity, MotionController)
    ring = voice_features(world, entity, controller.voice if controller is not None else None)
    hit = ring.at(time_s) if ring is not None else None
    return None if hit is None else np.array(hit[2], np.float32, copy=True)


def extract_avatar_views(world: World) -> None:
    """Snapshot every Avatar: its MotionState (if any), audio window, Framing zoom and output size."""
    settings = world.get_resource(NerfRenderSettings) or NerfRenderSettings()
    operator = world.get_resource(QualitySettings)
    time = world.get_resource(Time)
    trails = world.resource(PoseTrails)
    views = []
    for entity, avatar in world.query(Avatar):
        state = world.get(entity, MotionState)
        trail = (None, None) if state is None else trails.update(
            entity, state.time_s, np.concatenate([state.euler_deg, state.trans]))
        framing = world.get(entity, Framing)
        viewport = world.get(entity, AvatarViewport)
        size = (viewport.width, viewport.height) if viewport and viewport.width > 0 else tuple(settings.size)
        at = state.time_s if state is not None else (time.elapsed if time else 0.0)
        head_scale, precision = chosen_quality(settings, world.get(entity, QualitySettings), operator)
        views.append(AvatarView(
            entity, Path(avatar.folder),
            None if state is None else np.array(state.euler_deg, np.float32),
            None if state is None else np.array(state.trans, np.float32),
            None if state is None else np.array(state.blendshapes, np.float32),
            () if state is None else tuple(state.blendshape_names),
            _window(world, entity, at), framing.zoom if framing else 0.0, size,
            0.0 if state is None else float(state.breath), *trail, head_scale, precision,
        ))
    trails.keep_only({view.entity for view in views})
    world.insert_resource(AvatarViews(time.frame if time else -1, tuple(views)))


def _check_features(world: World, path: Path) -> None:
    """Refuse an avatar whose audio network was trained on other speech features than the engine computes (a head
    without audio input hears nothing: any features do)."""
    engine_spec = world.get_resource(FeatureSpec)
    metadata = read_metadata(path)
    stored = metadata.get("features")
    hears = metadata.get("spec", {}).get("dims", {}).get("audio_dim", 1) > 0
    if engine_spec is not None and stored is not None and hears:
        engine_spec.check(stored, str(path))


def _renderer(world: World, view: AvatarView):
    from engine.nerf.avatar import nerf_path
    from engine.nerf.render import AvatarRenderer

    settings = world.get_resource(NerfRenderSettings) or NerfRenderSettings()
    cache = world.get_resource(NerfAvatars)
    if cache is None:
        cache = NerfAvatars()
        world.insert_resource(cache)
    path = nerf_path(view.folder).resolve()
    key = (path, view.precision, view.head_scale)
    renderer = cache.renderers.get(key)
    if renderer is None:
        options = dict(per_round=settings.per_round, max_rounds=settings.max_rounds, precision=view.precision,
                       t_thresh=settings.t_thresh, head_scale=view.head_scale)
        loaded = next((r for (p, *_), r in cache.renderers.items() if p == path), None)
        if loaded is not None:  # the same weights at another quality: share the model
            renderer = AvatarRenderer(loaded.model, **options)
        else:
            _check_features(world, path)
            device = world.get_resource(RenderDevice)
            renderer = AvatarRenderer.load(path, device.name if device else "cpu", **options)
        cache.renderers[key] = renderer
    return renderer


def render_avatars(world: World) -> None:
    """Render each snapshot view into its avatar's AvatarImage (the display's compositor makes the frame of them)."""
    from engine.nerf.torso_motion import follow_shift

    views = world.get_resource(AvatarViews)
    if views is None:
        return
    settings = world.get_resource(NerfRenderSettings) or NerfRenderSettings()
    for view in views.views:
        renderer = _renderer(world, view)
        spec = renderer.spec
        turn = 0.0
        if view.trail_times is not None:
            turn = settings.torso_follow * follow_shift(spec.torso_follow, view.trail_times, view.trail_poses)
        rgba = renderer.render(
            spec.rest_euler if view.euler_deg is None else view.euler_deg,
            spec.rest_trans if view.trans is None else view.trans,
            {} if view.blendshapes is None else view.blendshapes, view.names or None, view.window,
            size=view.size, zoom=view.zoom, background=settings.background,
            torso_shift=(turn, settings.breathing * spec.breathing_rise * view.breath),
        )
        # The renderer's output buffer is shared by every avatar of that model and size: keep a copy per avatar.
        image = world.get(view.entity, AvatarImage)
        if image is None:
            image = AvatarImage(rgba.clone(), views.frame)
            world.commands.insert(view.entity, image)
        elif getattr(image.rgba, "shape", None) == rgba.shape and hasattr(image.rgba, "copy_"):
            image.rgba.copy_(rgba)
            image.frame = views.frame
        else:
            image.rgba, image.frame = rgba.clone(), views.frame
