"""Moving and parked agents of the generator: vehicles, trams, cyclists, motorcyclists, pedestrians."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gsvnet_ros.data.synth import sprites as sp
from gsvnet_ros.data.synth.scene import (Lighting, Street, Surface, billboard, flat_panel,
                                         side_panel)
from gsvnet_ros.data.synth.textures import SIDEWALK, Texture, shade
from gsvnet_ros.data.synth.vehicles import vehicle_faces, vehicle_shape

__all__ = ["Footprint", "agents"]


@dataclass(frozen=True)
class Footprint:
    """Ground rectangle of a vehicle at time 0 and its velocity (for contact shadows)."""

    x0: float
    x1: float
    z0: float
    z1: float
    velocity: np.ndarray


def _lit(tex: Texture, factor: float) -> Texture:
    return Texture(shade(tex.rgb, factor), tex.label, tex.tpm)


def _vehicle(rng: np.random.Generator, lit: Lighting, kind: str, xc: float, z_near: float,
             speed: float, oncoming: bool, cam_x: float, out: list[Surface],
             feet: list[Footprint], along_x: bool = False) -> float:
    """A box vehicle moving along Z (or along X on a cross street); returns its length."""
    v = vehicle_shape(rng, kind)
    if along_x:  # crossing: the near face is the vehicle's side, the lateral face its end
        faces = vehicle_faces(rng, v, oncoming=(cam_x - xc) * speed > 0, front_at_right=speed > 0)
        vel = np.array([speed, 0.0, 0.0])
        x0 = xc - v.length / 2
        out.append(billboard(_lit(faces["side"], lit.factor(np.array([0, 0, -1.0]))), xc, z_near,
                             velocity=vel))
        lateral = x0 + v.length if x0 + v.length < cam_x else x0
        out.append(side_panel(_lit(faces["end"], lit.factor(np.array([np.sign(cam_x - xc), 0, 0]))),
                              lateral, z_near, velocity=vel))
        feet.append(Footprint(x0, x0 + v.length, z_near, z_near + v.width, vel))
        return v.width
    vel = np.array([0.0, 0.0, speed])
    faces = vehicle_faces(rng, v, oncoming=oncoming, front_at_right=not oncoming)
    near_side = xc - v.width / 2 if xc > cam_x else xc + v.width / 2
    out.append(billboard(_lit(faces["end"], lit.factor(np.array([0, 0, -1.0]))), xc, z_near,
                         velocity=vel))
    out.append(side_panel(_lit(faces["side"], lit.factor(np.array([np.sign(cam_x - xc), 0, 0]))),
                          near_side, z_near, velocity=vel))
    if "roof" in faces:
        out.append(flat_panel(_lit(faces["roof"], lit.factor(np.array([0, 1.0, 0]))),
                              xc - v.width / 2, z_near, v.height, velocity=vel))
    feet.append(Footprint(xc - v.width / 2, xc + v.width / 2, z_near, z_near + v.length, vel))
    return v.length


def _kind(rng: np.random.Generator, parked: bool = False) -> str:
    r = rng.random()
    if parked:
        return "car" if r < 0.97 else "truck"
    return "car" if r < 0.91 else ("truck" if r < 0.955 else "bus")


def _traffic(rng: np.random.Generator, st: Street, lit: Lighting, ego_speed: float, cam_x: float,
             out: list[Surface], feet: list[Footprint]) -> None:
    """Same-direction and oncoming lanes, an overtaking car, parked rows and cross traffic."""
    for i, x in enumerate(st.lanes_right):
        ego_lane = abs(x - cam_x) < 1.0
        z = rng.uniform(9.0, 35.0) if ego_lane else rng.uniform(-2.0, 25.0)
        flow = max(0.0, ego_speed + rng.normal(0, 2.0))
        while z < 160:
            if rng.random() < 0.55:
                speed = max(0.0, flow + rng.normal(0, 1.0))
                z += _vehicle(rng, lit, _kind(rng), x + rng.normal(0, 0.25), z, speed, False, cam_x,
                              out, feet)
            z += rng.uniform(6.0, 30.0) + 0.8 * flow
        if not ego_lane and rng.random() < 0.6:  # overtakes from behind: enters the view
            _vehicle(rng, lit, _kind(rng), x, rng.uniform(-18.0, -7.0), ego_speed + rng.uniform(3, 8),
                     False, cam_x, out, feet)
    for x in st.lanes_left:
        z = rng.uniform(8.0, 40.0)
        while z < 220:
            if rng.random() < 0.5:
                z += _vehicle(rng, lit, _kind(rng), x + rng.normal(0, 0.25), z,
                              -rng.uniform(4.0, 14.0), True, cam_x, out, feet)
            z += rng.uniform(8.0, 50.0)
    for park_x in (st.parking_right, st.parking_left):
        if park_x is None:
            continue
        z = rng.uniform(-12.0, 0.0)
        density = rng.uniform(0.25, 0.7)
        while z < 150:
            if rng.random() < density:
                if not st.in_cross(z, 6.0):
                    z += _vehicle(rng, lit, _kind(rng, True), park_x + rng.normal(0, 0.1), z, 0.0,
                                  park_x < 0 and rng.random() < 0.5, cam_x, out, feet)
            z += rng.uniform(0.8, 6.0)
    for z0, z1 in st.cross:
        for _ in range(int(rng.integers(0, 3))):
            speed = rng.choice([-1, 1]) * rng.uniform(3.0, 10.0)
            xc = rng.uniform(-40.0, 40.0)
            _vehicle(rng, lit, _kind(rng), xc, z0 + rng.uniform(1.0, max(1.5, z1 - z0 - 3.0)), speed,
                     False, cam_x, out, feet, along_x=True)
    if rng.random() < 0.15:  # a tram in the road centre
        x = st.lanes_left[0] if rng.random() < 0.5 else st.lanes_right[-1]
        st.rails.extend([x - 0.72, x + 0.72])
        oncoming = x < 0
        speed = -rng.uniform(5, 12) if oncoming else max(0.0, ego_speed + rng.normal(0, 2))
        _vehicle(rng, lit, "tram", x, rng.uniform(10.0, 60.0), speed, oncoming, cam_x, out, feet)


def _two_wheelers(rng: np.random.Generator, st: Street, lit: Lighting, cam_x: float,
                  out: list[Surface]) -> None:
    """Cyclists and motorcyclists as crossed billboards (rear view and side view)."""
    for _ in range(int(rng.integers(0, 7))):
        motor = rng.random() < 0.3
        right = rng.random() < 0.65
        edge = st.road_right if right else st.road_left
        xc = edge - np.sign(edge) * rng.uniform(0.6, 1.5)
        if motor:
            xc = rng.choice(st.lanes_right if right else st.lanes_left) + rng.normal(0, 0.5)
        speed = rng.uniform(8, 14) if motor else rng.uniform(3.0, 7.0)
        vel = np.array([0.0, 0.0, speed if right else -speed])
        seed = int(rng.integers(2 ** 31))
        rear = sp.two_wheeler(np.random.default_rng(seed), motor, side_view=False)
        side = sp.two_wheeler(np.random.default_rng(seed), motor, side_view=True)
        z = rng.uniform(4.0, 70.0)
        f = lit.factor(np.array([0, 0, -1.0]))
        out.append(billboard(_lit(rear, f), xc, z + side.size_m[0] / 2, velocity=vel))
        out.append(side_panel(_lit(side, f), xc, z, velocity=vel))


def _pedestrians(rng: np.random.Generator, st: Street, lit: Lighting, out: list[Surface]) -> None:
    """Walkers and standing groups on the sidewalks, crossers at crossings and between parked cars."""
    f = lit.factor(np.array([0, 0, -1.0]))
    for side in (1, -1):
        edge = st.road_right if side > 0 else st.road_left
        walk = [(edge + side * sum(w for _, w in st.bands[side][:i]), w)
                for i, (lab, w) in enumerate(st.bands[side]) if lab == SIDEWALK]
        if not walk:
            continue
        for _ in range(int(rng.integers(4, 26))):
            start, width = walk[int(rng.integers(0, len(walk)))]
            x = start + side * rng.uniform(0.3, max(0.4, width - 0.3))
            z = rng.uniform(-2.0, 90.0)
            moving = rng.random() < 0.7
            vel = np.array([0.0, 0.0, rng.choice([-1, 1]) * rng.uniform(0.8, 1.7) if moving else 0.0])
            for k in range(1 if rng.random() < 0.7 else int(rng.integers(2, 5))):
                out.append(billboard(_lit(sp.person(rng), f), x + rng.normal(0, 0.3),
                                     z + 0.5 * k + rng.normal(0, 0.2), velocity=vel))
    for z0, _ in st.cross:
        for _ in range(int(rng.integers(0, 5))):
            speed = rng.choice([-1, 1]) * rng.uniform(0.8, 1.7)
            out.append(billboard(_lit(sp.person(rng), f), rng.uniform(st.road_left, st.road_right),
                                 z0 - rng.uniform(1.5, 3.5), velocity=np.array([speed, 0.0, 0.0])))
    for park_x in (st.parking_right, st.parking_left):
        if park_x is not None and rng.random() < 0.5:  # steps out from behind a parked car
            sgn = np.sign(park_x)
            out.append(billboard(_lit(sp.person(rng), f), park_x + sgn * 0.5, rng.uniform(6.0, 30.0),
                                 velocity=np.array([-sgn * rng.uniform(0.8, 1.5), 0.0, 0.0])))


def agents(rng: np.random.Generator, st: Street, lit: Lighting, ego_speed: float, cam_x: float
           ) -> tuple[list[Surface], list[Footprint]]:
    """All agents of a sequence and the vehicle footprints (for contact shadows)."""
    out: list[Surface] = []
    feet: list[Footprint] = []
    _traffic(rng, st, lit, ego_speed, cam_x, out, feet)
    _two_wheelers(rng, st, lit, cam_x, out)
    _pedestrians(rng, st, lit, out)
    return out, feet
