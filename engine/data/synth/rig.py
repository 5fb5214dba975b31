"""The synthetic presenter's geometry: canonical face + skull, hair, inner mouth, neck and torso, and its blendshapes.

Head coordinates are MediaPipe's canonical face space (centimetres, y up, nose toward +z). Blendshape
controls are ARKit-named and act as displacement fields over that mesh; the jaw is a rotation about a
hinge behind the face. Everything is numpy: a frame's deformation costs well under a millisecond.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.data.face_model import CanonicalMesh

BLENDSHAPE_NAMES = (
    "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeBlinkLeft", "eyeBlinkRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthRollLower", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight",
)
BS = {name: index for index, name in enumerate(BLENDSHAPE_NAMES)}

# MediaPipe face-mesh topology (subject's right eye is at -x; "Left" in ARKit names is the subject's left, +x).
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_BROW_INNER, RIGHT_BROW_OUTER = (107, 66, 55, 65), (70, 63, 46, 53)
LEFT_BROW_INNER, LEFT_BROW_OUTER = (336, 296, 285, 295), (300, 293, 276, 283)

JAW_MAX_DEG = 18.0
# The mandible turns about its condyles, just in front of the ears at about the level of the tragus (cm).
JAW_HINGE = np.array([0.0, 0.3, -4.5])
# As the jaw opens the condyles also glide forward and down the articular eminence (cm at jawOpen 1).
JAW_GLIDE = np.array([0.0, -0.4, 0.6])
ROUND_HOLD = (0.4, 0.3)  # fraction of the jaw's lower-lip travel a full pucker / funnel holds back
HEAD_PIVOT = np.array([0.0, -7.0, -3.5])  # the head turns about the top of the neck

# Material kinds understood by the fragment shader.
KIND_SKIN, KIND_HAIR, KIND_CLOTH, KIND_FLAT = 0.0, 1.0, 2.0, 3.0


@dataclass(frozen=True)
class FaceShape:
    """Per-subject face proportions (1.0 / 0.0 = the canonical face)."""

    width: float = 1.0
    height: float = 1.0
    depth: float = 1.0
    jaw_width: float = 0.0  # extra relative width of the lower face
    nose: float = 0.0  # cm added to the nose's forward extent


@dataclass
class MeshPart:
    """Static data of one drawable part; positions are recomputed every frame."""

    triangles: np.ndarray  # [F, 3] int32 into the part's vertices
    uv: np.ndarray  # [V, 2] float32
    color: np.ndarray  # [V, 3] float32 linear-ish RGB in [0, 1]
    texmix: np.ndarray  # [V] float32: 1 = photo texture, 0 = flat colour
    kind: np.ndarray  # [V] float32 material kind


@dataclass
class HeadRig:
    """Head geometry in head coordinates with the data its blendshapes need."""

    rest: np.ndarray  # [V, 3] rest positions: 468 face vertices first, then skull, then inner mouth
    part: MeshPart
    face_count: int
    jaw_weight: np.ndarray  # [V] 0..1, how much a vertex follows the jaw
    lower_lip: np.ndarray  # [V] 0..1
    fields: dict[str, np.ndarray] = field(default_factory=dict)  # blendshape name -> [V, 3] displacement at 1.0
    eyes: tuple = ()  # per eye: (blink blendshape index, lid vertex ids, weights 0..1, drop to the lower lid in cm)
    iris: tuple = ()  # (triangle vertex ids [10, 3], barycentrics [10, 3]) for landmarks 468-477


def _smoothstep(edge0, edge1, x):
    t = np.clip((np.asarray(x, np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(points: np.ndarray, center: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-np.sum((points - center) ** 2, axis=-1) / (2.0 * sigma * sigma))


def face_oval(mesh: CanonicalMesh) -> np.ndarray:
    """The mesh's only boundary loop (36 vertex ids) from the chin, counter-clockwise seen from the front."""
    edges: dict[tuple[int, int], int] = {}
    for a, b, c in mesh.triangles:
        for u, v in ((a, b), (b, c), (c, a)):
            edges[(u, v)] = edges.get((u, v), 0) + 1
    boundary = {u: v for (u, v) in edges if (v, u) not in edges}
    start = min(boundary)
    loop = [start]
    while boundary[loop[-1]] != start:
        loop.append(boundary[loop[-1]])
    loop = np.array(loop[::-1], np.int32)  # boundary edges of CCW triangles run clockwise; flip them
    return np.roll(loop, -int(np.argmin(mesh.vertices[loop, 1])))  # start at the chin


def shaped_face(mesh: CanonicalMesh, shape: FaceShape) -> np.ndarray:
    """[468, 3] canonical vertices with the subject's proportions."""
    v = mesh.vertices.astype(np.float64).copy()
    v[:, 0] *= shape.width
    v[:, 1] *= shape.height
    v[:, 2] = (v[:, 2] - 2.0) * shape.depth + 2.0
    below_mouth = _smoothstep(-3.0, -7.0, v[:, 1])
    v[:, 0] *= 1.0 + shape.jaw_width * below_mouth
    v[:, 2] += shape.nose * _gauss(v[:, :2], np.array([0.0, -0.5]), 1.6)
    return v


def _skull(face: np.ndarray, oval: np.ndarray, hair_length: float, hair_volume: float, rings: int = 14):
    """Rings swept from the face oval over an ellipsoid to a pole behind the head.

    The first ring doubles the oval's 36 points (72 around), so the hair's outline is round. Returns
    positions [R*72 + 1, 3], hair mask [.], triangles [., 3] (ids local to the skull, with the oval as
    ids -36..-1, mapped by the caller), texture coordinates [., 2] (position along the oval, ring
    fraction) for the hair's strands, and for every vertex the two oval positions it derives from
    [., 2] and its ring number [.] (the pole has rings + 1).
    """
    center = np.array([0.0, 1.0, -3.2])
    radii = np.array([8.2, 10.6, 10.4])
    pole = np.array([0.0, 0.15, -1.0])
    pole /= np.linalg.norm(pole)
    n = len(oval)
    first = (face[oval] - center) / radii
    source = np.stack([np.arange(2 * n) // 2, ((np.arange(2 * n) + 1) // 2) % n], 1)
    start = 0.5 * (first[source[:, 0]] + first[source[:, 1]])
    scale0 = np.linalg.norm(start, axis=1)
    start = start / scale0[:, None]
    m = len(start)
    points, fractions = [], []
    for k in range(1, rings + 1):
        f = k / (rings + 1)
        dots = np.clip(np.sum(start * pole, axis=1), -1.0, 1.0)
        omega = np.arccos(dots)[:, None]
        d = (np.sin((1 - f) * omega) * start + np.sin(f * omega) * pole) / np.maximum(np.sin(omega), 1e-6)
        # The oval juts out of the ellipsoid at the chin; relax that excess over the first rings.
        radial = 1.0 + (scale0[:, None] - 1.0) * max(0.0, 1.0 - 2.5 * f)
        points.append(center + radii * d * radial)
        fractions.append(np.full(m, f))
    pts = np.concatenate(points + [center[None] + radii * pole[None]])
    normalized = (pts - center) / radii
    back = np.clip(-normalized[:, 2], 0.0, 1.0)
    hairline = 0.0 - 0.45 * back - 0.55 * hair_length
    hair = _smoothstep(hairline - 0.06, hairline + 0.1, normalized[:, 1])
    # Hair stands off the skull most at the crown and the sides, framing the face.
    side = np.abs(normalized[:, 0])
    around = np.arctan2(normalized[:, 0], normalized[:, 1])
    # Uneven volume (a part, some fullness at one side) keeps the outline from looking like a helmet.
    lumps = 1.0 + 0.18 * np.sin(3.0 * around + 1.3) + 0.1 * np.sin(7.0 * around + 0.4)
    volume = hair_volume * (0.55 + 0.45 * np.clip(normalized[:, 1] + side, 0, 1)) * lumps * hair
    pts = pts + (pts - center) / np.linalg.norm(pts - center, axis=1, keepdims=True) * volume[:, None]
    tris = []
    for i in range(n):
        # Each oval edge fans onto three points of the doubled first ring.
        o_i, o_j = -n + i, -n + (i + 1) % n
        r_a, r_b, r_c = 2 * i, 2 * i + 1, (2 * i + 2) % m
        tris += [(o_i, r_a, r_b), (o_i, r_b, o_j), (o_j, r_b, r_c)]
    for k in range(1, rings):
        for i in range(m):
            j = (i + 1) % m
            a, b, c, d = (k - 1) * m + i, (k - 1) * m + j, k * m + i, k * m + j
            tris += [(a, c, b), (b, c, d)]
    pole_id = rings * m
    for i in range(m):
        tris.append(((rings - 1) * m + i, pole_id, (rings - 1) * m + (i + 1) % m))
    u = np.concatenate([np.arange(m) / m for _ in range(rings)] + [np.zeros(1)])
    v = np.concatenate(fractions + [np.ones(1)])
    sources = np.concatenate([np.tile(source, (rings, 1)), np.zeros((1, 2), int)])
    ring_number = np.concatenate([np.full(m, k) for k in range(1, rings + 1)] + [np.array([rings + 1])])
    return pts, hair, np.array(tris, np.int64), np.stack([u, v], 1), sources, ring_number


def _hair_curtain(hair_length: float, hair_volume: float, columns: int = 40, rows: int = 10):
    """Long hair: a U-shaped sheet hanging from inside the hair shell around the back and sides of the head.

    Empty for short hair (hair_length < 0.45). The open side of the U faces forward and frames the face
    at the jaw; the sheet ends 10-20 cm below the ears, so it falls behind and onto the shoulders.
    """
    if hair_length < 0.45:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 2))
    centre, radii = np.array([0.0, 1.0, -3.2]), np.array([8.2, 10.6, 10.4])
    theta = np.linspace(-np.radians(112), np.radians(112), columns)
    top, bottom = 1.0, -10.0 - 10.0 * min((hair_length - 0.45) / 0.35, 1.0)
    verts, uv = [], []
    for k, y in enumerate(np.linspace(top, bottom, rows)):
        down = k / (rows - 1)
        # Inside the shell at the top, then standing off the neck by the hair's volume, flaring a little.
        grow = 0.85 * hair_volume + (0.4 + 1.6 * down) * _smoothstep(0.0, 0.35, down) - 0.9 * (1 - _smoothstep(0.0, 0.25, down))
        x = (radii[0] + grow) * np.sin(theta)
        z = centre[2] - (radii[2] * 0.8 + grow) * np.cos(theta)
        verts.append(np.stack([x, np.full(columns, y), z], 1))
        uv.append(np.stack([(theta / (2 * np.pi)) % 1.0, np.full(columns, 0.3 + 0.7 * down)], 1))
    tris = []
    for r in range(rows - 1):
        for c in range(columns - 1):
            a, b, d, e = r * columns + c, r * columns + c + 1, (r + 1) * columns + c, (r + 1) * columns + c + 1
            tris += [(a, d, b), (b, d, e)]
    return np.concatenate(verts), np.array(tris, np.int64), np.concatenate(uv)


def _band(xs: np.ndarray, top: np.ndarray, bottom: np.ndarray):
    """A vertical strip mesh: columns at xs, each from point top[i] to bottom[i]; returns verts [2N,3], tris."""
    n = len(xs)
    verts = np.concatenate([top, bottom])
    tris = []
    for i in range(n - 1):
        tris += [(i, n + i, i + 1), (i + 1, n + i, n + i + 1)]
    return verts, np.array(tris, np.int64)


def _inner_mouth(face: np.ndarray):
    """Cavity, upper and lower teeth, tongue behind the lips; returns verts, tris, colours, jaw weights."""
    mid = 0.5 * (face[13] + face[14])
    half = 0.92 * abs(face[308, 0] - face[78, 0]) / 2.0
    xs = np.linspace(-half, half, 13)
    front = mid[2] - 0.45 - 0.55 * (xs / half) ** 2 * 1.6

    def arc(y, depth):
        return np.stack([xs, np.full_like(xs, y), front - depth], 1)

    parts = []
    top, bottom, back = mid[1] + 0.7, mid[1] - 4.0, 1.8
    wide = xs * 1.3

    def follows_jaw(y):
        return _smoothstep(mid[1] + 0.1, mid[1] - 1.0, y)

    # A closed bag behind the lips (back wall, roof, floor, side walls), so no opening shows through the
    # face shell however far the jaw drops.
    wall_v, wall_t = _band(wide, arc(top, back) * [1.3, 1, 1], arc(bottom, back) * [1.3, 1, 1])
    parts.append((wall_v, wall_t, np.array([0.12, 0.04, 0.04]), follows_jaw(wall_v[:, 1])))
    roof_v, roof_t = _band(wide, arc(top, 0.0) * [1.3, 1, 1], arc(top, back) * [1.3, 1, 1])
    parts.append((roof_v, roof_t, np.array([0.34, 0.12, 0.12]), np.zeros(len(roof_v))))
    floor_v, floor_t = _band(wide, arc(mid[1] - 1.2, back) * [1.3, 1, 1], arc(mid[1] - 1.2, 0.2) * [1.3, 1, 1])
    parts.append((floor_v, floor_t, np.array([0.30, 0.10, 0.10]), np.ones(len(floor_v))))
    depths = np.linspace(0.0, back, 6)
    for side in (-1.0, 1.0):
        x = side * 1.3 * half
        z_front = mid[2] - 0.45 - 0.88 * 1.69
        upper = np.stack([np.full(6, x), np.full(6, top), z_front - depths], 1)
        lower = np.stack([np.full(6, x), np.full(6, bottom), z_front - depths], 1)
        side_v, side_t = _band(depths, upper, lower)
        parts.append((side_v, side_t, np.array([0.14, 0.05, 0.05]), follows_jaw(side_v[:, 1])))
    # Teeth: bands just behind the lips; the upper set stays with the skull, the lower one rides the jaw
    # and sits lower, mostly behind the lower lip, as in speech.
    up_v, up_t = _band(xs * 0.9, arc(mid[1] + 0.55, 0.35), arc(mid[1] - 0.05, 0.3))
    parts.append((up_v, up_t, np.array([0.82, 0.79, 0.72]), np.zeros(len(up_v))))
    lo_v, lo_t = _band(xs * 0.85, arc(mid[1] - 0.45, 0.55), arc(mid[1] - 0.95, 0.6))
    parts.append((lo_v, lo_t, np.array([0.72, 0.69, 0.62]), np.ones(len(lo_v))))
    tongue_v, tongue_t = _band(xs * 0.8, arc(mid[1] - 0.8, 0.8), arc(mid[1] - 0.6, 1.7))
    parts.append((tongue_v, tongue_t, np.array([0.52, 0.22, 0.22]), np.ones(len(tongue_v))))
    verts, tris, colors, weights, offset = [], [], [], [], 0
    for v, t, c, w in parts:
        verts.append(v)
        tris.append(t + offset)
        # Darken toward the mouth corners, where less light gets in.
        colors.append(c[None] * np.clip(1.0 - 0.35 * (np.abs(v[:, 0]) / half) ** 2, 0.3, 1.0)[:, None])
        weights.append(w)
        offset += len(v)
    return np.concatenate(verts), np.concatenate(tris), np.concatenate(colors), np.concatenate(weights)


def _mouth_gap_triangles(triangles: np.ndarray) -> np.ndarray:
    """Mask of the triangles that close the mouth between the inner lips (removed to open the mouth)."""
    upper = set(UPPER_INNER_LIP) - {78, 308}
    lower = set(LOWER_INNER_LIP) - {78, 308}
    both = upper | lower | {78, 308}
    return np.array([set(t) <= both and bool(set(t) & upper) and bool(set(t) & lower) for t in triangles.tolist()])


def _polyline_y(contour: np.ndarray, x: np.ndarray) -> np.ndarray:
    order = np.argsort(contour[:, 0])
    return np.interp(x, contour[order, 0], contour[order, 1])


def _eye(face: np.ndarray, upper_ids, lower_ids, blink_index: int):
    """Lid data: vertices above the upper contour move down onto the lower lid line as the eye closes."""
    upper, lower = face[list(upper_ids)], face[list(lower_ids)]
    x0, x1 = upper[:, 0].min(), upper[:, 0].max()
    inside = (face[:, 0] > x0 - 0.05) & (face[:, 0] < x1 + 0.05)
    y_up = _polyline_y(upper, face[:, 0])
    above = face[:, 1] - y_up
    candidates = inside & (above > -0.02) & (above < 1.3) & (np.abs(face[:, 2] - upper[:, 2].mean()) < 1.5)
    ids = np.flatnonzero(candidates)
    distance = np.maximum(above[ids], 0.0)
    weight = np.interp(distance, [0.0, 0.12, 0.4, 0.8, 1.3], [1.0, 0.8, 0.4, 0.1, 0.0])
    # Taper at the corners, which do not move.
    span = (face[ids, 0] - x0) / (x1 - x0)
    weight *= np.clip(np.sin(np.pi * np.clip(span, 0, 1)) * 1.6, 0, 1)
    drop = y_up[ids] - _polyline_y(lower, face[ids, 0])
    return (blink_index, ids, weight, drop)


def _masks(face: np.ndarray):
    mid = 0.5 * (face[13] + face[14])
    half = abs(face[291, 0] - face[61, 0]) / 2.0
    ellipse = np.sqrt((face[:, 0] / (half + 0.3)) ** 2 + ((face[:, 1] - mid[1]) / 1.05) ** 2)
    front = face[:, 2] > mid[2] - 2.5
    lips = (1.0 - _smoothstep(0.75, 1.3, ellipse)) * front
    lip_line = _smoothstep(-0.4, 0.4, mid[1] - face[:, 1])  # 1 below the line between the lips
    lip_line[list(LOWER_INNER_LIP[1:-1])] = 1.0
    lip_line[list(UPPER_INNER_LIP[1:-1])] = 0.0
    return mid, half, lips, lip_line


def _jaw_weights(face: np.ndarray, mid: np.ndarray, half: float, lower_lip: np.ndarray) -> np.ndarray:
    """How much each face vertex rides the mandible: the lower lip and chin fully, cheeks and corners partly.

    The mandible is one bone: below a line that runs from just under the mouth corners back and down to the
    angle of the jaw, the chin and the jaw line move together. Above it the cheek skin stretches, and the mouth
    corners, tied to both lips, go down about 40% as far as the lower lip.
    """
    below = mid[1] - face[:, 1]
    lateral = np.clip(np.abs(face[:, 0]) / half, 0, 3)
    beyond = np.clip(lateral - 0.9, 0, None)  # how far outside the mouth corners, in half mouth widths
    weight = _smoothstep(-0.25 + 0.6 * beyond, 0.4 + 0.9 * beyond, below)
    # The lower lip is carried whole by the jaw except right at the corners, so it does not stretch.
    corner_taper = 1.0 - _smoothstep(0.65, 1.05, lateral)
    weight = np.maximum(weight, np.clip(2.0 * lower_lip, 0, 1) * corner_taper)
    for corner in (61, 291):
        weight = np.maximum(weight, 0.4 * _gauss(face, face[corner], 0.6))
    weight[list(LOWER_INNER_LIP[1:-1])] = 1.0
    weight[list(UPPER_INNER_LIP[1:-1])] = 0.0
    # Cheeks far out to the side above the jaw line barely move.
    weight *= 1.0 - 0.5 * _smoothstep(4.0, 7.5, np.abs(face[:, 0])) * _smoothstep(-7.0, -4.0, face[:, 1])
    return weight


def _fields(face: np.ndarray, mid: np.ndarray, half: float, lips: np.ndarray, lip_line: np.ndarray):
    """Displacement per blendshape at value 1, [468, 3] each (cm)."""
    n = len(face)
    rel = face - mid
    centre = np.clip(1.0 - (face[:, 0] / (half + 0.2)) ** 2, 0, 1)
    fields = {}
    pucker = np.zeros((n, 3))
    pucker[:, 0] = -0.32 * rel[:, 0] * lips
    pucker[:, 1] = -0.25 * rel[:, 1] * lips
    pucker[:, 2] = 0.85 * lips
    fields["mouthPucker"] = pucker
    # A funnel flares the lips outward (the vermilion turns out, most at its outer edge) and pushes them forward,
    # drawing the corners in only a little (a pucker narrows the mouth; a funnel rounds it). With the teeth
    # together the inner edges part only a millimetre: the opening comes from the jaw.
    flare = _smoothstep(0.15, 0.9, np.abs(rel[:, 1]))
    funnel = np.zeros((n, 3))
    funnel[:, 0] = -0.08 * rel[:, 0] * lips
    funnel[:, 1] = np.sign(rel[:, 1]) * (0.08 + 0.17 * flare) * lips * centre
    funnel[:, 2] = (0.6 + 0.3 * flare) * lips
    fields["mouthFunnel"] = funnel
    roll = np.zeros((n, 3))
    roll[:, 1] = 0.22 * lips * lip_line
    roll[:, 2] = -0.4 * lips * lip_line
    fields["mouthRollLower"] = roll
    # A smile lifts the corners, not the middle of the lips: the middle of the lower lip stays on the jaw.
    off_centre = _smoothstep(0.2, 0.8, np.abs(face[:, 0]) / half)
    for name, corner, side in (("Right", 61, -1.0), ("Left", 291, 1.0)):
        c = face[corner]
        near = _gauss(face, c, 1.35) * (face[:, 0] * side > -0.5)
        # The cheek above the corner rises; the skin below the corner line (lower lip, chin) does not.
        broad = _gauss(face, c + np.array([side * 0.6, 0.8, 0.0]), 2.6) * (face[:, 0] * side > -0.2)
        broad *= _smoothstep(c[1] - 0.6, c[1] + 0.4, face[:, 1])
        smile = np.zeros((n, 3))
        corner_pull = near[:, None] * np.array([side * 0.45, 0.5, -0.25])
        corner_pull[:, 1] *= off_centre
        smile += corner_pull
        smile += broad[:, None] * np.array([side * 0.1, 0.25, 0.05])  # cheeks rise a little
        fields[f"mouthSmile{name}"] = smile
        stretch = near[:, None] * np.array([side * 0.55, -0.35, -0.15])
        fields[f"mouthStretch{name}"] = stretch
    inner = sum(_gauss(face, face[i], 1.5) for i in RIGHT_BROW_INNER[:1] + LEFT_BROW_INNER[:1])
    forehead_top = _smoothstep(8.0, 4.5, face[:, 1])
    up = np.zeros((n, 3))
    up[:, 1] = 0.75 * np.clip(inner, 0, 1) * forehead_top
    fields["browInnerUp"] = up
    for name, ids in (("Right", RIGHT_BROW_OUTER), ("Left", LEFT_BROW_OUTER)):
        outer = np.clip(sum(_gauss(face, face[i], 1.4) for i in ids[:2]) / 1.6, 0, 1)
        up = np.zeros((n, 3))
        up[:, 1] = 0.7 * outer * forehead_top
        fields[f"browOuterUp{name}"] = up
    close = np.zeros((n, 3))
    close[:, 1] = -0.12 * lips * (1.0 - lip_line) * centre
    fields["mouthClose"] = close
    return fields


def _iris_attachment(face_uv_pixels: np.ndarray, iris_pixels: np.ndarray, triangles: np.ndarray):
    """Attach the 10 iris landmarks to the face triangles that contain them in the photo (barycentric)."""
    ids, bary = [], []
    a, b, c = (face_uv_pixels[triangles[:, k]] for k in range(3))
    for point in iris_pixels:
        v0, v1, v2 = b - a, c - a, point[None] - a
        d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
        d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
        denom = d00 * d11 - d01 * d01
        denom = np.where(np.abs(denom) < 1e-12, 1e-12, denom)
        w1 = (d11 * d20 - d01 * d21) / denom
        w2 = (d00 * d21 - d01 * d20) / denom
        w0 = 1.0 - w1 - w2
        score = np.minimum(np.minimum(w0, w1), w2)
        best = int(np.argmax(score))
        ids.append(triangles[best])
        bary.append([w0[best], w1[best], w2[best]])
    return np.array(ids), np.array(bary)


def build_head(
    mesh: CanonicalMesh, shape: FaceShape, uv: np.ndarray, skin: np.ndarray, hair: np.ndarray,
    hair_length: float, hair_volume: float, iris_pixels: np.ndarray | None = None,
    uv_pixels: np.ndarray | None = None,
) -> HeadRig:
    """Assemble the head: textured face (uv [468, 2] into the photo), skull with hair, inner mouth.

    iris_pixels [10, 2] and uv_pixels [468, 2] (the photo's landmarks in pixels) attach the irises.
    """
    face = shaped_face(mesh, shape)
    oval = face_oval(mesh)
    skull = _skull(face, oval, hair_length, hair_volume)
    mouth = _inner_mouth(face)
    curtain = _hair_curtain(hair_length, hair_volume)
    spans = _spans(len(face), len(skull[0]), len(mouth[0]), len(curtain[0]))
    rest = np.concatenate([face, skull[0], mouth[0], curtain[0]])
    skull_tris = np.where(skull[2] < 0, oval[(skull[2] + len(oval)) % len(oval)], skull[2] + spans["skull"].start)
    triangles = np.concatenate([
        mesh.triangles[~_mouth_gap_triangles(mesh.triangles)], skull_tris,
        mouth[1] + spans["mouth"].start, curtain[1] + spans["hair"].start,
    ]).astype(np.int32)
    part = _materials(mesh, face, oval, uv, skin, hair, skull, mouth, curtain, spans)
    mid, half, lips, lip_line = _masks(face)
    jaw = np.zeros(len(rest))
    jaw[spans["face"]] = _jaw_weights(face, mid, half, lips * lip_line)
    # Skull rings that start on the lower oval follow the jaw, fading toward the back.
    _, _, _, _, source, ring_number = skull
    from_oval = 0.5 * (jaw[oval[source[:, 0]]] + jaw[oval[source[:, 1]]])
    jaw[spans["skull"]] = from_oval * np.clip(1.0 - 0.15 * ring_number, 0.0, 1.0)
    jaw[spans["mouth"]] = mouth[3]
    lower_lip = np.zeros(len(rest))
    lower_lip[spans["face"]] = lips * lip_line
    fields = {}
    for name, displacement in _fields(face, mid, half, lips, lip_line).items():
        fields[name] = np.zeros((len(rest), 3))
        fields[name][spans["face"]] = displacement
    eyes = (
        _eye(face, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, BS["eyeBlinkRight"]),
        _eye(face, LEFT_EYE_UPPER, LEFT_EYE_LOWER, BS["eyeBlinkLeft"]),
    )
    for _, ids, weight, _ in eyes:
        # Lid skin is painted once the lid covers the eye; the contour itself carries the lash line.
        part.color[ids] = skin * 0.93
        part.color[ids[weight > 0.75]] = np.array([0.09, 0.06, 0.05])
    iris = ()
    if iris_pixels is not None and uv_pixels is not None:
        iris = _iris_attachment(uv_pixels, iris_pixels, mesh.triangles)
    part.triangles = triangles
    return HeadRig(rest, part, len(face), jaw, lower_lip, fields, eyes, iris)


def _spans(n_face: int, n_skull: int, n_mouth: int, n_hair: int) -> dict[str, slice]:
    """Where each part's vertices sit in the head's vertex array."""
    ends = np.cumsum([n_face, n_skull, n_mouth, n_hair])
    starts = np.concatenate([[0], ends[:-1]])
    return {name: slice(int(a), int(b)) for name, a, b in zip(("face", "skull", "mouth", "hair"), starts, ends)}


def _materials(mesh, face, oval, uv, skin, hair, skull, mouth, curtain, spans) -> MeshPart:
    """Colour, photo mix, material kind and texture coordinates of every head vertex (triangles set later)."""
    n = spans["hair"].stop
    skull_hair, skull_uv = skull[1], skull[3]
    # Face: photo texture fading to the flat skin colour over the outer rings of the oval (the photo's
    # own pixels there hold her jaw shadow and background).
    ring = _ring_distance(mesh, oval)
    face_mix = np.interp(ring, [0, 1, 2, 3, 4], [0.0, 0.0, 0.45, 0.85, 1.0])
    # Hair comes down over the top of the forehead and the temples (the canonical oval ends high).
    fringe = _smoothstep(6.2, 7.2, face[:, 1] + 0.06 * face[:, 0] ** 2) * (ring <= 4)
    color = np.zeros((n, 3), np.float32)
    color[spans["face"]] = skin[None] * (1 - fringe[:, None]) + hair[None] * fringe[:, None]
    color[spans["skull"]] = skin[None] * (1 - skull_hair[:, None]) + hair[None] * skull_hair[:, None]
    color[spans["mouth"]] = mouth[2]
    color[spans["hair"]] = hair
    texmix = np.zeros(n, np.float32)
    texmix[spans["face"]] = face_mix * (1 - fringe)
    kind = np.full(n, KIND_SKIN, np.float32)
    kind[spans["skull"]] = np.where(skull_hair > 0.5, KIND_HAIR, KIND_SKIN)
    kind[spans["mouth"]] = KIND_FLAT
    kind[spans["hair"]] = KIND_HAIR
    uv_all = np.zeros((n, 2), np.float32)
    uv_all[spans["face"]] = uv
    uv_all[spans["skull"]] = skull_uv
    uv_all[spans["hair"]] = curtain[2]
    return MeshPart(np.zeros((0, 3), np.int32), uv_all, color, texmix, kind)


def _ring_distance(mesh: CanonicalMesh, oval: np.ndarray) -> np.ndarray:
    """Graph distance (edges) of every face vertex from the oval."""
    n = len(mesh.vertices)
    neighbours = [set() for _ in range(n)]
    for a, b, c in mesh.triangles.tolist():
        neighbours[a] |= {b, c}
        neighbours[b] |= {a, c}
        neighbours[c] |= {a, b}
    distance = np.full(n, 99)
    frontier = list(oval)
    distance[frontier] = 0
    step = 0
    while frontier:
        step += 1
        nxt = []
        for v in frontier:
            for u in neighbours[v]:
                if distance[u] > step:
                    distance[u] = step
                    nxt.append(u)
        frontier = nxt
    return distance


def deform_head(rig: HeadRig, weights: np.ndarray):
    """Head-space positions [V, 3] and texture mix [V] for blendshape values `weights` [K] (BLENDSHAPE_NAMES)."""
    v = rig.rest.copy()
    for name, disp in rig.fields.items():
        value = weights[BS[name]]
        if value != 0.0:
            v += value * disp
    texmix = rig.part.texmix.copy()
    for blink_index, ids, weight, drop in rig.eyes:
        b = float(weights[blink_index])
        if b > 0.0:
            v[ids, 1] -= b * weight * drop
            texmix[ids] = texmix[ids] * (1.0 - b * np.clip(1.6 * weight, 0, 1))
    jaw = float(weights[BS["jawOpen"]])
    close = float(weights[BS["mouthClose"]])
    # mouthClose brings the lips together while the jaw stays open (ARKit meaning): the lower lip
    # follows the jaw less; it is at most jawOpen. Rounding the lips (pucker, funnel) contracts their ring muscle
    # (orbicularis oris), which also holds them together against the jaw: a rounded "oh" or "oo" keeps a smaller
    # aperture than the jaw alone would open.
    rounding = ROUND_HOLD[0] * float(weights[BS["mouthPucker"]]) + ROUND_HOLD[1] * float(weights[BS["mouthFunnel"]])
    held = min(close + min(rounding, 1.0) * jaw, jaw)
    amount = jaw * rig.jaw_weight - held * rig.lower_lip
    if np.any(amount):
        v = _rotate_jaw(v, amount)
    return v, texmix


def _rotate_jaw(v: np.ndarray, amount: np.ndarray) -> np.ndarray:
    angle = np.deg2rad(JAW_MAX_DEG) * amount
    rel = v - JAW_HINGE
    c, s = np.cos(angle), np.sin(angle)
    out = v.copy()
    # Positive angle opens the mouth: points in front of the hinge swing down.
    out[:, 1] = JAW_HINGE[1] + c * rel[:, 1] - s * rel[:, 2]
    out[:, 2] = JAW_HINGE[2] + s * rel[:, 1] + c * rel[:, 2]
    out[:, 1:] += amount[:, None] * JAW_GLIDE[1:]  # the condyles glide forward and down as the jaw opens
    return out


def iris_points(rig: HeadRig, v: np.ndarray) -> np.ndarray:
    """[10, 3] iris landmark positions carried by their face triangles."""
    if not rig.iris:
        return np.zeros((0, 3))
    ids, bary = rig.iris
    return np.einsum("nk,nkd->nd", bary, v[ids])


def build_body(neck_radius: float, shoulder_half_width: float, chest_depth: float, rows: int = 28, cols: int = 48):
    """Torso in torso coordinates (origin at the base of the neck, y up, +z forward): verts [V,3], tris.

    A loft of superellipse cross-sections: the neck width at the top widens over ~7 cm into the
    shoulders, then stays; it runs 34 cm down, well past the bottom of a head-and-shoulders frame.
    """
    depth_h = np.concatenate([np.linspace(0.0, 9.0, rows // 2, endpoint=False), np.linspace(9.0, 34.0, rows - rows // 2)])
    theta = np.linspace(0.0, 2 * np.pi, cols, endpoint=False)
    verts = []
    for h in depth_h:
        s = _smoothstep(0.0, 7.0, h) ** 0.5
        half_w = neck_radius + (shoulder_half_width - neck_radius) * s
        half_d = neck_radius * 0.95 + (chest_depth - neck_radius * 0.95) * _smoothstep(0.0, 10.0, h)
        exponent = 2.0 / (2.0 + 1.6 * s)  # rounder at the neck, boxier at the chest
        x = half_w * np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** exponent
        z = half_d * np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** exponent
        # The shoulders slope down from the neck.
        y = -h - 1.5 * (np.abs(x) / shoulder_half_width) ** 2 * s
        verts.append(np.stack([x, y, z - 1.0], 1))
    verts = np.concatenate(verts)
    tris = ring_strip(rows, cols, outward=True)
    # Cap the top so the shoulders are closed under the neck.
    centre = len(verts)
    verts = np.concatenate([verts, np.array([[0.0, 0.5, -1.0]])])
    for c in range(cols):
        tris.append((c, centre, (c + 1) % cols))
    return verts, np.array(tris, np.int32)


def ring_strip(rows: int, cols: int, outward: bool) -> list[tuple[int, int, int]]:
    """Triangles joining `rows` closed rings of `cols` vertices each (vertex r * cols + c), two per quad;
    `outward` picks the winding, so a strip can face either way."""
    tris = []
    for r in range(rows - 1):
        for c in range(cols):
            a, b = r * cols + c, r * cols + (c + 1) % cols
            d, e = (r + 1) * cols + c, (r + 1) * cols + (c + 1) % cols
            tris += [(a, b, d), (b, e, d)] if outward else [(a, d, b), (b, d, e)]
    return tris


def build_neck(radius: float, rings: int = 8, cols: int = 32):
    """Neck cylinder: ring k at height fraction k/(rings-1); positions are blended per frame."""
    theta = np.linspace(0.0, 2 * np.pi, cols, endpoint=False)
    circle = np.stack([radius * np.sin(theta), np.zeros(cols), radius * 1.05 * np.cos(theta)], 1)
    fractions = np.repeat(np.linspace(0.0, 1.0, rings), cols)
    return np.tile(circle, (rings, 1)), fractions, np.array(ring_strip(rings, cols, outward=False), np.int32)


def vertex_normals(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [V, 3] of a triangle mesh."""
    a, b, c = v[tris[:, 0]], v[tris[:, 1]], v[tris[:, 2]]
    face_n = np.cross(b - a, c - a)
    normals = np.zeros_like(v)
    for k in range(3):
        for d in range(3):
            normals[:, d] += np.bincount(tris[:, k], weights=face_n[:, d], minlength=len(v))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-9)
