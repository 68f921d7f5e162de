"""Static layout of the generator: building rows, parks, gaps, yards, street furniture, skyline, sky."""
from __future__ import annotations

import numpy as np

from gsvnet_ros.data.synth import sprites as sp
from gsvnet_ros.data.synth.scene import (Lighting, Street, Surface, billboard, side_panel, solid)
from gsvnet_ros.data.synth.textures import (BUILDING, FENCE, SKY, TERRAIN, WALL, Texture,
                                            facade_texture, fence_texture, shade, skyline_texture,
                                            sky_texture, wall_texture)

__all__ = ["static_surfaces"]


def _building_row(rng: np.random.Generator, st: Street, lit: Lighting, side: int, style: dict,
                  out: list[Surface]) -> None:
    """Front buildings with gaps, their visible side walls, and a taller second row behind."""
    base = st.outer(side)
    normal = np.array([-side, 0.0, 0.0])
    front_shade = lit.factor(normal)
    end_shade = lit.factor(np.array([0.0, 0.0, -1.0]))
    z, prev = -40.0, None
    shadow_z, shadow_x, shadow_h = [-1e4], [base], [0.0]
    while z < 300:
        if st.in_cross(z, margin=2.0):
            z = max(z1 for z0, z1 in st.cross if z0 - 2 <= z <= z1 + 2) + 2.5
            prev = None
            continue
        width = rng.uniform(*style["width"])
        nxt = [z0 for z0, _ in st.cross if z0 > z]
        if nxt:
            width = min(width, nxt[0] - 2.0 - z)
        if width < 3:
            z += width + 4.5
            prev = None
            continue
        if rng.random() < style["park"]:
            width = min(rng.uniform(20.0, 60.0), nxt[0] - 2.0 - z if nxt else 60.0)
            _park(rng, st, lit, side, z, width, out)
            z += width
            prev = None
            continue
        if rng.random() < style["gap"]:
            _gap(rng, st, lit, side, z, width, out)
            z += width
            prev = None
            continue
        setback = rng.uniform(0, 1.5) if rng.random() < 0.8 else rng.uniform(2.0, 6.0)
        height = rng.uniform(*style["height"])
        x = base + side * setback
        tex = solid(shade(facade_texture(rng, width, height, style), front_shade), BUILDING, 16.0)
        out.append(side_panel(tex, x, z))
        if prev is None or prev[0] < height or side * (prev[1] - x) > 0.2:
            depth = rng.uniform(6.0, 14.0)
            end = solid(shade(facade_texture(rng, depth, height, style), end_shade), BUILDING, 16.0)
            out.append(billboard(end, x + side * depth / 2, z))
        if setback > 1.6:
            _front_yard(rng, lit, side, base, z, width, setback, out)
        shadow_z.append(z)
        shadow_x.append(x)
        shadow_h.append(height)
        prev = (height, x)
        z += width
    for z0 in np.arange(-40.0, 320.0, 60.0):  # second row, seen in gaps and above low houses
        w = rng.uniform(40.0, 70.0)
        h = rng.uniform(style["height"][1], style["height"][1] + 18.0)
        tex = solid(shade(facade_texture(rng, w, h, style, tpm=8.0), front_shade * 0.9), BUILDING, 8.0)
        out.append(side_panel(tex, base + side * rng.uniform(14.0, 30.0), z0))
    st.shadow[side] = (np.array(shadow_z), np.array(shadow_x), np.array(shadow_h))


def _gap(rng: np.random.Generator, st: Street, lit: Lighting, side: int, z: float, width: float,
         out: list[Surface]) -> None:
    """A gap between buildings: wall, fence or hedge at the building line and trees behind."""
    base = st.outer(side)
    kind = rng.integers(0, 3)
    h = rng.uniform(1.0, 2.6)
    if kind == 0:
        rgb = shade(wall_texture(rng, width, h), lit.factor(np.array([-side, 0.0, 0.0])))
        out.append(side_panel(solid(rgb, WALL, 24.0), base, z))
    elif kind == 1:
        rgb, mask = fence_texture(rng, width, h)
        out.append(side_panel(Texture(shade(rgb, lit.factor(np.array([-side, 0.0, 0.0]))),
                                      (mask * FENCE).astype(np.uint8), 40.0), base, z))
    else:
        out.append(side_panel(sp.hedge(rng, lit.leaf, width, h), base, z))
    for _ in range(int(rng.integers(1, 5))):
        tr = sp.tree(rng, lit.leaf * rng.uniform(0.8, 1.2), rng.uniform(7.0, 18.0))
        out.append(billboard(tr, base + side * rng.uniform(2.0, 10.0), z + rng.uniform(0, width)))


def _park(rng: np.random.Generator, st: Street, lit: Lighting, side: int, z: float, width: float,
          out: list[Surface]) -> None:
    """A park or green: terrain ground, a fence/hedge/low wall at the edge, trees in depth."""
    base = st.outer(side)
    st.parks.append((side, z, z + width))
    edge = rng.integers(0, 4)
    facing = lit.factor(np.array([-side, 0.0, 0.0]))
    if edge == 0:
        rgb, mask = fence_texture(rng, width, rng.uniform(0.9, 2.0))
        out.append(side_panel(Texture(shade(rgb, facing), (mask * FENCE).astype(np.uint8), 40.0),
                              base, z))
    elif edge == 1:
        out.append(side_panel(sp.hedge(rng, lit.leaf, width, rng.uniform(0.7, 1.8)), base, z))
    elif edge == 2:
        rgb = shade(wall_texture(rng, width, rng.uniform(0.5, 1.2)), facing)
        out.append(side_panel(solid(rgb, WALL, 24.0), base, z))
    for _ in range(int(width / rng.uniform(3.0, 7.0))):
        tr = sp.tree(rng, lit.leaf * rng.uniform(0.8, 1.2), rng.uniform(7.0, 18.0))
        out.append(billboard(tr, base + side * rng.uniform(2.0, 25.0), z + rng.uniform(0, width)))


def _front_yard(rng: np.random.Generator, lit: Lighting, side: int, base: float, z: float,
                width: float, setback: float, out: list[Surface]) -> None:
    roll = rng.random()
    if roll < 0.35:
        out.append(side_panel(sp.hedge(rng, lit.leaf, width, rng.uniform(0.6, 1.5)), base, z))
    elif roll < 0.65:
        rgb, mask = fence_texture(rng, width, rng.uniform(0.8, 1.8))
        out.append(side_panel(Texture(rgb, (mask * FENCE).astype(np.uint8), 40.0), base, z))
    elif roll < 0.85:
        h = rng.uniform(0.5, 1.4)
        rgb = wall_texture(rng, width, h)
        out.append(side_panel(solid(rgb, WALL, 24.0), base, z))
    if rng.random() < 0.7:
        tr = sp.tree(rng, lit.leaf, rng.uniform(5.0, 11.0))
        out.append(billboard(tr, base + side * setback / 2, z + rng.uniform(0, width)))


def _street_furniture(rng: np.random.Generator, st: Street, lit: Lighting, side: int,
                      out: list[Surface]) -> None:
    """Lamps, sign posts, traffic lights at cross streets, avenue trees and parked bicycles."""
    curb = st.road_right if side > 0 else st.road_left
    for z in np.arange(rng.uniform(-20, 10), 280, rng.uniform(22, 40)):
        if not st.in_cross(z, 1.0):
            out.append(billboard(sp.street_lamp(rng, arm_right=side < 0), curb + side * 0.5, z))
    for _ in range(int(rng.integers(2, 8))):
        z = rng.uniform(-5, 150)
        if not st.in_cross(z, 1.0):
            out.append(billboard(sp.sign_post(rng), curb + side * rng.uniform(0.4, 1.2), z))
    for z0, z1 in st.cross:
        out.append(billboard(sp.traffic_light(rng, False), curb + side * 0.6, z0 - 1.5))
        if rng.random() < 0.6:
            out.append(billboard(sp.traffic_light(rng, True, arm_right=side < 0), curb + side * 0.4,
                                 z0 - 1.0))
        out.append(billboard(sp.traffic_light(rng, False), curb + side * 0.6, z1 + 1.0))
    if rng.random() < 0.6:  # avenue trees
        x = curb + side * (st.bands[side][0][1] / 2 if st.bands[side][0][0] == TERRAIN else 0.8)
        for z in np.arange(rng.uniform(-15, 0), 200, rng.uniform(8, 16)):
            if not st.in_cross(z, 2.0):
                out.append(billboard(sp.tree(rng, lit.leaf * rng.uniform(0.85, 1.15),
                                             rng.uniform(6.0, 15.0)), x + rng.normal(0, 0.2), z))
    for _ in range(int(rng.integers(0, 4))):  # parked bicycles (racks, across the sidewalk)
        z = rng.uniform(0, 60)
        x = st.outer(side) - side * rng.uniform(1.0, 2.0)
        for k in range(int(rng.integers(1, 6))):
            bike = sp.two_wheeler(rng, motor=rng.random() < 0.2, side_view=True, rider=False)
            out.append(billboard(bike, x, z + 0.7 * k))
    if rng.random() < 0.25:  # railing between the sidewalk and a green strip
        first = st.bands[side][0][1] if len(st.bands[side]) > 1 else st.bands[side][0][1] - 0.3
        x = curb + side * first
        for z in np.arange(rng.uniform(-20, 0), 150, 30.0):
            if not st.in_cross(z, 3.0) and not st.in_cross(z + 25.0, 3.0):
                rgb, mask = fence_texture(rng, 25.0, rng.uniform(0.8, 1.3))
                out.append(side_panel(Texture(rgb, (mask * FENCE).astype(np.uint8), 40.0), x, z))


def static_surfaces(rng: np.random.Generator, st: Street, lit: Lighting) -> tuple[list[Surface], Texture]:
    """Everything that does not move, plus the sky panel texture (returned separately)."""
    style = {"wall_hue": lit.wall_hue, "gap": rng.uniform(0.05, 0.3), "park": rng.uniform(0.0, 0.3)}
    if rng.random() < 0.35:  # suburban
        style.update(width=(8.0, 18.0), height=(6.0, 12.0))
    else:
        style.update(width=(10.0, 30.0), height=(11.0, 28.0))
    out: list[Surface] = []
    for side in (1, -1):
        _building_row(rng, st, lit, side, style, out)
        _street_furniture(rng, st, lit, side, out)
    if rng.random() < 0.5:  # the street ends at a T-junction: buildings across it
        z_end = rng.uniform(180.0, 400.0)
        x = rng.uniform(-90.0, -50.0)
        while x < 90.0:
            w, h = rng.uniform(12.0, 35.0), rng.uniform(*style["height"])
            tex = solid(shade(facade_texture(rng, w, h, style, tpm=8.0), lit.factor(
                np.array([0.0, 0.0, -1.0]))), BUILDING, 8.0)
            out.append(billboard(tex, x + w / 2, z_end + rng.uniform(0.0, 8.0)))
            x += w
    rgb, lab = skyline_texture(rng, 3200, 160, lit.haze)
    out.append(billboard(Texture(rgb, lab, 2.0), rng.uniform(-100, 100), 700.0))
    sky = sky_texture(rng, 512, 256)
    return out, solid(sky, SKY, 1.0)
