"""nerf_plugin and its start-up system: Taichi starts on the chosen render device in STARTUP, never at import.

The plugin also schedules the avatar renderer (engine/nerf/systems.py): extract_avatar_views in EXTRACT and
render_avatars in RENDER, before the scene compositor.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.components import ActiveRenderer
from engine.ecs import Stage, World, optional
from engine.nerf.kernels.runtime import init_taichi
from engine.nerf.settings import NerfRenderSettings, NerfRuntimeSettings, RenderDevice
from engine.nerf.systems import NerfAvatars, PoseTrails, extract_avatar_views, render_avatars

if TYPE_CHECKING:
    from engine.app import App


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cpu' and 'cuda' pass through."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def start_taichi(world: World) -> None:
    """Startup: start Taichi on the device NerfRuntimeSettings names and record it as RenderDevice."""
    settings = world.resource(NerfRuntimeSettings)
    device = init_taichi(
        resolve_device(settings.device), cache_dir=settings.kernel_cache, cpu_threads=settings.cpu_threads
    )
    world.insert_resource(RenderDevice(device))


def nerf_plugin(app: App) -> None:
    """Insert NerfRuntimeSettings and NerfRenderSettings (defaults unless inserted before), the avatars' pose trails
    and the ActiveRenderer marker; schedule `start_taichi` in STARTUP and the avatar renderer's extract and render
    systems."""
    world = app.world
    world.insert_resource(world.get_resource(NerfRuntimeSettings) or NerfRuntimeSettings())
    world.insert_resource(world.get_resource(NerfRenderSettings) or NerfRenderSettings())
    world.insert_resource(NerfAvatars())
    world.insert_resource(PoseTrails())
    world.insert_resource(ActiveRenderer("nerf"))
    app.add_system(start_taichi, Stage.STARTUP)
    app.add_system(extract_avatar_views, Stage.EXTRACT)
    app.add_system(render_avatars, Stage.RENDER, before=[optional("engine.display.compose.compose_scene")])
