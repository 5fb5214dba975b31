"""nerf_plugin and its start-up system: Taichi starts on the chosen render device in STARTUP, never at import."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.ecs import Stage, World
from engine.nerf.settings import NerfRuntimeSettings

if TYPE_CHECKING:
    from engine.app import App


@dataclass
class RenderDevice:
    """Resource: the device the NeRF kernels run on ('cpu' or 'cuda'), set by `start_taichi`."""

    name: str = "cpu"


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cpu' and 'cuda' pass through."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def start_taichi(world: World) -> None:
    """Startup: start Taichi on the device NerfRuntimeSettings names and record it as RenderDevice."""
    from engine.nerf.kernels.runtime import init_taichi

    settings = world.resource(NerfRuntimeSettings)
    device = init_taichi(
        resolve_device(settings.device), cache_dir=settings.kernel_cache, cpu_threads=settings.cpu_threads
    )
    world.insert_resource(RenderDevice(device))


def nerf_plugin(app: App) -> None:
    """Insert NerfRuntimeSettings (defaults unless inserted before) and schedule `start_taichi` in STARTUP."""
    world = app.world
    world.insert_resource(world.get_resource(NerfRuntimeSettings) or NerfRuntimeSettings())
    app.add_system(start_taichi, Stage.STARTUP)
