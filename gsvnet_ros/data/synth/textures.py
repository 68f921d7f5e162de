"""Procedural textures of the synthetic generator: noise, ground tiles, façades, walls, fences, sky."""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = [
    "Texture",
    "value_noise",
    "random_color",
    "shade",
    "ground_tiles",
    "facade_texture",
    "wall_texture",
    "fence_texture",
    "sky_texture",
    "skyline_texture",
]

# Cityscapes labelIds used by the generator (0 in a texture's label map = transparent).
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN = 7, 8, 11, 12, 13, 17, 19, 20
VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS = 21, 22, 23, 24, 25, 26, 27, 28
TRAIN, MOTORCYCLE, BICYCLE, EGO = 31, 32, 33, 1


@dataclass
class Texture:
    """RGB texels with a labelIds map (0 = transparent) and a scale in texels per metre."""

    rgb: np.ndarray
    label: np.ndarray
    tpm: float
    _levels: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def size_m(self) -> tuple[float, float]:
        return self.rgb.shape[1] / self.tpm, self.rgb.shape[0] / self.tpm

    def level(self, n: int) -> np.ndarray:
        """Level n of an image pyramid (cv2.pyrDown), built on first use."""
        if not self._levels:
            self._levels.append(self.rgb)
        while len(self._levels) <= n and min(self._levels[-1].shape[:2]) >= 4:
            self._levels.append(cv2.pyrDown(self._levels[-1]))
        return self._levels[min(n, len(self._levels) - 1)]


def value_noise(rng: np.random.Generator, h: int, w: int, cell: int, octaves: int = 3,
                tile: bool = False) -> np.ndarray:
    """Smooth noise in about [-1, 1], float32 (h, w); periodic when `tile` (h, w multiples of cell)."""
    total = np.zeros((h, w), np.float32)
    amp, norm = 1.0, 0.0
    for _ in range(octaves):
        cell = max(cell, 1)
        gh, gw = -(-h // cell) + 1, -(-w // cell) + 1
        if tile:
            gh, gw = max(h // cell, 1), max(w // cell, 1)
            grid = rng.standard_normal((gh, gw)).astype(np.float32)
            grid = np.pad(grid, 2, mode="wrap")
            up = cv2.resize(grid, ((gw + 4) * cell, (gh + 4) * cell), interpolation=cv2.INTER_CUBIC)
            up = up[2 * cell: 2 * cell + h, 2 * cell: 2 * cell + w]
        else:
            grid = rng.standard_normal((gh, gw)).astype(np.float32)
            up = cv2.resize(grid, (gw * cell, gh * cell), interpolation=cv2.INTER_CUBIC)[:h, :w]
        total += amp * up
        norm += amp
        amp *= 0.5
        cell //= 2
    return total / norm


def random_color(rng: np.random.Generator, hue: tuple[float, float] = (0.0, 1.0),
                 sat: tuple[float, float] = (0.0, 1.0), val: tuple[float, float] = (0.2, 0.9)
                 ) -> np.ndarray:
    """An RGB colour (float32, 0..255) drawn uniformly in an HSV box (hue wraps around 1)."""
    h = rng.uniform(*hue) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))
    return np.array([r, g, b], np.float32) * 255.0


def shade(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Multiply texels by a light factor (baked lighting), saturating at 255."""
    return np.clip(rgb.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def _modulate(base: np.ndarray, noise: np.ndarray, strength: float) -> np.ndarray:
    out = base[None, None, :] * (1.0 + strength * noise[..., None])
    return np.clip(out, 0, 255).astype(np.uint8)


def ground_tiles(rng: np.random.Generator, tpm: int = 48) -> dict[str, np.ndarray]:
    """Tileable 8 m x 8 m RGB tiles: 'road', 'sidewalk', 'terrain', 'curb' (period = tile size)."""
    n = 8 * tpm
    tiles: dict[str, np.ndarray] = {}
    # Road: asphalt from near-black to light grey, sometimes brownish; or cobblestones.
    base = random_color(rng, (0.0, 1.0), (0.0, 0.18), (0.22, 0.62))
    grain = value_noise(rng, n, n, 2, 2, tile=True) * 0.6 + value_noise(rng, n, n, 48, 3, tile=True)
    road = _modulate(base, grain, 0.22)
    for _ in range(rng.integers(0, 4)):  # repaired patches
        x, y = rng.integers(0, n, 2)
        w, h = rng.integers(n // 10, n // 3, 2)
        tint = rng.uniform(0.8, 1.15)
        patch = road[y:y + h, x:x + w].astype(np.float32) * tint
        road[y:y + h, x:x + w] = np.clip(patch, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        _draw_joints(road, rng.integers(6, 14), rng.integers(6, 14), base * 0.55, rng, jitter=0.25)
    for _ in range(rng.integers(0, 10)):  # cracks
        pts = np.cumsum(rng.normal(0, n / 30, (6, 2)), axis=0) + rng.integers(0, n, 2)
        cv2.polylines(road, [pts.astype(np.int32)], False, (base * 0.5).tolist(), 1, cv2.LINE_AA)
    tiles["road"] = road
    # Sidewalk: pavers, bricks or plain concrete; colour overlaps the road's.
    base = random_color(rng, (0.0, 0.15) if rng.random() < 0.3 else (0.0, 1.0), (0.0, 0.3),
                        (0.35, 0.8))
    side = _modulate(base, value_noise(rng, n, n, 24, 3, tile=True), 0.18)
    per_tile = [(8, 8), (16, 16), (24, 12), (32, 16)][rng.integers(0, 4)]
    if rng.random() < 0.8:
        _draw_joints(side, per_tile[0], per_tile[1], base * rng.uniform(0.55, 0.8), rng, jitter=0.12)
    tiles["sidewalk"] = side
    # Terrain: grass, dry grass or soil.
    kind = rng.integers(0, 3)
    hue = [(0.18, 0.32), (0.1, 0.17), (0.05, 0.11)][kind]
    base = random_color(rng, hue, (0.25, 0.7), (0.25, 0.65))
    blades = value_noise(rng, n, n, 2, 1, tile=True)
    terrain = _modulate(base, 0.5 * blades + value_noise(rng, n, n, 32, 3, tile=True), 0.35)
    tiles["terrain"] = terrain
    curb_base = random_color(rng, (0, 1), (0.0, 0.1), (0.45, 0.85))
    tiles["curb"] = _modulate(curb_base, value_noise(rng, n, n, 8, 2, tile=True), 0.12)
    return tiles


def _draw_joints(img: np.ndarray, nx: int, ny: int, color: np.ndarray, rng: np.random.Generator,
                 jitter: float) -> None:
    """Paver/cobble joints on a tileable image: nx x ny cells, rows offset like brickwork."""
    h, w = img.shape[:2]
    cw, ch = w / nx, h / ny
    f = img.astype(np.float32)
    for j in range(ny):
        off = (j % 2) * cw / 2
        for i in range(nx):
            tint = 1.0 + rng.uniform(-jitter, jitter)
            x0, x1 = int(i * cw + off), int((i + 1) * cw + off)
            y0, y1 = int(j * ch), int((j + 1) * ch)
            f[y0:y1, x0 % w:min(x1, w)] *= tint
    img[:] = np.clip(f, 0, 255).astype(np.uint8)
    t = max(1, int(min(cw, ch) / 10))
    for j in range(ny + 1):
        cv2.line(img, (0, int(j * ch)), (w, int(j * ch)), color.tolist(), t)
        off = (j % 2) * cw / 2
        for i in range(nx + 1):
            x = int(i * cw + off) % w
            cv2.line(img, (x, int(j * ch)), (x, int((j + 1) * ch)), color.tolist(), t)


def facade_texture(rng: np.random.Generator, width_m: float, height_m: float, style: dict,
                   tpm: float = 16.0) -> np.ndarray:
    """A building front: wall material, window grid, shop ground floor, cornice (RGB)."""
    w, h = max(int(width_m * tpm), 8), max(int(height_m * tpm), 8)
    wall = random_color(rng, style["wall_hue"], (0.0, 0.55), (0.3, 0.92))
    img = _modulate(wall, value_noise(rng, h, w, 12, 3), 0.12)
    if rng.random() < 0.3:  # brick courses
        for y in range(0, h, max(2, int(0.3 * tpm))):
            cv2.line(img, (0, y), (w, y), (wall * 0.75).tolist(), 1)
    floor_h = rng.uniform(2.8, 3.8) * tpm
    win_w, win_h = rng.uniform(0.9, 1.8) * tpm, rng.uniform(1.2, 2.0) * tpm
    pitch = win_w + rng.uniform(0.8, 2.5) * tpm
    glass = random_color(rng, (0.5, 0.7), (0.05, 0.5), (0.08, 0.55))
    frame = random_color(rng, (0, 1), (0, 0.3), (0.4, 1.0))
    ground_floor = rng.uniform(3.2, 4.5) * tpm if rng.random() < 0.6 else floor_h
    ncols = max(1, int((w - 0.5 * tpm) // pitch))
    margin = (w - ncols * pitch) / 2
    y = h - ground_floor - floor_h
    while y > 0.6 * tpm:
        top = y + (floor_h - win_h) * 0.45
        for c in range(ncols):
            x0 = margin + c * pitch + (pitch - win_w) / 2
            p0, p1 = (int(x0), int(top)), (int(x0 + win_w), int(top + win_h))
            lit = glass * rng.uniform(0.7, 1.5)
            cv2.rectangle(img, p0, p1, np.clip(lit, 0, 255).tolist(), -1)
            cv2.rectangle(img, p0, p1, frame.tolist(), max(1, int(0.08 * tpm)))
            if rng.random() < 0.5:
                xm = int(x0 + win_w / 2)
                cv2.line(img, (xm, p0[1]), (xm, p1[1]), frame.tolist(), max(1, int(0.05 * tpm)))
        y -= floor_h
    gf_top = int(h - ground_floor)
    if ground_floor > floor_h * 0.99 and rng.random() < 0.8:  # shop windows and awnings
        shop = random_color(rng, (0, 1), (0.0, 0.4), (0.1, 0.5))
        x = int(rng.uniform(0.2, 1.0) * tpm)
        while x < w - tpm:
            sw = int(rng.uniform(2.0, 5.0) * tpm)
            cv2.rectangle(img, (x, gf_top + int(0.6 * tpm)), (min(x + sw, w - 2), h - int(0.3 * tpm)),
                          (shop * rng.uniform(0.6, 1.6)).clip(0, 255).tolist(), -1)
            if rng.random() < 0.4:
                awn = random_color(rng, (0, 1), (0.4, 1.0), (0.4, 1.0))
                cv2.rectangle(img, (x, gf_top + int(0.3 * tpm)), (min(x + sw, w - 2),
                              gf_top + int(0.9 * tpm)), awn.tolist(), -1)
            x += sw + int(rng.uniform(0.5, 2.0) * tpm)
    cv2.rectangle(img, (0, 0), (w, int(rng.uniform(0.2, 0.7) * tpm)), (wall * 0.7).tolist(), -1)
    cv2.line(img, (0, gf_top), (w, gf_top), (wall * 0.8).tolist(), max(1, int(0.15 * tpm)))
    return img


def wall_texture(rng: np.random.Generator, width_m: float, height_m: float, tpm: float = 24.0
                 ) -> np.ndarray:
    """Concrete, stone or plaster wall, sometimes with graffiti blotches (RGB)."""
    w, h = max(int(width_m * tpm), 4), max(int(height_m * tpm), 4)
    base = random_color(rng, (0, 1), (0.0, 0.35), (0.3, 0.85))
    img = _modulate(base, value_noise(rng, h, w, 6, 3), 0.2)
    if rng.random() < 0.5:
        _draw_joints(img, max(1, w // int(0.6 * tpm)), max(1, h // int(0.3 * tpm)), base * 0.7, rng,
                     0.1)
    for _ in range(rng.integers(0, 3)):
        c = random_color(rng, (0, 1), (0.5, 1), (0.3, 1)).tolist()
        cv2.ellipse(img, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                    (int(rng.integers(5, 40)), int(rng.integers(3, 15))), 0, 0, 360, c, -1)
    cv2.rectangle(img, (0, 0), (w, max(1, int(0.12 * tpm))), (base * 0.8).tolist(), -1)
    return img


def fence_texture(rng: np.random.Generator, width_m: float, height_m: float, tpm: float = 40.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Plank, panel or bar fence: RGB and an opacity mask (bar fences have gaps)."""
    w, h = max(int(width_m * tpm), 4), max(int(height_m * tpm), 4)
    base = random_color(rng, (0, 1), (0.0, 0.6), (0.2, 0.85))
    img = _modulate(base, value_noise(rng, h, w, 4, 2), 0.15)
    mask = np.ones((h, w), bool)
    kind = rng.integers(0, 3)
    if kind == 0:  # vertical bars with two rails
        step = max(3, int(rng.uniform(0.1, 0.2) * tpm))
        bar = max(1, int(rng.uniform(0.02, 0.05) * tpm))
        mask[:] = (np.arange(w) % step < bar)[None, :]
        for y in (int(0.1 * h), int(0.85 * h)):
            mask[y:y + max(1, int(0.05 * tpm))] = True
    elif kind == 1:  # planks with narrow gaps
        step = max(3, int(rng.uniform(0.1, 0.2) * tpm))
        mask[:] = (np.arange(w) % step < step - max(1, int(0.015 * tpm)))[None, :]
    else:  # solid panels
        for x in range(0, w, max(4, int(rng.uniform(1.5, 2.5) * tpm))):
            cv2.line(img, (x, 0), (x, h), (base * 0.6).tolist(), max(1, int(0.06 * tpm)))
    return img, mask


def sky_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Sky panel: clear, hazy, overcast or dusk gradient with cloud noise (RGB, top = zenith)."""
    kind = rng.choice(["clear", "hazy", "overcast", "dusk"], p=[0.4, 0.25, 0.25, 0.1])
    top = {"clear": random_color(rng, (0.55, 0.64), (0.35, 0.8), (0.6, 0.95)),
           "hazy": random_color(rng, (0.5, 0.65), (0.05, 0.3), (0.7, 0.95)),
           "overcast": random_color(rng, (0, 1), (0.0, 0.08), (0.5, 0.9)),
           "dusk": random_color(rng, (0.6, 0.75), (0.3, 0.6), (0.35, 0.7))}[kind]
    bottom = {"dusk": random_color(rng, (0.02, 0.12), (0.4, 0.8), (0.7, 1.0))}.get(
        kind, np.clip(top + rng.uniform(20, 70), 0, 255))
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None] ** 0.7
    img = top[None, None, :] * (1 - ramp) + bottom[None, None, :] * ramp
    img = np.broadcast_to(img, (height, width, 3)).astype(np.float32)
    cover = rng.uniform(0.0, 0.9) if kind != "overcast" else rng.uniform(0.5, 1.0)
    clouds = value_noise(rng, height, width, max(8, width // 12), 4)
    amount = np.clip((clouds + 1.0 - 2.0 * (1 - cover)) * 1.5, 0, 1)[..., None]
    cloud_col = np.array([rng.uniform(190, 250)] * 3, np.float32) * (0.85 + 0.15 * clouds[..., None])
    return np.clip(img * (1 - amount) + cloud_col * amount, 0, 255).astype(np.uint8)


def skyline_texture(rng: np.random.Generator, width: int, height: int, haze: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Distant city/tree line (2 texels/m): hazy RGB and labelIds (0 = sky shows through)."""
    label = np.zeros((height, width), np.uint8)
    base = np.zeros((height, width, 3), np.float32)
    x = 0
    while x < width:
        seg = min(int(rng.uniform(0.02, 0.08) * width), width - x)
        hgt = int(rng.uniform(0.12, 0.6) * height)
        if rng.random() < 0.65:
            label[height - hgt:, x:x + seg] = BUILDING
            base[height - hgt:, x:x + seg] = random_color(rng, (0, 1), (0, 0.35), (0.3, 0.8))
            rows = np.arange(height - hgt + 3, height - 4, 6)  # rows of windows, darker
            for r in rows:
                base[r:r + 2, x + 2:x + seg - 2:4] *= 0.6
        else:
            prof = value_noise(rng, 1, seg, max(2, seg // 6), 2)[0]
            tops = (height - hgt * (0.6 + 0.4 * prof)).astype(int).clip(0, height - 1)
            grove = np.arange(height)[:, None] >= tops[None, :]
            label[:, x:x + seg][grove] = VEGETATION
            base[:, x:x + seg][grove] = random_color(rng, (0.15, 0.35), (0.2, 0.6), (0.2, 0.5))
        x += seg
    noise = value_noise(rng, height, width, 3, 2)[..., None]
    mix = rng.uniform(0.3, 0.6)
    rgb = base * (1 + 0.2 * noise) * (1 - mix) + haze[None, None, :] * mix
    return np.clip(rgb, 0, 255).astype(np.uint8), label
