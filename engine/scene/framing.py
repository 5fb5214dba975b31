"""Framing systems: ease framing transitions (Stage.UPDATE) and lay avatars' screen rectangles out in pixels."""
from __future__ import annotations

from engine.components import AvatarViewport, Canvas, Framing
from engine.ecs import World
from engine.scene.components import FramingTween, ScreenRect
from engine.time import Time


def ease_in_out(t: float) -> float:
    """Cubic ease-in-out on [0, 1]: starts and arrives with zero speed, so a camera move never jerks."""
    t = min(max(t, 0.0), 1.0)
    return 4 * t * t * t if t < 0.5 else 1 - (-2 * t + 2) ** 3 / 2


def ease_framing(world: World) -> None:
    """Move every Framing along its FramingTween; drop the tween once it has arrived."""
    now = world.resource(Time).elapsed
    for entity, framing, tween in world.query(Framing, FramingTween):
        progress = 1.0 if tween.duration_s <= 0 else (now - tween.start_s) / tween.duration_s
        framing.zoom = tween.start_zoom + (tween.end_zoom - tween.start_zoom) * ease_in_out(progress)
        if progress >= 1.0 - 1e-6:
            framing.zoom = tween.end_zoom
            world.commands.remove(entity, FramingTween)


def pixel_rect(rect: ScreenRect, size: tuple[int, int]) -> AvatarViewport:
    """A normalised ScreenRect -> whole pixels inside a canvas of `size` = (width, height), at least 1x1."""
    width, height = size
    x0 = min(max(round(rect.x * width), 0), width - 1)
    y0 = min(max(round(rect.y * height), 0), height - 1)
    x1 = min(max(round((rect.x + rect.width) * width), x0 + 1), width)
    y1 = min(max(round((rect.y + rect.height) * height), y0 + 1), height)
    return AvatarViewport(x0, y0, x1 - x0, y1 - y0)


def lay_out_avatars(world: World) -> None:
    """Post-update: each ScreenRect -> AvatarViewport for the current canvas (the size the renderer renders at)."""
    canvas = world.get_resource(Canvas)
    if canvas is None:
        return  # no display: nothing to lay out on
    size = (canvas.width, canvas.height)
    for entity, rect in world.query(ScreenRect):
        viewport = pixel_rect(rect, size)
        current = world.get(entity, AvatarViewport)
        if current is None:
            world.commands.insert(entity, viewport)
        elif vars(current) != vars(viewport):
            current.x, current.y = viewport.x, viewport.y
            current.width, current.height = viewport.width, viewport.height
