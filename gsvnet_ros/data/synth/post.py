"""Sensor model of the generator: exposure, white balance, vignetting, blur, motion blur, noise, gamma."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Sensor", "make_sensor"]


@dataclass
class Sensor:
    """Per-sequence camera response; `apply` turns a linear float render into the uint8 image."""

    gain: np.ndarray  # (H, W, 3) float32: exposure x white balance x vignetting
    noise_bank: np.ndarray  # (H + pad, W + pad, 3) float32 sensor noise, cropped at random offsets
    blur_sigma: float
    motion_px: float  # motion-blur length in pixels at 10 m/s, bottom of the image
    horizon: int
    gamma_lut: np.ndarray
    flicker: np.ndarray  # per-frame exposure factors

    def apply(self, rgb: np.ndarray, frame: int, speed: float, rng: np.random.Generator) -> np.ndarray:
        """uint8 render -> uint8 camera image (all steps OpenCV, one pass each)."""
        h, w = rgb.shape[:2]
        img = cv2.multiply(rgb, self.gain, scale=float(self.flicker[frame % len(self.flicker)]),
                           dtype=cv2.CV_32F)
        if self.blur_sigma > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), self.blur_sigma)
        length = int(round(self.motion_px * speed / 10.0))
        if length >= 2:
            # Forward motion smears the lower image (near ground) vertically, little near the horizon;
            # four bands of increasing weight approximate the ramp.
            top = min(max(self.horizon, 0), h - 1)
            smeared = cv2.blur(img[top:], (1, length), borderType=cv2.BORDER_REPLICATE)
            edges = np.linspace(0, h - top, 5).astype(int)
            for i in range(4):
                a, b = edges[i], edges[i + 1]
                wgt = ((i + 0.5) / 4) ** 2
                band = img[top + a: top + b]
                cv2.addWeighted(band, 1 - wgt, smeared[a:b], wgt, 0.0, dst=band)
        pad_y = self.noise_bank.shape[0] - h
        pad_x = self.noise_bank.shape[1] - w
        oy, ox = int(rng.integers(0, pad_y + 1)), int(rng.integers(0, pad_x + 1))
        out = cv2.add(img, self.noise_bank[oy:oy + h, ox:ox + w], dtype=cv2.CV_8U)
        return cv2.LUT(out, self.gamma_lut)


def make_sensor(rng: np.random.Generator, width: int, height: int, horizon: int,
                frames: int) -> Sensor:
    scale = width / 1024.0
    exposure = rng.uniform(0.8, 1.25)
    wb = rng.uniform(0.88, 1.12, 3).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (width / 2)) ** 2
    vignette = 1.0 - rng.uniform(0.0, 0.35) * r2
    gain = (exposure * vignette)[..., None] * wb[None, None, :]
    sigma = rng.uniform(1.0, 5.0)
    pad = 64
    noise = rng.standard_normal((height + pad, width + pad, 3), dtype=np.float32) * sigma
    if rng.random() < 0.5:  # correlated (demosaicked) noise
        noise = cv2.GaussianBlur(noise, (0, 0), 0.7) * 1.6
    gamma = rng.uniform(0.8, 1.25)
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8)
    flicker = (1.0 + rng.normal(0, 0.02, frames + 1)).astype(np.float32)
    return Sensor(gain.astype(np.float32), noise.astype(np.float32), rng.uniform(0.3, 0.8) * scale,
                  rng.uniform(1.0, 6.0) * scale, horizon, lut, flicker)


def hood_mask(rng: np.random.Generator, width: int, height: int) -> np.ndarray | None:
    """Bottom region covered by the ego vehicle's bonnet (as in Cityscapes), or None."""
    if rng.random() < 0.5:
        return None
    top = rng.uniform(0.05, 0.12) * height
    bulge = rng.uniform(0.02, 0.05) * height
    x = (np.arange(width) - width / 2) / (width / 2)
    edge = height - top + bulge * x ** 2 * (1 + 0.2 * math.sin(rng.uniform(0, 6)))
    return np.arange(height)[:, None] >= edge[None, :]
