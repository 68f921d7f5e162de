"""Ground plane of the generator: per-pixel ray-plane intersection, class bands, tiles, markings, shadows."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from gsvnet_ros.data.synth.agents import Footprint
from gsvnet_ros.data.synth.camera import Pose, clip_polygon_bbox
from gsvnet_ros.data.synth.scene import Lighting, Street
from gsvnet_ros.data.synth.textures import ROAD, SIDEWALK, TERRAIN

__all__ = ["GroundStyle", "GroundResult", "ground_homography", "render_ground"]

CURB_WIDTH = 0.25  # metres of curb stone at the road edge (labelled sidewalk, as in Cityscapes)
FAR_LIMIT = 1500.0  # ground farther than this is left to the sky and the distant skyline


_TILE_ORDER = ("road", "sidewalk", "terrain", "curb")


@dataclass
class GroundStyle:
    """Ground tiles as one atlas per pyramid level, texel density and marking paint.

    Each level stacks the tileable tiles of _TILE_ORDER vertically, each padded by 2 wrapped rows,
    so one cv2.remap with BORDER_WRAP (x) and a per-class row offset (y) samples every class.
    """

    atlases: list[np.ndarray]
    tile_sizes: list[int]
    tpm: float
    paint: np.ndarray
    centre_paint: np.ndarray

    @classmethod
    def from_tiles(cls, tiles: dict[str, np.ndarray], tpm: float, paint: np.ndarray,
                   centre_paint: np.ndarray) -> "GroundStyle":
        levels = [[tiles[name]] for name in _TILE_ORDER]
        while min(levels[0][-1].shape[:2]) > 16 and len(levels[0]) < 7:
            for pyr in levels:
                padded = cv2.copyMakeBorder(pyr[-1], 4, 4, 4, 4, cv2.BORDER_WRAP)
                pyr.append(cv2.pyrDown(padded)[2:-2, 2:-2].copy())
        atlases, sizes = [], []
        for lvl in range(len(levels[0])):
            parts = [np.concatenate([p[lvl][-2:], p[lvl], p[lvl][:2]]) for p in levels]
            atlases.append(np.ascontiguousarray(np.concatenate(parts)))
            sizes.append(levels[0][lvl].shape[0])
        return cls(atlases, sizes, tpm, paint, centre_paint)


@dataclass
class GroundResult:
    """What the ground pass wrote: its row offset, mask, colours, labels and inverse depth."""

    row0: int
    mask: np.ndarray
    rgb: np.ndarray
    label: np.ndarray
    inv_depth: np.ndarray


def ground_homography(K: np.ndarray, pose: Pose) -> np.ndarray:
    """Map from ground coordinates (X, Z, 1) on the plane Y = 0 to image pixels."""
    return K @ pose.R @ np.column_stack([[1.0, 0, 0], [0, 0, 1.0], -pose.C])


def _classes(st: Street, X: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """labelIds of the ground and a curb mask, from the cross-section bands and cross streets."""
    label = np.full(X.shape, ROAD, np.uint8)
    right = X >= 0
    off = np.where(right, X - st.road_right, st.road_left - X)  # > 0 beyond the road edge
    beyond = off > 0
    for side, sel in ((1, right), (-1, ~right)):
        start = 0.0
        for lab, width in st.bands[side]:
            label[sel & (off >= start) & (off < start + width)] = lab
            start += width
        label[sel & (off >= start)] = st.bands[side][-1][0]
    outer = {side: sum(w for _, w in st.bands[side]) for side in (1, -1)}
    for side, z0, z1 in st.parks:
        sel = (right if side > 0 else ~right) & (off >= outer[side]) & (Z >= z0) & (Z < z1)
        label[sel] = TERRAIN
    curb = beyond & (off < CURB_WIDTH)
    label[curb] = SIDEWALK
    for z0, z1 in st.cross:
        walk = 3.0
        side_walk = beyond & (((Z >= z0 - walk) & (Z < z0)) | ((Z >= z1) & (Z < z1 + walk)))
        label[side_walk & (off > CURB_WIDTH)] = SIDEWALK
        road = beyond & (Z >= z0) & (Z < z1)
        label[road] = ROAD
        curb &= ~road
    return label, curb


def _sample(style: GroundStyle, X: np.ndarray, Z: np.ndarray, tile_idx: np.ndarray,
            row_level: np.ndarray) -> np.ndarray:
    """Tile colours at ground points, one pyramid level per band of rows (against aliasing)."""
    out = np.empty(X.shape + (3,), np.uint8)
    edges = np.flatnonzero(np.diff(row_level)) + 1
    for a, b in zip(np.r_[0, edges], np.r_[edges, len(row_level)]):
        lvl = min(int(row_level[a]), len(style.atlases) - 1)
        n = style.tile_sizes[lvl]
        s = float(style.tpm / (2 ** lvl))
        mx = X[a:b] * s
        my = np.mod(Z[a:b] * s, float(n)) + (tile_idx[a:b] * float(n + 4) + 2.0)
        out[a:b] = cv2.remap(style.atlases[lvl], mx, my, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_WRAP)
    return out


def _paint(rgb: np.ndarray, cover: np.ndarray, colour: np.ndarray) -> None:
    """Blend paint into the few pixels with cover > 0 (rgb is (N, 3) flat, cover (N,))."""
    idx = np.flatnonzero(cover)
    if idx.size:
        c = cover[idx, None]
        rgb[idx] = rgb[idx] * (1.0 - c) + c * colour[None, :]


def _line_cover(X: np.ndarray, xs: list[float], half_width: float, px_m: np.ndarray) -> np.ndarray:
    d = np.abs(X - np.float32(xs[0]))
    for x in xs[1:]:
        np.minimum(d, np.abs(X - np.float32(x)), out=d)
    return np.clip((np.float32(half_width) - d) / px_m + 0.5, 0.0, 1.0)


def _markings(st: Street, style: GroundStyle, rgb: np.ndarray, label: np.ndarray, X: np.ndarray,
              Z: np.ndarray, px_m: np.ndarray) -> None:
    """Lane lines (anti-aliased across), zebra crossings, stop lines and tram rails on the road."""
    flat = rgb.reshape(-1, 3)
    on_road = (label == ROAD) & (X > st.road_left) & (X < st.road_right)
    for z0, z1 in st.cross:
        on_road &= ~((Z >= z0) & (Z < z1))
    dash = np.mod(Z, 9.0) < 3.0
    for dashed in (False, True):
        for centre in (True, False):
            xs = [x for x, d, _ in st.lines if d == dashed and (x == 0.0) == centre]
            if not xs:
                continue
            width = max(w for x, d, w in st.lines if d == dashed and (x == 0.0) == centre)
            cover = _line_cover(X, xs, width / 2, px_m) * on_road
            if dashed:
                cover *= dash
            _paint(flat, 0.9 * cover.ravel(), style.centre_paint if centre else style.paint)
    zmin, zmax = Z.min(axis=1), Z.max(axis=1)
    for z0, _ in st.cross:
        rows = np.flatnonzero((zmax > z0 - 5.6) & (zmin < z0 - 0.8))
        if rows.size == 0:
            continue
        r = slice(rows[0], rows[-1] + 1)
        zr, xr = Z[r], X[r]
        zebra = (zr > z0 - 4.5) & (zr < z0 - 0.8) & (np.mod(xr, 1.0) < 0.5)
        stop = (zr > z0 - 5.6) & (zr < z0 - 5.1) & (xr > 0)
        cover = ((zebra | stop) & on_road[r]).astype(np.float32) * 0.85
        _paint(rgb[r].reshape(-1, 3), cover.ravel(), style.paint)
    if st.rails:
        cover = _line_cover(X, st.rails, 0.035, px_m) * 0.8
        _paint(flat, cover.ravel(), np.array([70, 68, 66], np.float32))


def _shadows(st: Street, lit: Lighting, X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Light factor of cast shadows: buildings on the sun's side shade the street.

    Evaluated on a 4x coarser grid and upsampled bilinearly, which also softens the edge (penumbra).
    """
    h, w = X.shape
    factor = np.ones((h, w), np.float32)
    if lit.sunny < 0.2 or lit.sun[1] <= 0:
        return factor
    Xs, Zs = X[::4, ::4], Z[::4, ::4]
    small = np.ones(Xs.shape, np.float32)
    dark = 1.0 - 0.5 * lit.sunny
    for side, (zb, xb, hb) in st.shadow.items():
        k = max(0.0, side * lit.sun[0]) / lit.sun[1]
        if k <= 0:
            continue
        idx = np.clip(np.searchsorted(zb, Zs) - 1, 0, len(zb) - 1)
        edge = xb[idx] - side * hb[idx] * min(k, 3.0)
        small[(side * Xs > side * edge)] = dark
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _contact_shadows(K: np.ndarray, pose: Pose, feet: list[Footprint], time: float, row0: int,
                     X: np.ndarray, Z: np.ndarray, factor: np.ndarray) -> None:
    h, w = X.shape
    for f in feet:
        dz = f.velocity * time
        x0, x1, z0, z1 = f.x0 + dz[0] - 0.15, f.x1 + dz[0] + 0.15, f.z0 + dz[2] - 0.2, f.z1 + dz[2] + 0.2
        corners = np.array([[x0, 0, z0], [x1, 0, z0], [x1, 0, z1], [x0, 0, z1]])
        box = clip_polygon_bbox(K, pose, corners, w, h + row0)
        if box is None or box[3] <= row0:
            continue
        bx0, by0, bx1, by1 = box[0], max(box[1], row0) - row0, box[2], box[3] - row0
        xs, zs = X[by0:by1, bx0:bx1], Z[by0:by1, bx0:bx1]
        inside = (xs > x0) & (xs < x1) & (zs > z0) & (zs < z1)
        factor[by0:by1, bx0:bx1][inside] *= 0.45


def render_ground(K: np.ndarray, pose: Pose, st: Street, lit: Lighting, style: GroundStyle,
                  feet: list[Footprint], time: float, u: np.ndarray, v: np.ndarray
                  ) -> GroundResult | None:
    """Ground colours, labels and 1/z for the image rows below the horizon (None if none)."""
    Hinv = np.linalg.inv(ground_homography(K, pose)).tolist()
    # 1/z is affine in the pixel on a plane (camera.inverse_depth_coeffs): n = +Y, d = -height
    a = ((np.linalg.inv(K).T @ (pose.R @ np.array([0.0, 1.0, 0.0]))) / (-pose.C[1])).tolist()
    rows_any = (a[0] * u[:, [0, -1]] + a[1] * v[:, [0, -1]] + a[2]).max(axis=1) > 1.0 / FAR_LIMIT
    rows = np.flatnonzero(rows_any)
    if rows.size == 0:
        return None
    row0 = int(rows[0])
    uu, vv = u[row0:], v[row0:]
    inv_depth = a[0] * uu + a[1] * vv + a[2]
    visible = inv_depth > 1.0 / FAR_LIMIT
    wgt = Hinv[2][0] * uu + Hinv[2][1] * vv + Hinv[2][2]
    with np.errstate(divide="ignore", invalid="ignore"):  # rays at or above the horizon
        X = (Hinv[0][0] * uu + Hinv[0][1] * vv + Hinv[0][2]) / wgt
        Z = (Hinv[1][0] * uu + Hinv[1][1] * vv + Hinv[1][2]) / wgt
    far = np.float32(1e5)  # points beyond the horizon are masked out; keep them finite
    np.nan_to_num(X, copy=False, nan=0.0, posinf=far, neginf=-far)
    np.nan_to_num(Z, copy=False, nan=far, posinf=far, neginf=far)
    label, curb = _classes(st, X, Z)
    depth = 1.0 / np.maximum(inv_depth, np.float32(1.0 / FAR_LIMIT))
    f = float(K[0, 0])
    z_row = depth[:, depth.shape[1] // 2]
    footprint = style.tpm * z_row ** 1.5 / (f * math.sqrt(max(pose.C[1], 0.5)))
    row_level = np.clip(np.floor(np.log2(np.maximum(footprint, 1.0))), 0, 6).astype(int)
    tile_idx = np.select([label == ROAD, curb, label == SIDEWALK], [0, 3, 1], 2).astype(np.float32)
    rgb = _sample(style, X, Z, tile_idx, row_level).astype(np.float32)
    _markings(st, style, rgb, label, X, Z, depth / f)
    light = _shadows(st, lit, X, Z) * np.float32(lit.factor(np.array([0.0, 1.0, 0.0])))
    _contact_shadows(K, pose, feet, time, row0, X, Z, light)
    rgb = cv2.multiply(rgb, cv2.merge([light, light, light]), dtype=cv2.CV_8U)
    return GroundResult(row0, visible, rgb, label, inv_depth)
