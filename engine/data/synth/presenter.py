"""The assembled presenter: head rig + neck + torso placed in the camera, rendered with landmarks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.face_model import load_canonical_mesh
from engine.data.synth import rig
from engine.data.synth.appearance import FacePhoto, Look, backdrop, recolour_face
from engine.data.synth.render import Renderer, project

NECK_TOP = np.array([0.0, -6.0, -4.6])  # head coordinates, hidden inside the jaw
NECK_BOTTOM = np.array([0.0, -12.0, -4.6])  # head coordinates at rest; the torso's origin sits here


def euler_to_matrix(euler_deg: np.ndarray) -> np.ndarray:
    """(roll, pitch, yaw) in degrees -> R = Rz(roll) Ry(yaw) Rx(pitch), the inverse of the paper's Eq. 1."""
    roll, pitch, yaw = np.deg2rad(np.asarray(euler_deg, np.float64))
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ ry @ rx


def matrix_to_euler(matrix: np.ndarray) -> np.ndarray:
    """The paper's Eq. 1: roll = atan2(R21, R11), pitch = atan2(R32, R33), yaw = atan2(-R31, hypot(R32, R33))."""
    r = np.asarray(matrix)
    roll = np.arctan2(r[1, 0], r[0, 0])
    pitch = np.arctan2(r[2, 1], r[2, 2])
    yaw = np.arctan2(-r[2, 0], np.hypot(r[2, 1], r[2, 2]))
    return np.rad2deg(np.array([roll, pitch, yaw]))


@dataclass(frozen=True)
class BodyPose:
    """Head and torso placement for one frame; camera space (cm), camera at the origin looking down -z."""

    head_euler_deg: np.ndarray  # [3] roll, pitch, yaw (Eq. 1 of the paper)
    head_trans: np.ndarray  # [3] x_cam = R @ x_head + trans
    torso_euler_deg: np.ndarray  # [3]
    torso_trans: np.ndarray  # [3] position of the torso origin (base of the neck)


class Presenter:
    """Builds the subject's meshes once; `render` poses them and draws a frame."""

    def __init__(self, look: Look, photo: FacePhoto, size: int, rng: np.random.Generator, task_path=None) -> None:
        mesh = load_canonical_mesh(task_path)
        self.look = look
        self.size = size
        oval = rig.face_oval(mesh)
        eyes = [np.array(rig.RIGHT_EYE_UPPER + rig.RIGHT_EYE_LOWER[::-1]), np.array(rig.LEFT_EYE_UPPER + rig.LEFT_EYE_LOWER[::-1])]
        texture, skin = recolour_face(photo, oval, eyes, look)
        h, w = texture.shape[:2]
        uv = (photo.landmarks[:468] / np.array([w, h])).astype(np.float32)
        self.head = rig.build_head(
            mesh, look.shape, uv, skin, np.array(look.hair_rgb, np.float32), look.hair_length, look.hair_volume,
            iris_pixels=photo.landmarks[468:478], uv_pixels=photo.landmarks[:468],
        )
        self.torso_rest, torso_tris = rig.build_body(look.neck_radius + 0.4, look.shoulder_half_width, look.chest_depth)
        neck_circle, self.neck_fraction, neck_tris = rig.build_neck(look.neck_radius)
        self.neck_circle = neck_circle
        n_head, n_neck = len(self.head.rest), len(neck_circle)
        self.n_head, self.n_neck = n_head, n_neck
        triangles = np.concatenate([self.head.part.triangles, neck_tris + n_head, torso_tris + n_head + n_neck])
        torso_uv = self.torso_rest[:, :2].copy()
        torso_uv[self.torso_rest[:, 2] < -1.0, 1] = -100.0  # only the front has a neckline
        uv_all = np.concatenate([self.head.part.uv, np.zeros((n_neck, 2)), torso_uv]).astype(np.float32)
        color = np.concatenate([
            # The neck is darker just under the jaw, which shades it.
            self.head.part.color, skin[None] * (0.72 + 0.24 * np.sqrt(self.neck_fraction))[:, None],
            np.tile(np.array(look.clothes_rgb, np.float32), (len(self.torso_rest), 1)),
        ]).astype(np.float32)
        kind = np.concatenate([
            self.head.part.kind, np.full(n_neck, rig.KIND_SKIN), np.full(len(self.torso_rest), rig.KIND_CLOTH),
        ]).astype(np.float32)
        self.texmix_body = np.zeros(n_neck + len(self.torso_rest), np.float32)
        self.triangles = triangles.astype(np.int32)
        self.renderer = Renderer(
            size, look.fovy_deg, texture, backdrop(look, size, rng), np.array(look.light_dir), skin,
            (look.neckline_depth, look.neck_radius * 1.7), look.fabric, self.triangles, uv_all, color, kind,
            tint=look.tint, noise=look.sensor_noise,
        )

    def pose_vertices(self, weights: np.ndarray, pose: BodyPose) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space vertices [V, 3] of the whole body, and the face + iris points [478, 3]."""
        head_v, texmix = rig.deform_head(self.head, weights)
        r_head = euler_to_matrix(pose.head_euler_deg)
        head_cam = head_v @ r_head.T + pose.head_trans
        r_torso = euler_to_matrix(pose.torso_euler_deg)
        torso_cam = self.torso_rest @ r_torso.T + pose.torso_trans
        f = self.neck_fraction[:, None]
        along_head = NECK_TOP + f * (NECK_BOTTOM - NECK_TOP) + self.neck_circle
        from_head = along_head @ r_head.T + pose.head_trans
        from_torso = (along_head - NECK_BOTTOM) @ r_torso.T + pose.torso_trans
        blend = f * f * (3 - 2 * f)
        neck_cam = (1 - blend) * from_head + blend * from_torso
        vertices = np.concatenate([head_cam, neck_cam, torso_cam])
        face = np.concatenate([head_cam[:self.head.face_count], rig.iris_points(self.head, head_v) @ r_head.T + pose.head_trans])
        self._texmix = np.concatenate([texmix, self.texmix_body])
        return vertices, face

    def render(self, weights: np.ndarray, pose: BodyPose, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """weights [K] blendshapes (rig.BLENDSHAPE_NAMES) -> frame [S, S, 3] uint8, landmarks [478, 2] pixels.

        `index` is the frame's number in the clip (it varies the sensor grain).
        """
        vertices, face = self.pose_vertices(weights, pose)
        normals = rig.vertex_normals(vertices, self.triangles)
        frame = self.renderer.draw(vertices, normals, self._texmix, index)
        return frame, project(face, self.look.fovy_deg, self.size, self.size)

    def release(self) -> None:
        self.renderer.release()
