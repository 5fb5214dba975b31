#version 330 core
// Fullscreen quad from gl_VertexID (triangle strip, no vertex buffer); the viewport places it.
// FrameImage rows start at the top while GL textures start at the bottom, hence flip_y.

uniform bool flip_y;
out vec2 uv;

void main() {
    vec2 corner = vec2(float(gl_VertexID & 1), float((gl_VertexID >> 1) & 1));
    uv = vec2(corner.x, flip_y ? 1.0 - corner.y : corner.y);
    gl_Position = vec4(corner * 2.0 - 1.0, 0.0, 1.0);
}
