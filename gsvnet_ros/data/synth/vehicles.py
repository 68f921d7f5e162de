"""Procedural vehicle faces (end, side, roof) for cars, trucks, buses and trams of the generator."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gsvnet_ros.data.synth.sprites import Canvas
from gsvnet_ros.data.synth.textures import BUS, CAR, TRAIN, TRUCK, Texture, random_color

__all__ = ["VehicleShape", "vehicle_shape", "vehicle_faces"]

LABEL_OF_KIND = {"car": CAR, "truck": TRUCK, "bus": BUS, "tram": TRAIN}
_DARK = np.array([22, 22, 24], np.float32)


@dataclass(frozen=True)
class VehicleShape:
    """Box size in metres and the colours of one vehicle."""

    kind: str
    length: float
    width: float
    height: float
    body: np.ndarray
    glass: np.ndarray


def vehicle_shape(rng: np.random.Generator, kind: str) -> VehicleShape:
    """Random dimensions and colours for a vehicle kind: car, truck, bus or tram."""
    if kind == "car":
        van = rng.random() < 0.15
        dims = (rng.uniform(4.6, 5.3) if van else rng.uniform(3.7, 4.9), rng.uniform(1.7, 1.95),
                rng.uniform(1.85, 2.1) if van else rng.uniform(1.4, 1.6))
    elif kind == "truck":
        dims = (rng.uniform(6.0, 10.0), rng.uniform(2.3, 2.55), rng.uniform(2.8, 3.8))
    elif kind == "bus":
        dims = (rng.uniform(10.5, 13.0), 2.55, rng.uniform(3.0, 3.3))
    elif kind == "tram":
        dims = (rng.uniform(20.0, 30.0), rng.uniform(2.3, 2.65), rng.uniform(3.3, 3.6))
    else:
        raise ValueError(f"unknown vehicle kind {kind!r}; expected car, truck, bus or tram")
    body = random_color(rng, (0, 1), (0.0, 0.9), (0.08, 0.95))
    glass = random_color(rng, (0.5, 0.7), (0.0, 0.4), (0.05, 0.35))
    return VehicleShape(kind, *dims, body=body, glass=glass)


def _end_face(rng: np.random.Generator, v: VehicleShape, front: bool) -> Texture:
    """The end of the vehicle that faces the camera: rear (lights red) or front (headlights)."""
    lab = LABEL_OF_KIND[v.kind]
    w, h = v.width, v.height
    c = Canvas(w, h, 48.0, v.body)
    if v.kind == "car":
        belt = h * rng.uniform(0.52, 0.62)
        c.poly([(0.02, 0.12), (w - 0.02, 0.12), (w, belt - 0.1), (w - 0.05, belt),
                (0.05, belt), (0, belt - 0.1)], v.body, lab)
        c.poly([(0.08 * w, belt), (0.92 * w, belt), (0.82 * w, h), (0.18 * w, h)], v.body, lab)
        c.poly([(0.13 * w, belt + 0.05), (0.87 * w, belt + 0.05), (0.8 * w, h - 0.06),
                (0.2 * w, h - 0.06)], v.glass, lab)
        for x0 in (0.08, w - 0.38):  # tyres under the body
            c.rect(x0, 0.0, x0 + 0.3, 0.2, _DARK, lab)
    else:
        c.rect(0, 0.3, w, h, v.body, lab)
        for x0 in (0.1, w - 0.5):
            c.rect(x0, 0.0, x0 + 0.4, 0.35, _DARK, lab)
        if front or v.kind in ("bus", "tram"):
            top = 0.45 * h if v.kind != "truck" else 0.55 * h
            c.rect(0.1, top, w - 0.1, h - 0.25, v.glass, lab)
            c.rect(0.3, h - 0.22, w - 0.3, h - 0.05, _DARK + 40, lab)  # destination display
        else:
            c.line(w / 2, 0.45, w / 2, h - 0.1, 0.03, v.body * 0.6, lab)
    lamp = np.array([250, 245, 210]) if front else np.array([200, 20, 25])
    y = 0.35 * h if v.kind == "car" else 0.2 * h + 0.3
    c.rect(0.05, y, 0.3, y + 0.14, lamp, lab)
    c.rect(w - 0.3, y, w - 0.05, y + 0.14, lamp, lab)
    if front:
        c.rect(0.35 * w, y - 0.02, 0.65 * w, y + 0.12, _DARK + 20, lab)  # grille
    c.rect(w / 2 - 0.26, 0.2, w / 2 + 0.26, 0.31, np.array([235, 235, 230]), lab)  # plate
    c.rect(0.02, 0.12, w - 0.02, 0.2, v.body * 0.5, lab)  # bumper
    return c.texture(rng, 0.05)


def _side_face(rng: np.random.Generator, v: VehicleShape, front_at_right: bool) -> Texture:
    """The side profile; drawn with the front on the right, mirrored when asked."""
    lab = LABEL_OF_KIND[v.kind]
    length, h = v.length, v.height
    c = Canvas(length, h + (0.9 if v.kind == "tram" else 0.0), 40.0, v.body)
    r = 0.32 if v.kind == "car" else 0.5
    if v.kind == "car":
        belt = h * rng.uniform(0.52, 0.62)
        hatch = rng.random() < 0.4
        rear_post = 0.04 if hatch else rng.uniform(0.15, 0.25)
        c.poly([(0.0, 0.15), (0.0, belt), (rear_post * length, belt), (rear_post * length + 0.25, h),
                (0.62 * length, h), (0.78 * length, belt), (length, belt - 0.12), (length, 0.15)],
               v.body, lab)
        c.poly([(rear_post * length + 0.1, belt + 0.05), (rear_post * length + 0.28, h - 0.06),
                (0.6 * length, h - 0.06), (0.73 * length, belt + 0.05)], v.glass, lab)
        c.line(0.48 * length, belt + 0.02, 0.48 * length, h - 0.05, 0.05, v.body, lab)
        c.line(0.48 * length, 0.25, 0.48 * length, belt - 0.05, 0.01, v.body * 0.6, lab)
        wheels = (0.18 * length, 0.8 * length)
    elif v.kind == "truck":
        cab = rng.uniform(1.8, 2.4)
        box = random_color(rng, (0, 1), (0.0, 0.6), (0.3, 0.95))
        c.rect(0, 0.35, length - cab - 0.2, h, box, lab)
        c.rect(length - cab, 0.35, length, 0.8 * h, v.body, lab)
        c.rect(length - cab * 0.6, 0.5 * h, length - 0.1, 0.75 * h, v.glass, lab)
        if rng.random() < 0.5:  # livery stripe
            c.rect(0.2, 0.5 * h, length - cab - 0.4, 0.6 * h, random_color(rng), lab)
        wheels = (0.15 * length, 0.3 * length, length - cab * 0.5)
    else:
        c.poly([(0, 0.3), (0, h - 0.15), (0.15, h), (length - 0.15, h), (length, h - 0.15),
                (length, 0.3)], v.body, lab)
        c.rect(0.3, 0.5 * h, length - 1.5, 0.85 * h, v.glass, lab)
        c.rect(length - 1.3, 0.4 * h, length - 0.1, 0.9 * h, v.glass, lab)
        for x in np.arange(1.5, length - 2.0, rng.uniform(1.2, 1.8)):
            c.line(x, 0.5 * h, x, 0.85 * h, 0.05, v.body, lab)
        for x in np.linspace(0.3 * length, 0.7 * length, 2 if v.kind == "bus" else 4):
            c.rect(x, 0.3, x + 1.1, 0.85 * h, v.glass * 0.8, lab)  # doors
        wheels = ((0.2 * length, 0.8 * length) if v.kind == "bus"
                  else tuple(np.linspace(0.1, 0.9, 4) * length))
        if v.kind == "tram":  # pantograph on the roof
            xm = length / 2
            for a, b in (((xm - 0.8, h), (xm, h + 0.8)), ((xm + 0.8, h), (xm, h + 0.8)),
                         ((xm - 0.7, h + 0.8), (xm + 0.7, h + 0.8))):
                c.line(a[0], a[1], b[0], b[1], 0.05, _DARK + 30, lab)
    for x in wheels:
        c.circle(x, r, r, _DARK, lab)
        c.circle(x, r, r * 0.55, np.array([120, 120, 125]), lab)
    tex = c.texture(rng, 0.05)
    if not front_at_right:
        tex = Texture(tex.rgb[:, ::-1].copy(), tex.label[:, ::-1].copy(), tex.tpm)
    return tex


def vehicle_faces(rng: np.random.Generator, v: VehicleShape, oncoming: bool,
                  front_at_right: bool) -> dict[str, Texture]:
    """'end' (the face nearest the camera), 'side' and, for cars, 'roof' textures."""
    faces = {"end": _end_face(rng, v, front=oncoming), "side": _side_face(rng, v, front_at_right)}
    if v.kind == "car":
        c = Canvas(v.width, v.length, 16.0, v.body)
        c.rect(0.05 * v.width, 0.2 * v.length, 0.95 * v.width, 0.65 * v.length, v.body, CAR)
        faces["roof"] = c.texture(rng, 0.05)
    return faces
