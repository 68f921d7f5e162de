"""Procedural sprites of the synthetic generator: persons, riders, trees, hedges, poles, signs, lights."""
from __future__ import annotations

import math

import cv2
import numpy as np

from gsvnet_ros.data.synth.textures import (BICYCLE, LIGHT, MOTORCYCLE, PERSON, POLE, RIDER, SIGN,
                                            VEGETATION, Texture, random_color, value_noise)

__all__ = ["Canvas", "person", "two_wheeler", "tree", "hedge", "street_lamp", "sign_post",
           "traffic_light"]

_SHIFT = 4  # sub-pixel bits for cv2 drawing


class Canvas:
    """A sprite canvas in metres (x right, y up from the ground line); draws RGB and labels alike."""

    def __init__(self, width_m: float, height_m: float, tpm: float, fill: np.ndarray) -> None:
        self.tpm, self.height_m = tpm, height_m
        self.w, self.h = max(2, int(math.ceil(width_m * tpm))), max(2, int(math.ceil(height_m * tpm)))
        self.rgb = np.empty((self.h, self.w, 3), np.uint8)
        self.rgb[:] = np.clip(fill, 0, 255).astype(np.uint8)
        self.label = np.zeros((self.h, self.w), np.uint8)

    def _pts(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, np.float64)
        px = np.stack([pts[:, 0] * self.tpm, (self.height_m - pts[:, 1]) * self.tpm], axis=1)
        return np.round(px * (1 << _SHIFT)).astype(np.int32)

    def poly(self, pts, color, lab: int) -> None:
        arr = [self._pts(pts)]
        cv2.fillPoly(self.rgb, arr, np.clip(color, 0, 255).tolist(), cv2.LINE_8, _SHIFT)
        if lab:
            cv2.fillPoly(self.label, arr, int(lab), cv2.LINE_8, _SHIFT)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color, lab: int) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color, lab)

    def circle(self, x: float, y: float, r: float, color, lab: int, thick_m: float = 0.0) -> None:
        c = tuple(self._pts([(x, y)])[0])
        t = -1 if thick_m <= 0 else max(1, int(round(thick_m * self.tpm)))
        rr = int(round(r * self.tpm * (1 << _SHIFT)))
        cv2.circle(self.rgb, c, rr, np.clip(color, 0, 255).tolist(), t, cv2.LINE_8, _SHIFT)
        if lab:
            cv2.circle(self.label, c, rr, int(lab), t, cv2.LINE_8, _SHIFT)

    def line(self, x0: float, y0: float, x1: float, y1: float, thick_m: float, color, lab: int
             ) -> None:
        a, b = self._pts([(x0, y0), (x1, y1)])
        t = max(1, int(round(thick_m * self.tpm)))
        cv2.line(self.rgb, tuple(a), tuple(b), np.clip(color, 0, 255).tolist(), t, cv2.LINE_8, _SHIFT)
        if lab:
            cv2.line(self.label, tuple(a), tuple(b), int(lab), t, cv2.LINE_8, _SHIFT)

    def texture(self, rng: np.random.Generator, grain: float = 0.08) -> Texture:
        noise = value_noise(rng, self.h, self.w, max(2, int(self.tpm * 0.1)), 2)
        rgb = np.clip(self.rgb * (1.0 + grain * noise[..., None]), 0, 255).astype(np.uint8)
        return Texture(rgb, self.label, self.tpm)


def _skin(rng: np.random.Generator) -> np.ndarray:
    return random_color(rng, (0.02, 0.1), (0.2, 0.6), (0.3, 0.95))


def _cloth(rng: np.random.Generator) -> np.ndarray:
    return random_color(rng, (0, 1), (0.0, 0.9), (0.1, 0.9))


def _figure(c: Canvas, rng: np.random.Generator, cx: float, foot: float, height: float, lab: int,
            stride: float, seated: bool = False) -> None:
    """A standing/walking (or seated) human figure centred at cx, feet at `foot`."""
    s = height / 1.75
    hip, shoulder, head_r = foot + 0.9 * s, foot + 1.45 * s, 0.11 * s
    legs, top = _cloth(rng), _cloth(rng)
    if seated:
        c.line(cx, hip, cx + 0.35 * s, hip - 0.1 * s, 0.14 * s, legs, lab)
        c.line(cx + 0.35 * s, hip - 0.1 * s, cx + 0.3 * s, foot + 0.1 * s, 0.12 * s, legs, lab)
    else:
        for sgn in (-1, 1):
            c.line(cx + 0.05 * s * sgn, hip, cx + sgn * stride * s, foot + 0.05 * s, 0.13 * s, legs, lab)
            c.rect(cx + sgn * stride * s - 0.07 * s, foot, cx + sgn * stride * s + 0.08 * s,
                   foot + 0.06 * s, legs * 0.4, lab)
    width = rng.uniform(0.34, 0.46) * s
    c.poly([(cx - width / 2, shoulder), (cx + width / 2, shoulder), (cx + width * 0.42, hip - 0.05 * s),
            (cx - width * 0.42, hip - 0.05 * s)], top, lab)
    for sgn in (-1, 1):
        swing = rng.uniform(-0.12, 0.12) * s
        c.line(cx + sgn * width * 0.45, shoulder - 0.04 * s, cx + sgn * width * 0.55 + swing,
               hip - 0.05 * s, 0.08 * s, top * 0.9, lab)
    c.circle(cx, shoulder + 0.05 * s + head_r, head_r, _skin(rng), lab)
    hair = random_color(rng, (0.0, 0.12), (0.0, 0.7), (0.05, 0.8))
    c.poly([(cx - head_r, shoulder + 0.05 * s + head_r * 1.1), (cx + head_r, shoulder + 0.05 * s +
            head_r * 1.1), (cx + head_r * 0.7, shoulder + 0.05 * s + 2.05 * head_r),
            (cx - head_r * 0.7, shoulder + 0.05 * s + 2.05 * head_r)], hair, lab)
    if rng.random() < 0.3:  # bag or backpack
        side = rng.choice([-1, 1])
        c.rect(cx + side * width * 0.5, hip - 0.05 * s, cx + side * (width * 0.5 + 0.16 * s),
               hip + 0.25 * s, _cloth(rng) * 0.6, lab)


def person(rng: np.random.Generator) -> Texture:
    """A pedestrian billboard (adult or child), label person."""
    height = rng.uniform(1.5, 1.95) if rng.random() < 0.85 else rng.uniform(1.0, 1.4)
    c = Canvas(0.8 * height / 1.75 + 0.1, height + 0.05, 90.0, _cloth(rng))
    _figure(c, rng, c.w / c.tpm / 2, 0.0, height, PERSON, rng.uniform(0.0, 0.15))
    return c.texture(rng, 0.06)


def two_wheeler(rng: np.random.Generator, motor: bool, side_view: bool, rider: bool = True
                ) -> Texture:
    """Bicycle or motorcycle, side or rear view, with or without a rider."""
    lab = MOTORCYCLE if motor else BICYCLE
    frame = random_color(rng, (0, 1), (0.0, 1.0), (0.1, 0.9))
    wheel_r = rng.uniform(0.3, 0.36)
    length = rng.uniform(1.9, 2.2) if motor else rng.uniform(1.6, 1.8)
    tall = 1.9 if rider else 1.2
    if side_view:
        c = Canvas(length + 0.1, tall, 70.0, frame)
        xr, xf = 0.05 + wheel_r, length + 0.05 - wheel_r
        dark = np.array([25, 25, 25], np.float32)
        for x in (xr, xf):
            if motor:
                c.circle(x, wheel_r, wheel_r, dark, lab)
                c.circle(x, wheel_r, wheel_r * 0.5, frame * 0.6 + 60, lab)
            else:
                c.circle(x, wheel_r, wheel_r, dark, lab, thick_m=0.04)
                c.line(x - wheel_r, wheel_r, x + wheel_r, wheel_r, 0.01, dark + 80, lab)
        seat = (xr + 0.35 * (xf - xr), 2.3 * wheel_r)
        bar = (xf - 0.1, 2.5 * wheel_r)
        if motor:
            c.poly([(xr, wheel_r), (xr + 0.3, 2.4 * wheel_r), (xf - 0.2, 2.6 * wheel_r),
                    (xf, wheel_r * 1.3), (xr + 0.7, wheel_r * 0.8)], frame, lab)
        else:
            for a, b in ((xr, wheel_r), (xf, wheel_r)), ((xr, wheel_r), seat), (seat, bar), \
                        ((xr + 0.45 * (xf - xr), wheel_r), seat), ((xr + 0.45 * (xf - xr), wheel_r), bar):
                c.line(a[0], a[1], b[0], b[1], 0.035, frame, lab)
        if rider:
            cx = seat[0] + 0.05
            _figure(c, rng, cx, seat[1] - 0.9 * 1.7 / 1.75, 1.7, RIDER, 0.0, seated=True)
    else:
        c = Canvas(0.75, tall, 80.0, frame)
        cx = 0.375
        tyre = 0.12 if motor else 0.05
        c.rect(cx - tyre / 2, 0.0, cx + tyre / 2, 2 * wheel_r, np.array([25, 25, 25]), lab)
        c.rect(cx - 0.09, 1.6 * wheel_r, cx + 0.09, 2.1 * wheel_r, frame, lab)  # mudguard, rack
        c.rect(cx - 0.04, 1.75 * wheel_r, cx + 0.04, 1.9 * wheel_r, np.array([200, 20, 20]), lab)
        c.line(cx - 0.3, 2.6 * wheel_r, cx + 0.3, 2.6 * wheel_r, 0.03, frame, lab)  # handlebar
        if rider:
            _figure(c, rng, cx, 2.3 * wheel_r - 0.9 * 1.7 / 1.75, 1.7, RIDER, 0.16)
    return c.texture(rng, 0.05)


def tree(rng: np.random.Generator, leaf: np.ndarray, height: float) -> Texture:
    """A street tree billboard: trunk and an irregular crown with a few gaps, label vegetation."""
    crown_w = rng.uniform(0.45, 0.75) * height
    c = Canvas(crown_w, height, 16.0, leaf)
    trunk_w = rng.uniform(0.2, 0.45)
    base = rng.uniform(0.3, 0.5) * height
    bark = random_color(rng, (0.02, 0.12), (0.1, 0.5), (0.15, 0.45))
    c.rect(crown_w / 2 - trunk_w / 2, 0, crown_w / 2 + trunk_w / 2, base + 1.0, bark, VEGETATION)
    yy, xx = np.mgrid[0:c.h, 0:c.w].astype(np.float32)
    field = np.full((c.h, c.w), -1.0, np.float32)
    top = c.h - base * c.tpm  # crown bottom row
    for _ in range(int(rng.integers(4, 10))):
        rx, ry = rng.uniform(0.18, 0.32) * c.w, rng.uniform(0.12, 0.25) * top
        ex, ey = rng.uniform(rx, c.w - rx), rng.uniform(ry, max(ry + 1, top - ry * 0.6))
        field = np.maximum(field, 1.0 - ((xx - ex) / rx) ** 2 - ((yy - ey) / ry) ** 2)
    ragged = field + 0.35 * value_noise(rng, c.h, c.w, 6, 2)
    crown = ragged > 0.1
    clumps = value_noise(rng, c.h, c.w, 5, 3)
    shade_map = 0.7 + 0.35 * np.clip(field, 0, 1) + 0.3 * clumps
    leaves = np.clip(leaf[None, None, :] * shade_map[..., None], 0, 255).astype(np.uint8)
    c.rgb[crown] = leaves[crown]
    c.label[crown] = VEGETATION
    return c.texture(rng, 0.12)


def hedge(rng: np.random.Generator, leaf: np.ndarray, length: float, height: float) -> Texture:
    """A hedge or bush row with an uneven top (label vegetation)."""
    c = Canvas(length, height, 20.0, leaf)
    top = (1.0 - 0.12 * value_noise(rng, 1, c.w, 10, 3)[0]) * c.h * 0.9
    rows = np.arange(c.h, dtype=np.float32)[:, None]
    mask = rows >= (c.h - top)[None, :]
    tex = np.clip(leaf * (0.8 + 0.3 * value_noise(rng, c.h, c.w, 3, 3))[..., None], 0, 255)
    c.rgb[:] = tex.astype(np.uint8)
    c.label[mask] = VEGETATION
    return c.texture(rng, 0.05)


def _metal(rng: np.random.Generator) -> np.ndarray:
    return random_color(rng, (0, 1), (0.0, 0.25), (0.15, 0.75))


def street_lamp(rng: np.random.Generator, arm_right: bool) -> Texture:
    """Lamp post with an arm and lamp head (all pole); the arm points right when `arm_right`."""
    height, arm = rng.uniform(5.5, 9.0), rng.uniform(0.6, 2.2)
    pw = rng.uniform(0.12, 0.22)
    c = Canvas(arm + pw + 0.3, height + 0.3, 40.0, _metal(rng))
    x = 0.15 if arm_right else arm + 0.15
    col = _metal(rng)
    c.poly([(x, 0), (x + pw, 0), (x + pw * 0.8, height), (x + pw * 0.2, height)], col, POLE)
    end = x + pw + arm if arm_right else x - arm
    c.line(x + pw / 2, height, end, height + 0.1, 0.08, col, POLE)
    c.rect(end - 0.25, height - 0.12, end + 0.25, height + 0.12, col * 0.8, POLE)
    return c.texture(rng, 0.08)


def sign_post(rng: np.random.Generator) -> Texture:
    """A post (pole) with one or two sign plates (traffic sign) of random shapes and colours."""
    post_h = rng.uniform(2.0, 3.2)
    c = Canvas(1.0, post_h + 0.5, 80.0, _metal(rng))
    c.rect(0.46, 0, 0.54, post_h, _metal(rng), POLE)
    y = post_h
    for _ in range(int(rng.integers(1, 3))):
        r = rng.uniform(0.25, 0.42)
        shape = rng.integers(0, 4)
        col = random_color(rng, (0, 1), (0.3, 1.0), (0.5, 1.0))
        rim = random_color(rng, (0, 1), (0.0, 1.0), (0.2, 1.0))
        if shape == 0:
            c.circle(0.5, y - r, r, rim, SIGN)
            c.circle(0.5, y - r, r * 0.78, col, SIGN)
        elif shape == 1:
            c.poly([(0.5 - r, y - 1.7 * r), (0.5 + r, y - 1.7 * r), (0.5, y)], rim, SIGN)
            c.poly([(0.5 - 0.7 * r, y - 1.55 * r), (0.5 + 0.7 * r, y - 1.55 * r), (0.5, y - 0.35 * r)],
                   col, SIGN)
        else:
            w = r * (1.0 if shape == 2 else rng.uniform(1.2, 1.9))
            c.rect(0.5 - w, y - 2 * r, 0.5 + w, y, rim, SIGN)
            c.rect(0.5 - w * 0.88, y - 2 * r + 0.04, 0.5 + w * 0.88, y - 0.04, col, SIGN)
        if rng.random() < 0.6:  # a symbol
            c.line(0.5 - r * 0.4, y - r, 0.5 + r * 0.4, y - r * 1.1, 0.05, rim * 0.3, SIGN)
        y -= 2 * r + 0.08
    return c.texture(rng, 0.04)


def traffic_light(rng: np.random.Generator, hanging: bool, arm_right: bool = True) -> Texture:
    """Traffic light housing (3 lamps, one lit) on a post, or hanging from a mast arm."""
    housing = random_color(rng, (0, 1), (0.0, 0.9), (0.05, 0.75))
    hw, hh = rng.uniform(0.28, 0.4), rng.uniform(0.8, 1.05)
    lit = int(rng.integers(0, 3))
    colours = [np.array([255, 40, 30]), np.array([255, 190, 30]), np.array([60, 255, 120])]
    if hanging:
        arm = rng.uniform(3.0, 6.0)
        height = rng.uniform(5.0, 6.5)
        c = Canvas(arm + 0.6, height + 0.3, 30.0, housing)
        x = 0.15 if arm_right else arm + 0.3
        c.rect(x, 0, x + 0.22, height, _metal(rng), POLE)
        end = x + arm if arm_right else x - arm + 0.22
        c.line(x + 0.11, height - 0.1, end, height - 0.1, 0.12, _metal(rng), POLE)
        hx, top = end - hw / 2, height - 0.2
    else:
        height = rng.uniform(2.2, 3.2)
        c = Canvas(0.8, height + hh + 0.1, 60.0, housing)
        c.rect(0.35, 0, 0.45, height, _metal(rng), POLE)
        hx, top = 0.4 - hw / 2, height + hh
    c.rect(hx, top - hh, hx + hw, top, housing, LIGHT)
    for i in range(3):
        cy = top - hh * (i + 0.5) / 3
        col = colours[i] if i == lit else colours[i] * 0.25 + 20
        c.circle(hx + hw / 2, cy, hw * 0.32, col, LIGHT)
    return c.texture(rng, 0.04)
