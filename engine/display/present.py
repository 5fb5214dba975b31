"""Present stage: FrameImage -> texture -> the canvas, letterboxed over the background (shaders/present.*)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.components import FrameImage
from engine.display.settings import DisplaySettings
from engine.display.target import GLTarget
from engine.display.upload import FrameUpload
from engine.ecs import World

SHADER_DIR = Path(__file__).resolve().parents[2] / "shaders"


def load_program(ctx: Any, name: str) -> Any:
    """Compile shaders/<name>.vert + shaders/<name>.frag into a moderngl program."""
    sources = {}
    for kind in ("vert", "frag"):
        path = SHADER_DIR / f"{name}.{kind}"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shader missing; run from a full checkout of the project")
        sources[kind] = path.read_text()
    return ctx.program(vertex_shader=sources["vert"], fragment_shader=sources["frag"])


def fit_rect(src: tuple[int, int], dst: tuple[int, int], mode: str = "fit") -> tuple[int, int, int, int]:
    """Where an image of size `src` = (w, h) goes inside `dst` = (w, h): (x, y, w, h), centred.

    'fit' letterboxes (whole image visible), 'fill' covers `dst` (the rect may extend past it and is
    clipped), 'stretch' is `dst` itself. y counts from the bottom, as GL viewports do; centred rects
    are symmetric, so the same numbers work from the top.
    """
    src_w, src_h = src
    dst_w, dst_h = dst
    if mode == "stretch" or src_w * dst_h == src_h * dst_w:
        return 0, 0, dst_w, dst_h
    scale_w, scale_h = dst_w / src_w, dst_h / src_h
    scale = min(scale_w, scale_h) if mode == "fit" else max(scale_w, scale_h)
    width, height = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    return (dst_w - width) // 2, (dst_h - height) // 2, width, height


class Presenter:
    """Resource: the GL objects that draw a texture scaled into a framebuffer (made on first present)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.program = load_program(ctx, "present")
        # No vertex buffer: the vertex shader builds the quad from gl_VertexID.
        self.vao = ctx.vertex_array(self.program, [])
        self.upload = FrameUpload(ctx)
        self.frames = 0
        """Frames presented so far."""

    def draw(
        self, texture: Any, framebuffer: Any, settings: DisplaySettings, *, flip_y: bool, keep_alpha: bool,
        size: tuple[int, int] | None = None, premultiply: bool = False,
    ) -> None:
        """Clear `framebuffer` to the background and draw `texture` placed by settings.scale.

        `size` overrides the framebuffer's size (the window's default framebuffer after a resize).
        """
        fb_size = tuple(size or framebuffer.size)
        framebuffer.use()
        self.ctx.scissor = None
        self.ctx.disable(self.ctx.BLEND | self.ctx.DEPTH_TEST | self.ctx.CULL_FACE)
        framebuffer.viewport = (0, 0, *fb_size)
        framebuffer.clear(*((0.0, 0.0, 0.0, 0.0) if premultiply else settings.clear_rgba))
        x, y, width, height = fit_rect(texture.size, fb_size, settings.scale)
        framebuffer.viewport = (x, y, width, height)
        filt = self.ctx.LINEAR if settings.smooth else self.ctx.NEAREST
        texture.filter = (filt, filt)
        texture.repeat_x = texture.repeat_y = False
        texture.use(0)
        self.program["frame"].value = 0
        self.program["flip_y"].value = flip_y
        self.program["keep_alpha"].value = keep_alpha
        self.program["premultiply"].value = premultiply
        background = settings.clear_rgba[:3]
        self.program["background"].value = background
        self.vao.render(self.ctx.TRIANGLE_STRIP, vertices=4)
        framebuffer.viewport = (0, 0, *fb_size)

    def release(self) -> None:
        self.upload.release()
        self.vao.release()
        self.program.release()


def present_frame(world: World) -> None:
    """Draw the FrameImage onto the canvas (background only until something is rendered)."""
    target = world.get_resource(GLTarget)
    if target is None:
        return  # no runner has made a GL target: the app is being stepped without a display
    presenter = world.get_resource(Presenter)
    if presenter is None or presenter.ctx is not target.ctx:
        presenter = Presenter(target.ctx)
        world.insert_resource(presenter)
    settings = world.resource(DisplaySettings)
    image = world.get_resource(FrameImage)
    if image is None or image.rgba is None:
        target.fbo.use()
        target.fbo.clear(*settings.clear_rgba)
    else:
        texture = presenter.upload.upload(image.rgba)
        presenter.draw(
            texture, target.fbo, settings, flip_y=True, keep_alpha=settings.background == "transparent"
        )
    presenter.frames += 1
    target.version += 1
