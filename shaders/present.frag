#version 330 core
// Straight-alpha frame over the background: composited to opaque, or passed through with its alpha
// when the output is transparent (premultiplied for a compositing window manager, straight for files).

uniform sampler2D frame;
uniform bool keep_alpha;
uniform bool premultiply;
uniform vec3 background;
in vec2 uv;
out vec4 color;

void main() {
    vec4 texel = texture(frame, uv);
    if (keep_alpha) {
        color = premultiply ? vec4(texel.rgb * texel.a, texel.a) : texel;
    } else {
        color = vec4(mix(background, texel.rgb, texel.a), 1.0);
    }
}
