"""Pinhole camera, ego trajectory and planar projection helpers of the synthetic generator."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FPS",
    "Z_NEAR",
    "Intrinsics",
    "Pose",
    "Trajectory",
    "make_trajectory",
    "plane_homography",
    "inverse_depth_coeffs",
    "clip_polygon_bbox",
    "polygon_boxes",
]

FPS = 17.0  # Cityscapes sequences are recorded at 17 Hz
Z_NEAR = 0.4  # metres; anything closer to the camera is clipped


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of a W x H image (pixel centres at integer coordinates)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def for_size(cls, width: int, height: int, focal_ratio: float = 1.1) -> "Intrinsics":
        """Cityscapes-like lens: f = 1.1 W (about 49 degrees horizontal field of view)."""
        f = focal_ratio * width
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Pose:
    """Camera pose: x_cam = R (X_world - C). World: X right, Y up, Z forward; camera: x right, y down."""

    R: np.ndarray
    C: np.ndarray

    @classmethod
    def from_angles(cls, position: np.ndarray, yaw: float, pitch: float, roll: float) -> "Pose":
        """Yaw > 0 turns right, pitch > 0 looks down, roll > 0 turns the image clockwise."""
        cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
        forward = np.array([sy * cp, -sp, cy * cp])
        right = np.array([cy, 0.0, -sy])
        down = np.cross(right, forward)
        cr, sr = math.cos(roll), math.sin(roll)
        right, down = cr * right + sr * down, -sr * right + cr * down
        return cls(np.stack([right, down, forward]), np.asarray(position, np.float64))


@dataclass(frozen=True)
class Trajectory:
    """Ego poses at frame times; index 0 is the virtual frame -1 used for the flow of frame 0."""

    poses: tuple[Pose, ...]
    speeds: np.ndarray  # m/s at each pose

    def pose(self, frame: int) -> Pose:
        return self.poses[frame + 1]


def make_trajectory(rng: np.random.Generator, frames: int, lane_x: float, height: float,
                    horizon_pitch: float) -> Trajectory:
    """Forward motion with varying speed, weaving yaw, small pitch/roll bumps (frames -1..frames-1)."""
    v0 = rng.uniform(2.0, 14.0)
    accel = rng.uniform(-2.5, 2.5)
    stop_and_go = rng.random() < 0.15
    yaw0 = rng.normal(0.0, math.radians(1.5))
    yaw_amp = rng.uniform(0.0, math.radians(4.0))
    yaw_w, yaw_ph = rng.uniform(0.6, 2.5), rng.uniform(0, 2 * math.pi)
    pitch_amp, pitch_w = rng.uniform(0.0, math.radians(0.6)), rng.uniform(3.0, 9.0)
    roll_amp, roll_w = rng.uniform(0.0, math.radians(0.6)), rng.uniform(1.0, 4.0)
    ph = rng.uniform(0, 2 * math.pi, size=2)
    sub = 8  # integration sub-steps per frame
    n = (frames + 1) * sub + 1
    t = (np.arange(n) / sub - 1.0) / FPS
    speed = np.clip(v0 + accel * t + (3.0 * np.sin(2.0 * t) if stop_and_go else 0.0), 0.0, 16.0)
    yaw = yaw0 + yaw_amp * np.sin(yaw_w * t + yaw_ph)
    # Heading follows the camera yaw with a lag, so the camera weaves within its lane.
    heading = 0.6 * yaw
    dt = 1.0 / (FPS * sub)
    z = np.concatenate([[0.0], np.cumsum(speed[:-1] * np.cos(heading[:-1]) * dt)])
    x = lane_x + np.concatenate([[0.0], np.cumsum(speed[:-1] * np.sin(heading[:-1]) * dt)])
    poses = []
    for i in range(0, n, sub):
        pitch = horizon_pitch + pitch_amp * math.sin(pitch_w * t[i] + ph[0])
        roll = roll_amp * math.sin(roll_w * t[i] + ph[1])
        poses.append(Pose.from_angles(np.array([x[i], height, z[i]]), float(yaw[i]), pitch, roll))
    return Trajectory(tuple(poses), speed[::sub].copy())


def plane_homography(K: np.ndarray, pose: Pose, origin: np.ndarray, e1: np.ndarray,
                     e2: np.ndarray) -> np.ndarray:
    """3x3 map from plane coordinates (s, t, 1) to image pixels, for X = origin + s e1 + t e2."""
    return K @ pose.R @ np.column_stack([e1, e2, origin - pose.C])


def inverse_depth_coeffs(K_inv: np.ndarray, pose: Pose, point: np.ndarray,
                         normal: np.ndarray) -> np.ndarray | None:
    """Coefficients a with 1/z = a . (u, v, 1) on the plane through `point` with `normal`.

    From n.(R^T z K^-1 p + C) = n.point: 1/z = (R n)^T K^-1 p / (n.(point - C)).
    None when the plane passes through the camera centre (seen edge-on).
    """
    d = float(normal @ (point - pose.C))
    if abs(d) < 1e-6:
        return None
    return (K_inv.T @ (pose.R @ normal)) / d


def clip_polygon_bbox(K: np.ndarray, pose: Pose, corners_world: np.ndarray,
                      width: int, height: int) -> tuple[int, int, int, int] | None:
    """Integer pixel box (x0, y0, x1, y1), exclusive ends, of a polygon clipped to z > Z_NEAR."""
    cam = (corners_world - pose.C) @ pose.R.T
    front = cam[:, 2] > Z_NEAR
    if not front.any():
        return None
    if front.all():
        pts = cam
    else:
        clipped = []
        n = len(cam)
        for i in range(n):  # Sutherland-Hodgman against the near plane
            a, b = cam[i], cam[(i + 1) % n]
            if front[i]:
                clipped.append(a)
            if front[i] != front[(i + 1) % n]:
                s = (Z_NEAR - a[2]) / (b[2] - a[2])
                clipped.append(a + s * (b - a))
        pts = np.array(clipped)
    uv = pts @ K.T
    uv = uv[:, :2] / uv[:, 2:3]
    x0 = max(int(math.floor(uv[:, 0].min())), 0)
    y0 = max(int(math.floor(uv[:, 1].min())), 0)
    x1 = min(int(math.ceil(uv[:, 0].max())) + 1, width)
    y1 = min(int(math.ceil(uv[:, 1].max())) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def polygon_boxes(K: np.ndarray, pose: Pose, corners_world: np.ndarray, width: int, height: int
                  ) -> np.ndarray:
    """clip_polygon_bbox for N quads at once ((N, 4, 3) corners): (N, 4) int boxes, -1 rows = unseen."""
    cam = (corners_world - pose.C) @ pose.R.T
    z = cam[..., 2]
    front = z > Z_NEAR
    boxes = np.full((len(cam), 4), -1, np.int64)
    full = front.all(axis=1)
    if full.any():
        uv = cam[full] @ K.T
        uv = uv[..., :2] / uv[..., 2:3]
        lo = np.floor(uv.min(axis=1)).astype(np.int64)
        hi = np.ceil(uv.max(axis=1)).astype(np.int64) + 1
        b = np.stack([np.maximum(lo[:, 0], 0), np.maximum(lo[:, 1], 0),
                      np.minimum(hi[:, 0], width), np.minimum(hi[:, 1], height)], axis=1)
        ok = (b[:, 0] < b[:, 2]) & (b[:, 1] < b[:, 3])
        b[~ok] = -1
        boxes[full] = b
    for i in np.flatnonzero(front.any(axis=1) & ~full):  # crossing the near plane: clip exactly
        box = clip_polygon_bbox(K, pose, corners_world[i], width, height)
        if box is not None:
            boxes[i] = box
    return boxes
