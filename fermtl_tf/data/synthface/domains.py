"""Rendering domains: presets that give two SynthFace "datasets" a real distribution shift.

``lab`` imitates posed lab databases (CK+, Oulu-CASIA): plain background, frontal head,
even light, clean images. ``wild`` imitates in-the-wild collections (RAF-DB, AffectNet):
cluttered background, head pose, uneven coloured light, blur, sensor noise, JPEG.
A preset only draws the *scene*; identity and expression sampling do not depend on it,
so the same person and expression can be rendered in both domains.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DomainPreset:
    """Ranges of the per-sequence scene parameters (uniform unless said otherwise)."""

    name: str
    clutter: bool
    roll: float  # |roll| <= roll degrees
    yaw: float  # |yaw| <= yaw degrees
    scale: tuple
    shift: float  # |tx|, |ty| <= shift (fraction of the image)
    light: tuple  # strength of the light gradient across the face
    colour_cast: float  # max per-channel gain deviation
    blur: tuple  # Gaussian blur sigma in pixels at 128 px (scaled with the image)
    noise: tuple  # Gaussian noise std in grey levels
    jpeg: tuple | None  # JPEG quality range, None = no JPEG round trip
    motion_jitter: float  # per-frame head-motion jitter (degrees) inside a sequence


DOMAINS = {
    "lab": DomainPreset(
        name="lab", clutter=False, roll=3.0, yaw=4.0, scale=(0.97, 1.03), shift=0.02,
        light=(0.0, 0.06), colour_cast=0.02, blur=(0.4, 0.7), noise=(1.0, 2.5), jpeg=None,
        motion_jitter=0.3,
    ),
    "wild": DomainPreset(
        name="wild", clutter=True, roll=15.0, yaw=28.0, scale=(0.78, 1.06), shift=0.06,
        light=(0.15, 0.5), colour_cast=0.08, blur=(0.0, 1.1), noise=(2.0, 7.0),
        jpeg=(40, 85), motion_jitter=1.5,
    ),
}


def domain_preset(name):
    """The preset registered as ``name``, with a clear error if unknown."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise KeyError(f"unknown SynthFace domain {name!r}; known: {sorted(DOMAINS)}") from None


@dataclass(frozen=True)
class Scene:
    """Concrete scene of one sequence: head pose, background, light and camera."""

    pose: dict  # roll, yaw (degrees), scale, tx, ty (fractions of the image)
    clutter: bool
    background_seed: tuple
    light: float
    light_angle: float
    gains: tuple  # per-channel colour cast
    blur: float
    noise: float
    jpeg: int | None
    motion_jitter: float


def sample_scene(preset: DomainPreset, rng):
    """Draw a scene from ``preset`` with a fixed number of draws from ``rng``."""
    u = rng.random(12)

    def span(lo_hi, t):
        return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * t

    pose = {"roll": preset.roll * (2 * u[0] - 1), "yaw": preset.yaw * (2 * u[1] - 1),
            "scale": span(preset.scale, u[2]), "tx": preset.shift * (2 * u[3] - 1),
            "ty": preset.shift * (2 * u[4] - 1)}
    gains = tuple(1.0 + preset.colour_cast * (2 * t - 1) for t in u[5:8])
    jpeg = None if preset.jpeg is None else int(round(span(preset.jpeg, u[11])))
    return Scene(
        pose=pose, clutter=preset.clutter,
        background_seed=tuple(int(v) for v in rng.integers(0, 2**31, 2)),
        light=span(preset.light, u[8]), light_angle=float(2 * np.pi * u[9]), gains=gains,
        blur=span(preset.blur, u[10]), noise=span(preset.noise, rng.random()), jpeg=jpeg,
        motion_jitter=preset.motion_jitter,
    )
