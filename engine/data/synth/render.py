"""Offscreen rendering of the synthetic presenter with moderngl on a headless EGL context (llvmpipe on CPU)."""
from __future__ import annotations

import numpy as np

_VERTEX = """
#version 330
uniform mat4 proj;
uniform vec2 jitter;  // NDC offset that pre-compensates the soften pass's half-pixel shift
in vec3 in_pos;
in vec3 in_normal;
in float in_texmix;
in vec2 in_uv;
in vec3 in_color;
in float in_kind;
out vec3 v_pos;
out vec3 v_normal;
out float v_texmix;
out vec2 v_uv;
out vec3 v_color;
flat out int v_kind;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    v_texmix = in_texmix;
    v_uv = in_uv;
    v_color = in_color;
    v_kind = int(in_kind + 0.5);
    gl_Position = proj * vec4(in_pos, 1.0);
    gl_Position.xy += jitter * gl_Position.w;
}
"""

_FRAGMENT = """
#version 330
uniform sampler2D photo;
uniform vec3 light;
uniform vec3 skin;
uniform vec2 neckline;  // depth below the neck base (cm), half width (cm)
uniform vec3 fabric;  // stripe angle (rad), stripes per cm, contrast (0 = plain cloth)
in vec3 v_pos;
in vec3 v_normal;
in float v_texmix;
in vec2 v_uv;
in vec3 v_color;
flat in int v_kind;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_pos);
    if (dot(n, view) < 0.0) n = -n;
    float ndl = max(dot(n, light), 0.0);
    vec3 base = v_color;
    float shade = 0.66 + 0.42 * ndl;
    float spec = 0.0;
    if (v_kind == 0) {
        if (v_texmix > 0.0) base = mix(v_color, texture(photo, v_uv).rgb, v_texmix);
        spec = 0.06 * pow(max(dot(reflect(-light, n), view), 0.0), 16.0) * (1.0 - v_texmix);
    } else if (v_kind == 1) {
        // Hair: strands run along the elevation; a broad sheen moves with the light.
        float u = v_uv.x * 6.2831853;
        float strands = 0.6 * sin(u * 61.0 + 3.0 * v_uv.y) + 0.4 * sin(u * 23.0 - 5.0 * v_uv.y);
        base *= 0.95 + 0.05 * strands;
        spec = 0.16 * pow(max(dot(reflect(-light, n), view), 0.0), 10.0);
    } else if (v_kind == 2) {
        float w = neckline.y;
        float edge = neckline.x * (1.0 - clamp(v_uv.x * v_uv.x / (w * w), 0.0, 1.0));
        float is_skin = (1.0 - smoothstep(edge - 0.4, edge + 0.4, -v_uv.y)) * (1.0 - smoothstep(w - 0.4, w, abs(v_uv.x)));
        float across = cos(fabric.x) * v_uv.y + sin(fabric.x) * v_uv.x;
        float stripes = smoothstep(-0.3, 0.3, sin(6.2831853 * fabric.y * across));
        base = mix(base * (1.0 - fabric.z * stripes), skin, is_skin);
    } else {
        shade = 0.85 + 0.15 * ndl;
    }
    f_color = vec4(base * shade + spec, 1.0);
}
"""

_SOFTEN_FRAGMENT = """
#version 330
uniform sampler2D scene;
uniform sampler2D backdrop;
uniform vec2 texel;
uniform vec3 tint;  // the camera's white balance
uniform float noise;  // sensor noise amplitude (fraction of full scale)
uniform float frame;
in vec2 v_uv;
out vec4 f_color;
float grain(vec2 p) { return fract(sin(dot(p, vec2(12.9898, 78.233))) * 43758.5453) - 0.5; }
void main() {
    // One bilinear tap at the corner of four pixels averages them: a 2x2 box filter (anti-aliasing and a
    // phone lens's softness) for a quarter of the cost of four taps. It moves the image half a pixel
    // right and up, which the scene's jitter has moved left and down beforehand.
    vec2 uv = vec2(v_uv.x, 1.0 - v_uv.y);
    // The scene has alpha 0 where nothing was drawn; the static backdrop fills in there (one pass less).
    vec4 person = texture(scene, uv + 0.5 * texel);
    vec3 colour = (person.rgb + (1.0 - person.a) * texture(backdrop, vec2(uv.x, 1.0 - uv.y) + vec2(0.5, -0.5) * texel).rgb) * tint;
    // Grain that changes every frame, as a phone sensor's does; a hash of pixel and frame, so reruns match.
    vec2 seed = gl_FragCoord.xy + vec2(mod(frame, 61.0) * 17.0, mod(frame, 53.0) * 29.0);
    colour += noise * vec3(grain(seed), grain(seed + 7.1), grain(seed + 13.7));
    f_color = vec4(colour, 1.0);
}
"""

_BACKDROP_VERTEX = """
#version 330
in vec2 in_xy;
out vec2 v_uv;
void main() { v_uv = vec2(in_xy.x * 0.5 + 0.5, 0.5 - in_xy.y * 0.5); gl_Position = vec4(in_xy, 0.999, 1.0); }
"""



def perspective(fovy_deg: float, aspect: float, near: float = 5.0, far: float = 1000.0) -> np.ndarray:
    """OpenGL projection [4, 4] for a camera at the origin looking down -z, y up."""
    f = 1.0 / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([
        [f / aspect, 0, 0, 0], [0, f, 0, 0],
        [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0],
    ])


def project(points: np.ndarray, fovy_deg: float, width: int, height: int) -> np.ndarray:
    """Camera-space points [N, 3] (cm) -> pixel coordinates [N, 2] (x right, y down, pixel centres at +0.5)."""
    f = (height / 2.0) / np.tan(np.deg2rad(fovy_deg) / 2.0)
    z = -points[:, 2]
    x = width / 2.0 + f * points[:, 0] / z
    y = height / 2.0 - f * points[:, 1] / z
    return np.stack([x, y], 1)


class Renderer:
    """Draws one mesh (static topology, per-frame positions) over a static backdrop; returns RGB frames."""

    def __init__(
        self, size: int, fovy_deg: float, photo: np.ndarray, backdrop: np.ndarray, light: np.ndarray,
        skin: np.ndarray, neckline: tuple[float, float], fabric: tuple[float, float, float], triangles: np.ndarray, uv: np.ndarray,
        color: np.ndarray, kind: np.ndarray, tint: tuple[float, float, float] = (1.0, 1.0, 1.0), noise: float = 0.0,
    ) -> None:
        import moderngl

        self.size = size
        self.ctx = moderngl.create_standalone_context(backend="egl")
        ctx = self.ctx
        self.program = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self.program["proj"].write(perspective(fovy_deg, 1.0).T.astype("f4").tobytes())
        self.program["jitter"].value = (-1.0 / size, -1.0 / size)
        self.program["light"].value = tuple(float(c) for c in light)
        self.program["skin"].value = tuple(float(c) for c in skin)
        self.program["neckline"].value = tuple(float(c) for c in neckline)
        self.program["fabric"].value = tuple(float(c) for c in fabric)
        self.photo = ctx.texture(photo.shape[1::-1], 3, np.ascontiguousarray(photo).tobytes())
        self.photo.build_mipmaps()
        self.photo.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        self.photo.use(0)
        self.program["photo"].value = 0
        self.n_vertices = len(uv)
        static = np.concatenate([uv, color, kind[:, None]], 1).astype("f4")
        self.static_vbo = ctx.buffer(static.tobytes())
        self.dynamic_vbo = ctx.buffer(reserve=self.n_vertices * 7 * 4, dynamic=True)
        self.ibo = ctx.buffer(np.ascontiguousarray(triangles, dtype="i4").tobytes())
        self.vao = ctx.vertex_array(self.program, [
            (self.dynamic_vbo, "3f 3f 1f", "in_pos", "in_normal", "in_texmix"),
            (self.static_vbo, "2f 3f 1f", "in_uv", "in_color", "in_kind"),
        ], self.ibo)
        self.backdrop = ctx.texture(backdrop.shape[1::-1], 3, np.ascontiguousarray(backdrop).tobytes())
        self.backdrop.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.backdrop.use(1)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4")
        # MSAA on llvmpipe costs about 3x the whole frame; a soft post filter is far cheaper.
        self.scene = ctx.texture((size, size), 4)
        self.scene.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.scene_fbo = ctx.framebuffer(color_attachments=[self.scene], depth_attachment=ctx.depth_renderbuffer((size, size)))
        soften = ctx.program(vertex_shader=_BACKDROP_VERTEX, fragment_shader=_SOFTEN_FRAGMENT)
        soften["scene"].value = 2
        soften["backdrop"].value = 1
        soften["texel"].value = (1.0 / size, 1.0 / size)
        soften["tint"].value = tuple(float(c) for c in tint)
        soften["noise"].value = float(noise)
        self.soften = soften
        self.soften_vao = ctx.vertex_array(soften, [(ctx.buffer(quad.tobytes()), "2f", "in_xy")])
        self.output = ctx.framebuffer(color_attachments=[ctx.renderbuffer((size, size), 4)])

    def draw(self, positions: np.ndarray, normals: np.ndarray, texmix: np.ndarray, frame: int = 0) -> np.ndarray:
        """positions, normals [V, 3] in camera space (cm), texmix [V] -> frame [size, size, 3] uint8.

        `frame` (the frame's index) varies the sensor grain from frame to frame.
        """
        import moderngl

        data = np.concatenate([positions, normals, texmix[:, None]], 1).astype("f4")
        self.dynamic_vbo.write(data.tobytes())
        self.scene_fbo.use()
        self.ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.ctx.disable(moderngl.CULL_FACE)
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.vao.render(moderngl.TRIANGLES)
        self.ctx.disable(moderngl.DEPTH_TEST)
        self.output.use()
        self.scene.use(2)
        self.backdrop.use(1)
        self.soften["frame"].value = float(frame)
        self.soften_vao.render(moderngl.TRIANGLE_STRIP)
        raw = self.output.read(components=3, alignment=1)
        return np.frombuffer(raw, np.uint8).reshape(self.size, self.size, 3)[::-1]

    def release(self) -> None:
        self.ctx.release()
