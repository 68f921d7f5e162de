"""Frame renderer of the generator: z-buffered planar surfaces over sky and ground, exact labels and flow."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from gsvnet_ros.data.synth.agents import Footprint, agents
from gsvnet_ros.data.synth.camera import (FPS, Intrinsics, Pose, Trajectory, polygon_boxes,
                                          inverse_depth_coeffs, make_trajectory, plane_homography)
from gsvnet_ros.data.synth.ground import GroundStyle, ground_homography, render_ground
from gsvnet_ros.data.synth.post import Sensor, hood_mask, make_sensor
from gsvnet_ros.data.synth.layout import static_surfaces
from gsvnet_ros.data.synth.scene import Lighting, Street, Surface, make_lighting, make_street
from gsvnet_ros.data.synth.textures import EGO, SKY, Texture, ground_tiles, random_color

__all__ = ["Scene", "RenderedFrame", "build_scene", "render_frame", "visible_in_previous", "SKY_ID",
           "GROUND_ID", "HOOD_ID"]

SKY_ID, GROUND_ID, HOOD_ID = 0, 1, 2  # surface ids below the first planar surface (3)
_SKY_OFFSET = np.array([-2750.0, 1700.0, 1000.0])  # sky panel corner relative to the camera
_SKY_SPAN = (5500.0, 1900.0)  # metres covered by the sky panel (moves with the camera)


@dataclass
class Scene:
    """Everything needed to render any frame of one sequence, deterministic from its seed."""

    intr: Intrinsics
    trajectory: Trajectory
    street: Street
    lighting: Lighting
    ground: GroundStyle
    surfaces: list[Surface]
    footprints: list[Footprint]
    sky: Texture
    hood: np.ndarray | None
    hood_colour: np.ndarray
    sensor: Sensor
    seed: int

    def __post_init__(self) -> None:
        """Batched surface geometry: origins/velocities (N, 3), corner offsets (N, 4, 3), axes."""
        self.origins = np.array([s.origin for s in self.surfaces]).reshape(-1, 3)
        self.velocities = np.array([s.velocity for s in self.surfaces]).reshape(-1, 3)
        self.corner_offsets = np.array([s.corners_at(0.0) - s.origin for s in self.surfaces]
                                       ).reshape(-1, 4, 3)
        self.e1s = np.array([s.e1 for s in self.surfaces]).reshape(-1, 3)
        self.e2s = np.array([s.e2 for s in self.surfaces]).reshape(-1, 3)
        self.normals = np.array([s.normal for s in self.surfaces]).reshape(-1, 3)
        self._cache: dict[str, np.ndarray] = {}

    def pixel_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel x and y coordinates (float32, H x W), computed once."""
        if "u" not in self._cache:
            self._cache["u"], self._cache["v"] = np.meshgrid(
                np.arange(self.intr.width, dtype=np.float32),
                np.arange(self.intr.height, dtype=np.float32))
        return self._cache["u"], self._cache["v"]

    def hood_rgb(self) -> np.ndarray:
        """The bonnet's colours (darker towards the horizon), computed once."""
        if "hood" not in self._cache:
            v = np.arange(self.intr.height, dtype=np.float32) / self.intr.height
            ramp = (0.55 + 0.45 * v)[:, None, None]
            self._cache["hood"] = np.broadcast_to(self.hood_colour[None, None, :] * ramp,
                                                  (self.intr.height, self.intr.width, 3)).astype(
                                                      np.uint8)
        return self._cache["hood"]


@dataclass
class RenderedFrame:
    """One frame: image (H,W,3) uint8 RGB, labelIds (H,W) uint8 and per-pixel geometry."""

    image: np.ndarray
    label: np.ndarray
    inv_depth: np.ndarray  # 1/z in 1/m, 0 for the sky
    surface: np.ndarray  # int32 surface id per pixel
    flow: np.ndarray | None  # (H,W,2) float32 backward flow (dx, dy) to the previous frame
    prev_inv_depth: np.ndarray | None  # 1/z the pixel's 3-D point had in the previous frame


def build_scene(seed: int, width: int, height: int, frames: int) -> Scene:
    """Draw a street, its buildings, agents, lighting, camera path and sensor from `seed`."""
    rng = np.random.default_rng(seed)
    intr = Intrinsics.for_size(width, height, focal_ratio=rng.uniform(1.0, 1.2))
    street = make_street(rng)
    lit = make_lighting(rng)
    lane = street.lanes_right[0] if rng.random() < 0.6 else street.lanes_right[-1]
    cam_h = rng.uniform(1.15, 1.55)
    horizon_ratio = rng.uniform(0.40, 0.48)
    pitch = math.atan((intr.cy - horizon_ratio * height) / intr.fy)  # > 0: looks slightly down
    traj = make_trajectory(rng, frames, lane, cam_h, pitch)
    surfaces, sky = static_surfaces(rng, street, lit)
    moving, feet = agents(rng, street, lit, float(traj.speeds.mean()), lane)
    surfaces += moving
    paint = random_color(rng, (0, 1), (0.0, 0.12), (0.7, 0.98))
    centre = random_color(rng, (0.11, 0.15), (0.6, 0.9), (0.8, 1.0)) if rng.random() < 0.2 else paint
    style = GroundStyle.from_tiles(ground_tiles(rng), 48.0, paint, centre)
    hood = hood_mask(rng, width, height)
    sensor = make_sensor(rng, width, height, int(horizon_ratio * height), frames)
    return Scene(intr, traj, street, lit, style, surfaces, feet, sky, hood,
                 random_color(rng, (0, 1), (0.0, 0.8), (0.05, 0.6)), sensor, seed)


class _Buffers:
    def __init__(self, h: int, w: int) -> None:
        self.rgb = np.zeros((h, w, 3), np.uint8)
        self.label = np.zeros((h, w), np.uint8)
        self.inv_depth = np.zeros((h, w), np.float32)
        self.surface = np.zeros((h, w), np.int32)


def _sky_homography(K: np.ndarray, pose: Pose, sky: Texture) -> np.ndarray:
    h, w = sky.label.shape
    e1 = np.array([_SKY_SPAN[0] / w, 0.0, 0.0])
    e2 = np.array([0.0, -_SKY_SPAN[1] / h, 0.0])
    return K @ pose.R @ np.column_stack([e1, e2, _SKY_OFFSET])


def _plane_maps(K: np.ndarray, pose: Pose, scene: Scene, origins: np.ndarray, idx: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """For surfaces `idx`: texel->pixel homographies (n,3,3) and 1/z coefficients (n,3), batched.

    H = K R [e1 e2 (O - C)]; 1/z = a.(u, v, 1) with a = K^-T R n / (n.(O - C)) (a = 0: edge-on).
    """
    P = K @ pose.R
    rel = origins[idx] - pose.C
    H = np.stack([scene.e1s[idx] @ P.T, scene.e2s[idx] @ P.T, rel @ P.T], axis=2)
    n = scene.normals[idx]
    d = np.einsum("ij,ij->i", n, rel)
    a = (n @ (np.linalg.inv(K).T @ pose.R).T) / np.where(np.abs(d) < 1e-6, np.inf, d)[:, None]
    return H, a


def _nonzero_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _draw_surface(tex: Texture, H: np.ndarray, a: np.ndarray, box: list[int], sid: int,
                  buf: _Buffers, u_row: np.ndarray, v_col: np.ndarray) -> None:
    """Z-test and write one surface inside its pixel box (H: texel->pixel, a: 1/z coefficients)."""
    x0, y0, x1, y1 = box
    a0, a1, a2 = a.tolist()
    # 1/z is affine, so its maximum over the box is at a corner: skip what is hidden already.
    corner_max = max(a0 * x0, a0 * (x1 - 1)) + max(a1 * y0, a1 * (y1 - 1)) + a2
    zbuf = buf.inv_depth[y0:y1, x0:x1]
    if corner_max <= 0 or float(zbuf.min()) >= corner_max:
        return
    inv_z = (a0 * u_row[x0:x1])[None, :] + (a1 * v_col[y0:y1] + a2)[:, None]
    front = inv_z > zbuf
    if (y1 - y0) * (x1 - x0) > 4096:  # tighten the box to what is in front before warping
        sub = _nonzero_box(front)
        if sub is None:
            return
        sx0, sy0, sx1, sy1 = sub
        front, inv_z = front[sy0:sy1, sx0:sx1], inv_z[sy0:sy1, sx0:sx1]
        x0, y0, x1, y1 = x0 + sx0, y0 + sy0, x0 + sx1, y0 + sy1
    M = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]]) @ H
    size = (x1 - x0, y1 - y0)
    lab = cv2.warpPerspective(tex.label, M, size, flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    win = front & (lab > 0)
    if not win.any():
        return
    # Texels per pixel at the box centre picks the pyramid level (against aliasing).
    Minv = np.linalg.inv(M)
    cx, cy = size[0] / 2, size[1] / 2
    c = np.array([[cx, cy, 1.0], [cx + 1, cy, 1.0], [cx, cy + 1, 1.0]]) @ Minv.T
    c = c[:, :2] / c[:, 2:3]
    tpp = math.sqrt(max(np.linalg.norm(c[1] - c[0]) * np.linalg.norm(c[2] - c[0]), 1e-12))
    level = min(max(int(math.floor(math.log2(max(tpp, 1.0)))), 0), 6)
    rgb_tex = tex.level(level)
    scale = tex.rgb.shape[1] / rgb_tex.shape[1]
    rgb = cv2.warpPerspective(rgb_tex, M @ np.diag([scale, scale, 1.0]), size,
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m8 = win.view(np.uint8)  # cv2.copyTo: masked copies in place, far faster than np.copyto
    cv2.copyTo(rgb, m8, buf.rgb[y0:y1, x0:x1])
    cv2.copyTo(lab, m8, buf.label[y0:y1, x0:x1])
    cv2.copyTo(inv_z, m8, buf.inv_depth[y0:y1, x0:x1])
    cv2.copyTo(np.full(lab.shape, sid, np.int32), m8, buf.surface[y0:y1, x0:x1])


def render_frame(scene: Scene, frame: int, with_flow: bool = False) -> RenderedFrame:
    """Render frame `frame` (0-based); flow and previous depth refer to frame-1 (frame -1 exists).

    Surfaces are drawn near to far with a z-buffer; ground and sky then fill what is left (every
    surface stands on or above the ground plane, so the ground never hides any of them).
    """
    intr = scene.intr
    w, h = intr.width, intr.height
    K = intr.matrix()
    K_inv = np.linalg.inv(K)
    u, v = scene.pixel_grid()
    buf = _Buffers(h, w)
    time = frame / FPS
    pose = scene.trajectory.pose(frame)
    homographies: dict[int, np.ndarray] = {}
    origins = scene.origins + scene.velocities * time
    boxes = polygon_boxes(K, pose, origins[:, None, :] + scene.corner_offsets, w, h)
    seen = np.flatnonzero(boxes[:, 0] >= 0)
    dist = np.sum((origins[seen] + scene.corner_offsets[seen].mean(axis=1) - pose.C) ** 2, axis=1)
    order = seen[np.argsort(dist, kind="stable")]
    Hs, As = _plane_maps(K, pose, scene, origins, order)
    u_row, v_col = u[0], v[:, 0]
    for k, i in enumerate(order.tolist()):
        if As[k, 2] == 0.0 and not As[k].any():
            continue  # seen edge-on
        _draw_surface(scene.surfaces[i].texture, Hs[k], As[k], boxes[i].tolist(), i + 3, buf,
                      u_row, v_col)
        homographies[i + 3] = Hs[k]
    free = buf.surface == SKY_ID
    g = render_ground(K, pose, scene.street, scene.lighting, scene.ground, scene.footprints, time,
                      u, v)
    if g is not None:
        sl = slice(g.row0, h)
        put = g.mask & free[sl]
        m8 = put.view(np.uint8)
        cv2.copyTo(g.rgb, m8, buf.rgb[sl])
        cv2.copyTo(g.label, m8, buf.label[sl])
        cv2.copyTo(g.inv_depth, m8, buf.inv_depth[sl])
        cv2.copyTo(np.full(put.shape, GROUND_ID, np.int32), m8, buf.surface[sl])
        free[sl] &= ~put
    sky_h = _sky_homography(K, pose, scene.sky)
    sky = cv2.warpPerspective(scene.sky.rgb, sky_h, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    cv2.copyTo(sky, free.view(np.uint8), buf.rgb)
    buf.label[free] = SKY
    if scene.hood is not None:
        hood = scene.hood.view(np.uint8)
        cv2.copyTo(scene.hood_rgb(), hood, buf.rgb)
        buf.label[scene.hood] = EGO
        buf.inv_depth[scene.hood] = 1.0
        buf.surface[scene.hood] = HOOD_ID
    speed = float(scene.trajectory.speeds[frame + 1])
    image = scene.sensor.apply(buf.rgb, frame, speed,
                               np.random.default_rng([scene.seed, frame]))
    flow = prev = None
    if with_flow:
        flow, prev = _backward_flow(scene, frame, K, K_inv, pose, sky_h, homographies, buf, u, v)
    return RenderedFrame(image, buf.label, buf.inv_depth, buf.surface, flow, prev)


def _backward_flow(scene: Scene, frame: int, K: np.ndarray, K_inv: np.ndarray, pose: Pose,
                   sky_h: np.ndarray, homographies: dict[int, np.ndarray], buf: _Buffers,
                   u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact flow: each surface maps pixel_t -> pixel_{t-1} by H_{t-1} H_t^-1 (plane-induced)."""
    prev_pose = scene.trajectory.pose(frame - 1)
    prev_time = (frame - 1) / FPS
    n = len(scene.surfaces) + 3
    G = np.tile(np.eye(3), (n, 1, 1))
    A = np.zeros((n, 3))  # inverse-depth coefficients at t-1
    G[SKY_ID] = _sky_homography(K, prev_pose, scene.sky) @ np.linalg.inv(sky_h)
    G[GROUND_ID] = ground_homography(K, prev_pose) @ np.linalg.inv(ground_homography(K, pose))
    A[GROUND_ID] = inverse_depth_coeffs(K_inv, prev_pose, np.zeros(3), np.array([0.0, 1.0, 0.0]))
    A[HOOD_ID] = (0.0, 0.0, 1.0)
    for sid, H in homographies.items():
        surf = scene.surfaces[sid - 3]
        o_prev = surf.origin_at(prev_time)
        G[sid] = plane_homography(K, prev_pose, o_prev, surf.e1, surf.e2) @ np.linalg.inv(H)
        a = inverse_depth_coeffs(K_inv, prev_pose, o_prev, surf.normal)
        A[sid] = a if a is not None else 0.0
    g = G.astype(np.float32)[buf.surface]
    den = g[..., 2, 0] * u + g[..., 2, 1] * v + g[..., 2, 2]
    xp = (g[..., 0, 0] * u + g[..., 0, 1] * v + g[..., 0, 2]) / den
    yp = (g[..., 1, 0] * u + g[..., 1, 1] * v + g[..., 1, 2]) / den
    a = A.astype(np.float32)[buf.surface]
    prev_inv = a[..., 0] * xp + a[..., 1] * yp + a[..., 2]
    flow = np.stack([xp - u, yp - v], axis=-1)
    return flow.astype(np.float32), prev_inv.astype(np.float32)


def visible_in_previous(flow: np.ndarray, prev_inv_depth: np.ndarray,
                        previous_frame_inv_depth: np.ndarray, rel_tol: float = 0.05) -> np.ndarray:
    """Pixels of frame t whose 3-D point was visible in frame t-1 (the complement is dis-occluded).

    A pixel is visible when its flow lands inside frame t-1 and the z-buffer of t-1 at the nearest
    pixel holds the point's own depth there (1/z within rel_tol): anything nearer means the point
    was hidden (it is dis-occluded at t); landing outside means it entered the view.
    """
    h, w = flow.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w]
    xi = np.rint(gx + flow[..., 0]).astype(np.int64)
    yi = np.rint(gy + flow[..., 1]).astype(np.int64)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    seen = previous_frame_inv_depth[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    close = np.abs(seen - prev_inv_depth) <= rel_tol * np.abs(prev_inv_depth) + 1e-6
    return inside & close
