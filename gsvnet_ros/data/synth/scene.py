"""Scene layout of the synthetic generator: street cross-section, buildings, vegetation, furniture."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gsvnet_ros.data.synth.textures import SIDEWALK, TERRAIN, Texture, random_color

__all__ = ["Surface", "Street", "Lighting", "billboard", "side_panel", "flat_panel", "solid",
           "make_street", "make_lighting"]


@dataclass
class Surface:
    """A textured planar rectangle moving rigidly: X(s, t) = origin + v*time + s*e1 + t*e2 (texels)."""

    texture: Texture
    origin: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    normal: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = np.cross(self.e1, self.e2)
        self.normal = n / np.linalg.norm(n)

    def origin_at(self, time: float) -> np.ndarray:
        return self.origin + self.velocity * time

    def corners_at(self, time: float) -> np.ndarray:
        h, w = self.texture.label.shape
        o = self.origin_at(time)
        return np.array([o, o + w * self.e1, o + w * self.e1 + h * self.e2, o + h * self.e2])


def billboard(tex: Texture, x_center: float, z: float, base_y: float = 0.0,
              velocity: np.ndarray | None = None) -> Surface:
    """Vertical rectangle in the plane Z = z facing the camera, bottom edge at height base_y."""
    w, h = tex.size_m
    return Surface(tex, np.array([x_center - w / 2, base_y + h, z]), np.array([1 / tex.tpm, 0, 0]),
                   np.array([0, -1 / tex.tpm, 0]), _vel(velocity))


def side_panel(tex: Texture, x: float, z_start: float, base_y: float = 0.0,
               velocity: np.ndarray | None = None) -> Surface:
    """Vertical rectangle in the plane X = x, texture columns running along +Z from z_start."""
    h = tex.size_m[1]
    return Surface(tex, np.array([x, base_y + h, z_start]), np.array([0, 0, 1 / tex.tpm]),
                   np.array([0, -1 / tex.tpm, 0]), _vel(velocity))


def flat_panel(tex: Texture, x0: float, z0: float, y: float,
               velocity: np.ndarray | None = None) -> Surface:
    """Horizontal rectangle at height y (roofs), columns along +X and rows along +Z."""
    return Surface(tex, np.array([x0, y, z0]), np.array([1 / tex.tpm, 0, 0]),
                   np.array([0, 0, 1 / tex.tpm]), _vel(velocity))


def solid(rgb: np.ndarray, label_id: int, tpm: float) -> Texture:
    return Texture(rgb, np.full(rgb.shape[:2], label_id, np.uint8), tpm)


def _vel(v: np.ndarray | None) -> np.ndarray:
    return np.zeros(3) if v is None else np.asarray(v, np.float64)


@dataclass
class Street:
    """Cross-section and plan of the street (metres; road centre line at X = 0)."""

    road_left: float  # X of the left road edge (< 0)
    road_right: float  # X of the right road edge (> 0)
    lanes_right: list[float]  # centre X of the lanes in the ego direction
    lanes_left: list[float]  # centre X of the oncoming lanes
    parking_right: float | None  # centre X of a parking lane, if any
    parking_left: float | None
    bands: dict[int, list[tuple[int, float]]]  # side (+1/-1) -> [(labelId, width)] from the curb out
    lines: list[tuple[float, bool, float]]  # lane markings: (x, dashed, width)
    cross: list[tuple[float, float]]  # cross streets as Z intervals
    rails: list[float]  # tram rail X positions
    parks: list[tuple[int, float, float]] = field(default_factory=list)  # (side, z0, z1): terrain
    # side -> (building start Z, front X, height): piecewise constant, for cast shadows
    shadow: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def outer(self, side: int) -> float:
        """X where the last band of a side ends (the building line before setbacks)."""
        edge = self.road_right if side > 0 else -self.road_left
        return side * (edge + sum(w for _, w in self.bands[side]))

    def in_cross(self, z: float, margin: float = 0.0) -> bool:
        return any(z0 - margin <= z <= z1 + margin for z0, z1 in self.cross)


@dataclass
class Lighting:
    """Sun direction, ambient share and the sky/haze colours of one sequence."""

    sun: np.ndarray
    ambient: float
    sunny: float
    haze: np.ndarray
    leaf: np.ndarray
    wall_hue: tuple[float, float]

    def factor(self, normal: np.ndarray) -> float:
        return self.ambient + (1 - self.ambient) * self.sunny * max(0.0, float(normal @ self.sun)) \
            + (1 - self.ambient) * (1 - self.sunny) * 0.5


def make_lighting(rng: np.random.Generator) -> Lighting:
    az, el = rng.uniform(0, 2 * math.pi), rng.uniform(math.radians(15), math.radians(65))
    sun = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
    leaf_hue = (0.17, 0.33) if rng.random() < 0.75 else (0.06, 0.16)  # summer or autumn
    centre = rng.uniform(0, 1)
    return Lighting(sun, rng.uniform(0.45, 0.75), rng.uniform(0.0, 1.0),
                    random_color(rng, (0.5, 0.65), (0.0, 0.25), (0.6, 0.95)),
                    random_color(rng, leaf_hue, (0.3, 0.85), (0.2, 0.6)), (centre - 0.2, centre + 0.2))


def make_street(rng: np.random.Generator) -> Street:
    lane_w = rng.uniform(2.9, 3.6)
    n_right, n_left = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    lanes_right = [lane_w * (i + 0.5) for i in range(n_right)]
    lanes_left = [-lane_w * (i + 0.5) for i in range(n_left)]
    right, left = lane_w * n_right, -lane_w * n_left
    parking_right = right + 1.1 if rng.random() < 0.55 else None
    parking_left = left - 1.1 if rng.random() < 0.35 else None
    right += 2.2 if parking_right else 0.0
    left -= 2.2 if parking_left else 0.0
    lines = [(0.0, rng.random() < 0.6, 0.15)]
    lines += [(lane_w * i, True, 0.12) for i in range(1, n_right)]
    lines += [(-lane_w * i, True, 0.12) for i in range(1, n_left)]
    if rng.random() < 0.6:
        lines += [(lane_w * n_right, False, 0.12), (-lane_w * n_left, False, 0.12)]
    bands = {}
    for side in (1, -1):
        kind = rng.choice(3, p=[0.5, 0.25, 0.25])
        walk = rng.uniform(2.5, 6.0)
        if kind == 0:
            bands[side] = [(SIDEWALK, walk)]
        elif kind == 1:
            bands[side] = [(TERRAIN, rng.uniform(1.0, 3.0)), (SIDEWALK, walk)]
        else:
            bands[side] = [(SIDEWALK, walk), (TERRAIN, rng.uniform(1.5, 6.0))]
    cross = []
    z = rng.uniform(15.0, 70.0)
    while z < 230 and len(cross) < 3:
        if rng.random() < 0.6:
            width = rng.uniform(9.0, 16.0)
            cross.append((z, z + width))
            z += width
        z += rng.uniform(50.0, 120.0)
    return Street(left, right, lanes_right, lanes_left, parking_right, parking_left, bands, lines,
                  cross, [])
