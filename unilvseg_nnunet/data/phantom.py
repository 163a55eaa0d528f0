"""Echo phantom: beating left ventricles in an apical-4-chamber-like sector, in EchoNet-Dynamic's format.

Tests and the demo need EchoNet-Dynamic-shaped data without downloading anything. Each video is
rendered from an analytic heart: an LV cavity (truncated ellipse along a tilted long axis) whose
length and width follow a smooth periodic volume curve (ED = max, ES = min), a myocardial wall,
the right ventricle beside the septum, both atria below the valve planes, mitral leaflets, a fan
sector with speckle, and artefacts that make single frames unreliable (wall dropout, acoustic
shadow, apical clutter, noisy and blank frames). The cavity is known exactly in every frame, so
the phantom is also ground truth for untraced frames (:func:`synthesize_video`, :func:`load_video`).

Artefact levels (:data:`ARTEFACT_LEVELS`): ``none`` (clean views), ``mild`` (the default: static
wall dropouts, apical clutter, sometimes a shadow, a few noisy and blank untraced frames),
``moderate`` and ``severe``: static dropouts and clutter plus frame artefacts on exactly 1/8 and
1/4 of the frames of every video, traced frames included, in runs of 1-4 frames: near-blank
frames, an acoustic shadow over part of the sector, noise bursts, blur and wall dropout
(:data:`FRAME_ARTEFACTS`).

Tracings follow EchoNet's layout: per traced frame, row 0 is the long axis (apex to mid mitral
annulus) and rows 1..20 are chords perpendicular to it at evenly spaced positions, each ending on
the two sides of the true cavity boundary. FileList EF/EDV/ESV come from those rows by the method
of disks (volumes in pixel^3, the tracing's own unit).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from unilvseg_nnunet.data import echonet
from unilvseg_nnunet.data.echonet import ejection_fraction, volume_by_disks
from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.files import atomic_path, write_json, write_text, write_video

N_CHORDS = echonet.ROWS_PER_TRACING - 1
SIDECAR = "phantom.json"  # synthesis arguments, so that ground truth can be re-rendered (load_video)
ARTEFACT_LEVELS = ("none", "mild", "moderate", "severe")
FRAME_ARTEFACTS = ("blank", "shadow", "noise", "blur", "dropout")
_FRAME_SHARE = {"moderate": 0.125, "severe": 0.25}  # share of every video's frames hit by frame artefacts

# fractions of the cardiac cycle (phase 0 = ED): end of rapid filling after ES, start of the atrial kick
_FILLING = 0.22
_KICK = 0.8
# volume-change split between length and width: V ~ L * W^2 with L ~ q^_ALPHA, W ~ q^((1-_ALPHA)/2)
_ALPHA = 0.15
_COMPRESSION = 0.7  # display = reflectivity ** _COMPRESSION (a mild stand-in for log compression)


@dataclass
class PhantomParams:
    """Everything that defines one phantom video (plain numbers; render is deterministic given these)."""

    n_frames: int
    fps: float
    size: int
    noise_seed: int
    # heart beat: period in frames, time (frames) of an ED, fraction of the cycle spent in systole
    period: float
    t_ed: float
    systole: float
    ef: float  # target EF (percent) of the analytic volume curve
    # LV geometry at ED: apex (x, y), tilt of the long axis from vertical (rad, + = base to the right),
    # length, half width, ellipse centre as a fraction of the length, left/right asymmetry, wobble
    apex: tuple[float, float]
    tilt: float
    length: float
    half_width: float
    centre: float
    asym: float
    wobble: tuple[float, float, float]  # amplitude, frequency (cycles along the axis), phase
    wall: float
    wall_apex: float
    rock: float  # rotation (rad) at ES relative to ED
    drift: tuple[float, float, float]  # translation amplitude (px), period (frames), phase
    # other chambers
    rv_start: float  # RV apex as a fraction of the LV length
    rv_width: float
    la_size: tuple[float, float]
    ra_size: tuple[float, float]
    # imaging
    origin: tuple[float, float]
    half_angle: float
    depth: float
    levels: dict = field(default_factory=dict)  # reflectivities: tissue, myo, blood, valve, peri
    gain: float = 1.0
    psf: float = 0.9
    speckle_fixed: float = 0.5  # share of the speckle attached to the tissue (moves with the heart)
    clutter: tuple[float, float] = (0.0, 30.0)  # strength, depth
    dropouts: list = field(default_factory=list)  # [angle, half width (rad), r0, r1, factor]
    shadow: list = field(default_factory=list)  # [] or [angle, half width, r0, factor, first frame, last frame]
    beat: int = 0  # which whole systole is traced
    noisy_frames: list = field(default_factory=list)
    blank_frames: list = field(default_factory=list)
    events: list = field(default_factory=list)  # frame artefacts: dicts with frame, kind and its parameters


class PhantomError(UnilvsegError, ValueError):
    """Bad arguments for the phantom, or a folder it must not write into."""


@dataclass
class PhantomVideo:
    """A rendered phantom: frames (T, H, W) uint8, true cavity masks (T, H, W) uint8, the traced
    frames' rows {frame: (21, 4) array of X1, Y1, X2, Y2}, the ED and ES frame of the traced beat,
    and the normalised volume curve (T,) (1 at ED, 0 at ES)."""

    frames: np.ndarray
    masks: np.ndarray
    tracings: dict
    ed_frame: int
    es_frame: int
    volume_curve: np.ndarray
    params: PhantomParams


def volume_curve(phase, systole: float = 0.35) -> np.ndarray:
    """Normalised LV volume over the cycle (periodic, C1-smooth): 1 at ED (phase 0), 0 at ES (phase = systole).

    Ejection, rapid filling to 75 %, diastasis to 80 %, atrial kick back to 100 %.
    """
    p = np.mod(np.asarray(phase, float), 1.0)
    fill_end = systole + _FILLING
    cos_step = lambda x: 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))  # 0 -> 1 with zero end slopes
    return np.select(
        [p < systole, p < fill_end, p < _KICK],
        [1.0 - cos_step(p / systole), 0.75 * cos_step((p - systole) / _FILLING),
         0.75 + 0.05 * cos_step((p - fill_end) / (_KICK - fill_end))],
        0.8 + 0.2 * cos_step((p - _KICK) / (1.0 - _KICK)),
    )


def _valve_opening(phase, systole: float) -> np.ndarray:
    """Mitral opening in [0, 1]: shut in systole, wide in rapid filling and atrial kick, half open in between."""
    p = np.mod(np.asarray(phase, float), 1.0)
    bump = lambda a, b: np.sin(np.pi * np.clip((p - a) / (b - a), 0.0, 1.0)) ** 2
    wide = np.maximum(bump(systole, systole + _FILLING + 0.1), bump(_KICK - 0.05, 1.0))
    return _smoothstep((p - systole) / 0.04) * _smoothstep((1.0 - p) / 0.03) * (0.5 + 0.5 * wide)


def sample_params(rng: np.random.Generator, n_frames: int, fps: float = 50.0, size: int = 112) -> PhantomParams:
    """Draw one video's parameters (heart rate, EF, size, pose, chambers, artefacts); the LV stays inside the image."""
    if n_frames < 8:
        raise PhantomError(f"a phantom video needs at least 8 frames, got {n_frames}")
    scale = size / 112.0
    systole = rng.uniform(0.3, 0.42)
    # heart rate 48-125 bpm, faster only where a short video could not hold a whole systole otherwise
    period = fps * 60.0 / rng.uniform(48.0, 125.0)
    period = min(period, (n_frames - 3) / systole)
    first = rng.uniform(0.0, max(0.0, min(period, n_frames - 2 - systole * period)))  # an ED that fits a systole
    origin = (size / 2 + rng.uniform(-3, 3) * scale, rng.uniform(-6.0, 1.0) * scale)
    half_angle = np.deg2rad(rng.uniform(38.0, 46.0))
    depth = rng.uniform(1.0, 1.1) * np.hypot(size / 2, size - origin[1])
    for _ in range(1000):  # pose and size such that the LV and its wall lie inside the image and the sector
        tilt = np.deg2rad(rng.uniform(-8.0, 24.0))
        length = rng.uniform(54.0, 72.0) * scale
        half_width = length / rng.uniform(3.3, 4.4)
        centre = rng.uniform(0.55, 0.68)
        apex = (rng.uniform(50.0, 68.0) * scale, rng.uniform(10.0, 24.0) * scale)
        wall = rng.uniform(5.5, 9.0) * scale
        x, y = _outline(apex, tilt, length, 1.12 * half_width, wall, centre)
        angle = np.arctan2(x - origin[0], y - origin[1])
        if (x.min() > 3 and x.max() < size - 4 and y.min() > 2 and y.max() < size - 12
                and np.abs(angle).max() < half_angle - 0.04):
            break
    else:
        raise RuntimeError("could not place the phantom LV inside the image")
    lateral = float(np.median(angle[: len(angle) // 2]))  # beam angle and depths of the lateral wall
    lateral_r = np.hypot(x - origin[0], y - origin[1])[: len(angle) // 2]
    dropouts = []
    for _ in range(rng.choice(3, p=(0.25, 0.5, 0.25))):
        # lateral wall (parallel to the beam) by preference, else anywhere on the heart
        if rng.random() < 0.7:
            ang, r0 = lateral + rng.normal(0, 0.05), rng.uniform(lateral_r.min(), lateral_r.max() - 10 * scale)
        else:
            ang, r0 = rng.uniform(-0.35, 0.35), rng.uniform(0.2, 0.6) * depth
        dropouts.append([float(ang), float(rng.uniform(0.05, 0.13)), float(r0), float(r0 + rng.uniform(12, 30) * scale),
                         float(rng.uniform(0.1, 0.45))])
    shadow = []
    if rng.random() < 0.4:
        first_s = int(rng.integers(0, n_frames))
        last_s = n_frames - 1 if rng.random() < 0.5 else int(min(n_frames - 1, first_s + rng.integers(3, 30)))
        shadow = [float(rng.uniform(-0.8, 0.8) * half_angle), float(rng.uniform(0.04, 0.1)),
                  float(rng.uniform(0.1, 0.4) * depth), float(rng.uniform(0.15, 0.45)), first_s, last_s]
    noisy = np.flatnonzero(rng.random(n_frames) < rng.uniform(0.0, 0.06))
    blank = np.flatnonzero(rng.random(n_frames) < rng.uniform(0.0, 0.025))
    params = PhantomParams(
        n_frames=int(n_frames), fps=float(fps), size=int(size), noise_seed=int(rng.integers(2**31)),
        period=float(period), t_ed=float(first), systole=float(systole), ef=float(rng.uniform(20.0, 75.0)),
        apex=(float(apex[0]), float(apex[1])), tilt=float(tilt), length=float(length), half_width=float(half_width),
        centre=float(centre), asym=float(rng.uniform(-0.12, 0.12)),
        wobble=(float(rng.uniform(0, 0.05)), float(rng.uniform(0.7, 2.0)), float(rng.uniform(0, 2 * np.pi))),
        wall=float(wall), wall_apex=float(wall * rng.uniform(0.8, 1.2)), rock=float(np.deg2rad(rng.uniform(-3, 3))),
        drift=(float(rng.uniform(0, 1.5) * scale), float(rng.uniform(150, 300)), float(rng.uniform(0, 2 * np.pi))),
        rv_start=float(rng.uniform(0.2, 0.42)), rv_width=float(half_width * rng.uniform(0.9, 1.4)),
        la_size=(float(length * rng.uniform(0.28, 0.38)), float(half_width * rng.uniform(0.9, 1.2))),
        ra_size=(float(length * rng.uniform(0.25, 0.35)), float(half_width * rng.uniform(0.8, 1.1))),
        origin=(float(origin[0]), float(origin[1])), half_angle=float(half_angle), depth=float(depth),
        levels=dict(tissue=float(rng.uniform(0.04, 0.1)), myo=float(rng.uniform(0.14, 0.28)),
                    blood=float(rng.uniform(0.004, 0.02)), valve=float(rng.uniform(0.3, 0.5)),
                    peri=float(rng.uniform(0.35, 0.65))),
        gain=float(rng.uniform(0.85, 1.15)), psf=float(rng.uniform(0.7, 1.1)),
        speckle_fixed=float(rng.uniform(0.5, 0.85)),
        clutter=(float(rng.uniform(0.0, 0.25)), float(rng.uniform(20, 40) * scale)),
        dropouts=dropouts, shadow=shadow, noisy_frames=[int(i) for i in noisy], blank_frames=[int(i) for i in blank],
    )
    params.beat = int(rng.integers(len(systoles(params))))
    params.blank_frames = [t for t in params.blank_frames if t not in traced_beat(params)]  # traced frames show a heart
    return params


def apply_artefacts(p: PhantomParams, level: str, rng: np.random.Generator) -> PhantomParams:
    """``p`` at artefact ``level`` (see the module doc); ``mild`` returns ``p`` itself (draws nothing)."""
    if level not in ARTEFACT_LEVELS:
        raise PhantomError(f"artefact level must be one of {', '.join(ARTEFACT_LEVELS)}, got {level!r}")
    if level == "mild":
        return p
    if level == "none":
        return replace(p, dropouts=[], shadow=[], noisy_frames=[], blank_frames=[], clutter=(0.0, p.clutter[1]),
                       events=[])
    T = p.n_frames
    target = int(round(_FRAME_SHARE[level] * T))
    x, y = _outline(p.apex, p.tilt, p.length, p.half_width, p.wall, p.centre)
    angle = np.arctan2(x - p.origin[0], y - p.origin[1])
    radius = np.hypot(x - p.origin[0], y - p.origin[1])
    scale = p.size / 112.0
    covered = np.zeros(T, bool)
    events = []
    while covered.sum() < target:  # runs of 1-4 frames of one artefact, until exactly `target` frames are hit
        kind = FRAME_ARTEFACTS[rng.integers(len(FRAME_ARTEFACTS))]
        start, length = int(rng.integers(T)), int(rng.integers(1, 5))
        if kind == "blank":
            par = dict(gain=float(rng.uniform(0.0, 0.05)))
        elif kind == "shadow":  # a rib or lung shadow from shallow depth to the bottom, over an LV wall
            u, v = rng.uniform(0.3, 0.9) * p.length, rng.choice([-1, 1]) * rng.uniform(0.5, 1.1) * p.half_width
            sx = p.apex[0] + u * np.sin(p.tilt) + v * np.cos(p.tilt) - p.origin[0]
            sy = p.apex[1] + u * np.cos(p.tilt) - v * np.sin(p.tilt) - p.origin[1]
            par = dict(angle=float(np.arctan2(sx, sy)), half=float(rng.uniform(0.15, 0.25)),
                       r0=float(rng.uniform(0.05, 0.3) * p.depth), r1=float(10 * p.depth),
                       factor=float(rng.uniform(0.03, 0.15)))
        elif kind == "noise":
            par = dict(keep=float(rng.uniform(0.3, 0.7)), level=float(rng.uniform(0.12, 0.3)))
        elif kind == "blur":
            par = dict(sigma=float(rng.uniform(2.0, 4.0)))
        else:  # dropout: the echo of a stretch of the septal or lateral wall vanishes
            side = slice(0, 11) if rng.random() < 0.5 else slice(12, 23)
            i = int(rng.integers(3, 11))  # from a third of the way down to the base
            at_r = float(radius[side][i])
            par = dict(angle=float(angle[side][i]), half=float(rng.uniform(0.06, 0.14)),
                       r0=at_r - float(rng.uniform(8, 15)) * scale, r1=at_r + float(rng.uniform(8, 15)) * scale,
                       factor=float(rng.uniform(0.0, 0.12)))
        for t in range(start, min(T, start + length)):
            if not covered[t] and covered.sum() < target:
                covered[t] = True
                events.append(dict(frame=t, kind=kind, **par))
    return replace(p, shadow=[], noisy_frames=[], blank_frames=[], events=sorted(events, key=lambda e: e["frame"]))


def corrupted_frames(p: PhantomParams) -> list[tuple[int, str]]:
    """(frame, kind) of every frame artefact of a video, sorted; a frame may have several kinds. Static wall
    dropouts and apical clutter, present on every frame, belong to the view and are not listed."""
    out = [(int(t), "noise") for t in p.noisy_frames] + [(int(t), "blank") for t in p.blank_frames]
    if p.shadow:
        out += [(t, "shadow") for t in range(int(p.shadow[4]), int(p.shadow[5]) + 1)]
    out += [(int(e["frame"]), e["kind"]) for e in p.events]
    return sorted(set(out))


def _outline(apex, tilt, length, half_width, wall, centre) -> tuple[np.ndarray, np.ndarray]:
    """Image points (x, y) on the outer wall of an LV at rest: lateral side apex to base, then septal side."""
    s = np.linspace(0.0, 1.0, 11)
    half = half_width * np.sqrt(np.clip(1.0 - ((s - centre) / centre) ** 2, 0.0, None)) + wall
    u = np.concatenate((s * length, [-wall], s * length))
    v = np.concatenate((half, [0.0], -half))
    return (apex[0] + u * np.sin(tilt) + v * np.cos(tilt), apex[1] + u * np.cos(tilt) - v * np.sin(tilt))


def _geometry(p: PhantomParams, t: np.ndarray) -> dict:
    """Per-frame LV pose and size (arrays over frames t): apex, axis direction d, normal n, length, half width, wall."""
    t = np.asarray(t, float)
    phase = (t - p.t_ed) / p.period
    f = volume_curve(phase, p.systole)
    q = 1.0 - p.ef / 100.0
    shrink = 1.0 - f  # 0 at ED, 1 at ES
    tilt = p.tilt + p.rock * shrink
    amp, per, ph = p.drift
    shift = amp * np.sin(2 * np.pi * t / per + ph)
    return dict(
        phase=phase, f=f,
        ax=p.apex[0] + shift, ay=p.apex[1] + 0.5 * shift,
        dx=np.sin(tilt), dy=np.cos(tilt), nx=np.cos(tilt), ny=-np.sin(tilt),
        length=p.length * q ** (_ALPHA * shrink),
        half_width=p.half_width * q ** ((1 - _ALPHA) / 2 * shrink),
        wall=p.wall * (1 + 0.8 * p.ef / 100.0 * shrink),
        wall_apex=p.wall_apex * (1 + 0.5 * p.ef / 100.0 * shrink),
    )


def _sides(p: PhantomParams, s) -> tuple[np.ndarray, np.ndarray]:
    """Per-side scale of the LV outline at fractional axis position s: wobble times septal/lateral asymmetry
    (the asymmetry vanishes at apex and base, so the long axis ends at the mid annulus)."""
    s = np.clip(s, 0.0, 1.0)
    amp, freq, ph = p.wobble
    common = 1 + amp * np.sin(2 * np.pi * freq * s + ph)
    a = p.asym * np.sin(np.pi * s)
    return common * (1 - a), common * (1 + a)


def _half_widths(p: PhantomParams, s, b) -> tuple[np.ndarray, np.ndarray]:
    """Cavity half widths (septal = left, lateral = right) at fractional axis position s: a truncated ellipse."""
    c = p.centre
    g = b * np.sqrt(np.clip(1.0 - ((np.clip(s, 0.0, 1.0) - c) / c) ** 2, 0.0, None))
    left, right = _sides(p, s)
    return g * left, g * right


def chords(p: PhantomParams, frame: int) -> np.ndarray:
    """EchoNet-style tracing of one frame: (21, 4) rows X1, Y1, X2, Y2; row 0 apex -> mid mitral annulus,
    rows 1..20 perpendicular chords at the midpoints of 20 equal steps along the axis (septal end first)."""
    g = {k: float(np.ravel(v)[0]) for k, v in _geometry(p, np.array([frame])).items()}
    s = (np.arange(N_CHORDS) + 0.5) / N_CHORDS
    left, right = _half_widths(p, s, g["half_width"])
    u = np.concatenate(([0.0], s * g["length"]))
    v1 = np.concatenate(([0.0], -left))
    v2 = np.concatenate(([0.0], right))
    u2 = u.copy()
    u2[0] = g["length"]
    to_x = lambda uu, vv: g["ax"] + uu * g["dx"] + vv * g["nx"]
    to_y = lambda uu, vv: g["ay"] + uu * g["dy"] + vv * g["ny"]
    return np.stack([to_x(u, v1), to_y(u, v1), to_x(u2, v2), to_y(u2, v2)], axis=1)


def _segment_distance(px, py, x0, y0, x1, y1):
    """Distance from pixels (H, W) to segments given per frame ((T,) arrays) -> (T, H, W)."""
    x0, y0, x1, y1 = (np.asarray(a, np.float32)[:, None, None] for a in (x0, y0, x1, y1))
    ex, ey = x1 - x0, y1 - y0
    h = np.clip(((px - x0) * ex + (py - y0) * ey) / np.maximum(ex * ex + ey * ey, 1e-6), 0.0, 1.0)
    return np.hypot(px - x0 - h * ex, py - y0 - h * ey)


def _ellipse(u, v, uc, vc, a, b):
    return ((u - uc) / a) ** 2 + ((v - vc) / b) ** 2 <= 1.0


def render(p: PhantomParams, structures: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Render a video: frames (T, H, W) uint8 and the true LV cavity masks (T, H, W) uint8 (with ``structures``:
    label maps 1 LV cavity, 2 myocardium, 3 left atrium, as CAMUS labels them)."""
    rng = np.random.default_rng(p.noise_seed)
    g = {k: np.asarray(v, np.float32)[:, None, None] for k, v in _geometry(p, np.arange(p.n_frames)).items()}
    py, px = np.mgrid[0:p.size, 0:p.size].astype(np.float32)
    # every pixel in the heart's frame: u along the long axis from the apex, v across it (+ = lateral)
    u = (px - g["ax"]) * g["dx"] + (py - g["ay"]) * g["dy"]
    v = (px - g["ax"]) * g["nx"] + (py - g["ay"]) * g["ny"]
    refl, labels = _anatomy(p, g, u, v)
    refl = np.maximum(refl, _leaflets(p, g, px, py))
    refl *= np.clip(1.0 + 0.3 * _smooth_field(rng, p.size, 7.0), 0.3, None)[None]  # static heterogeneity
    # texture coordinates fixed to the tissue (each pixel's place in the heart at ED): speckle moves with the wall
    material = ((v * (p.half_width / g["half_width"]) + p.size).astype(np.float32),
                (u * (p.length / g["length"]) + p.size).astype(np.float32))
    return _acquire(p, rng, refl, px, py, material), labels if structures else (labels == 1).astype(np.uint8)


def _anatomy(p: PhantomParams, g: dict, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reflectivity (T, H, W) of the four chambers, walls and pericardium, and the label map (T, H, W) uint8
    of the LV cavity (1), the myocardium down to the mitral annulus (2) and the left atrium (3)."""
    L, b, w, wa = g["length"], g["half_width"], g["wall"], g["wall_apex"]
    s = u / L
    left, right = _half_widths(p, s, b)
    cavity = (u >= 0) & (u <= L) & (v >= -left) & (v <= right)
    # myocardium: an outer ellipse (apex wall wa, side walls w) cut at the mitral annulus
    cL = p.centre * L
    go = np.sqrt(np.clip(1.0 - ((u - cL) / (cL + wa)) ** 2, 0.0, None))
    side_l, side_r = _sides(p, s)
    left_o, right_o = (b * side_l + w) * go, (b * side_r + w) * go
    inside_o = (u >= -wa) & (u <= L + 1) & (v >= -left_o) & (v <= right_o)
    peri = (u >= -wa - 4) & (u <= L) & (v >= 0) & (v <= right_o + 3.5) & ~inside_o
    peri |= (u >= -wa - 3.5) & (u < -wa + 2) & (np.abs(v) < 0.5 * b) & ~inside_o
    # right ventricle along the septum, from rv_start to the tricuspid annulus
    u0 = p.rv_start * L
    rvw = p.rv_width * (1.0 - 0.25 * (1.0 - g["f"])) * np.clip((u - u0) / (L - u0), 0.0, 1.0) ** 0.6
    rv_span = (u <= L - 2) & (v < -left_o)
    rv = rv_span & (u >= u0) & (v >= -left_o - rvw)
    rv_wall = rv_span & (u >= u0 - 3) & (v >= -left_o - rvw - 3.5) & ~rv
    # atria below the valve planes, growing while the ventricles empty
    fill = 1.0 + 0.15 * (1.0 - g["f"])
    la_a, la_b, ra_a, ra_b = p.la_size[0] * fill, p.la_size[1] * fill, p.ra_size[0] * fill, p.ra_size[1] * fill
    la_u, ra_u, ra_v = L + 0.75 * la_a + 1, L + 0.7 * ra_a - 1, -(b * 0.75 + w + 0.55 * p.rv_width + 2)
    la = (u > L + 1.5) & _ellipse(u, v, la_u, 0.0, la_a, la_b)
    ra = (u > L - 0.5) & _ellipse(u, v, ra_u, ra_v, ra_a, ra_b) & ~la
    atrial_wall = (u > L + 1) & (_ellipse(u, v, la_u, 0.0, la_a + 3, la_b + 3) | _ellipse(u, v, ra_u, ra_v, ra_a + 3, ra_b + 3))
    lv = p.levels
    refl = np.full(u.shape, lv["tissue"], np.float32)
    for mask, level in ((atrial_wall, 0.75 * lv["myo"]), (rv_wall, 0.85 * lv["myo"]), (peri, lv["peri"]),
                        (inside_o, lv["myo"]), (cavity | rv | la | ra, lv["blood"])):
        refl[mask] = level
    return refl, np.select([cavity, inside_o & (u <= L), la], [1, 2, 3], 0).astype(np.uint8)


def _leaflets(p: PhantomParams, g: dict, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Reflectivity of the mitral leaflets: hinged at the annulus, swinging from across the valve plane (shut)
    to along the walls (open)."""
    g1 = {k: a[:, 0, 0] for k, a in g.items()}
    half_base = _half_widths(p, 1.0, g1["half_width"])[0]
    ang = _valve_opening(g1["phase"], p.systole) * np.deg2rad(80.0)
    to_xy = lambda uu, vv: (g1["ax"] + uu * g1["dx"] + vv * g1["nx"], g1["ay"] + uu * g1["dy"] + vv * g1["ny"])
    tip_u = g1["length"] + half_base * (0.15 - 0.95 * np.sin(ang))
    d = np.minimum(*(_segment_distance(px, py, *to_xy(g1["length"], side * half_base),
                                        *to_xy(tip_u, side * half_base * (1.0 - 0.95 * np.cos(ang))))
                     for side in (-1.0, 1.0)))
    return p.levels["valve"] * np.clip(1.6 - d, 0.0, 1.0)


def _acquire(p: PhantomParams, rng, refl: np.ndarray, px, py, material) -> np.ndarray:
    """Image the reflectivity: point spread, speckle, apical clutter, dropout and shadow wedges, gain and depth
    compensation, the sector, flicker, noisy and blank frames, compression -> uint8 frames."""
    T = refl.shape[0]
    r = np.hypot(px - p.origin[0], py - p.origin[1])
    theta = np.arctan2(px - p.origin[0], py - p.origin[1])
    speckle = _speckle(rng, p, r, theta, T, material, p.speckle_fixed)
    img = _blur_frames(refl, p.psf) * speckle
    strength, cdepth = p.clutter
    if strength > 0:  # near-field haze with its own (time-reversed) speckle
        haze = np.exp(-((r / cdepth) ** 2))[None] * strength * (0.6 + 0.4 * rng.random((T, 1, 1), np.float32))
        img += haze * speckle[::-1]
    for ang0, half, r0, r1, factor in p.dropouts:
        img *= (1.0 - (1.0 - factor) * _wedge(theta, r, ang0, half, r0, r1))[None]
    if p.shadow:
        ang0, half, r0, factor, first, last = p.shadow
        img[first:last + 1] *= (1.0 - (1.0 - factor) * _wedge(theta, r, ang0, half, r0, np.inf))[None]
    tgc = (1.0 - 0.25 * (r / p.depth) ** 2) * _wedge(theta, r, 0.0, p.half_angle, 0.0, p.depth, edge=0.03)
    img *= (p.gain * tgc)[None] * (1.0 + 0.06 * rng.standard_normal((T, 1, 1)).astype(np.float32))
    for t in p.noisy_frames:
        img[t] = img[t] * rng.uniform(0.6, 1.0) + rng.uniform(0.05, 0.15) * _speckle(rng, p, r, theta, 1)[0] * tgc
    for t in p.blank_frames:
        img[t] *= rng.uniform(0.0, 0.08)
    for e in p.events:
        t = e["frame"]
        if e["kind"] == "blank":
            img[t] *= e["gain"]
        elif e["kind"] in ("shadow", "dropout"):
            img[t] *= 1.0 - (1.0 - e["factor"]) * _wedge(theta, r, e["angle"], e["half"], e["r0"], e["r1"])
        elif e["kind"] == "noise":
            img[t] = img[t] * e["keep"] + e["level"] * _speckle(rng, p, r, theta, 1)[0] * tgc
        else:  # blur
            img[t] = cv2.GaussianBlur(img[t], (0, 0), e["sigma"])
    return np.clip(255.0 * np.power(np.maximum(img, 0.0), _COMPRESSION), 0, 255).astype(np.uint8)


def _wedge(theta, r, ang0: float, half: float, r0: float, r1: float, edge: float | None = None) -> np.ndarray:
    """Soft beam-aligned region: |angle - ang0| < half and r0 < r < r1 (soft edges: ``edge`` rad, 3 px in depth)."""
    edge = 0.5 * half if edge is None else edge
    return _smoothstep((half - np.abs(theta - ang0)) / edge) * _smoothstep((r - r0) / 3.0) * _smoothstep((r1 - r) / 3.0)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _smooth_field(rng, size: int, sigma: float) -> np.ndarray:
    """Zero-mean unit-ish low-frequency random field (size, size)."""
    f = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigma)
    return f / (f.std() + 1e-6)


def _blur_frames(a: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(x, (0, 0), sigma) for x in a])


def _speckle(rng, p: PhantomParams, r: np.ndarray, theta: np.ndarray, T: int, material=None, fixed: float = 0.0) -> np.ndarray:
    """Fully developed speckle (Rayleigh, mean 1), (T, H, W): a fresh field per frame, correlated along the beam's
    arcs (drawn on the polar grid), mixed (share ``fixed``) with a texture attached to the tissue, read at the
    per-frame texture coordinates ``material`` = (x, y) arrays (T, H, W), so that the wall's speckle moves with it."""
    nr, na = int(p.depth) + 4, 100
    map_r = r.astype(np.float32)
    map_a = ((theta + p.half_angle) * (na - 1) / (2 * p.half_angle)).astype(np.float32)

    def field(shape, sx, sy):
        z = rng.standard_normal(shape, dtype=np.float32)
        for c in z.reshape(-1, *shape[-2:]):
            cv2.GaussianBlur(c, (0, 0), sigmaX=sx, sigmaY=sy, dst=c)
        return z / z.std()

    z = field((T, 2, nr, na), 1.0, 0.6)
    tex = field((2, 3 * p.size, 2 * p.size), 1.1, 0.6) if fixed > 0 else None
    out = np.empty((T,) + r.shape, np.float32)
    for t in range(T):
        re, im = (cv2.remap(c, map_a, map_r, cv2.INTER_LINEAR) for c in z[t])
        if tex is not None:
            mx, my = material[0][t], material[1][t]
            re = np.sqrt(1 - fixed**2) * re + fixed * cv2.remap(tex[0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            im = np.sqrt(1 - fixed**2) * im + fixed * cv2.remap(tex[1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out[t] = np.hypot(re, im)
    return out / (out.mean() + 1e-6)


def systoles(p: PhantomParams) -> list[tuple[int, int]]:
    """(ED, ES) frames of every systole that lies wholly in the video: the volume curve's sampled max and min."""
    t = np.arange(p.n_frames)
    f = volume_curve((t - p.t_ed) / p.period, p.systole)
    near = lambda c: t[np.abs(t - c) <= 0.25 * p.period]
    out = []
    ed_t = p.t_ed
    while ed_t + p.systole * p.period <= p.n_frames - 0.5:
        ed_w, es_w = near(ed_t), near(ed_t + p.systole * p.period)
        out.append((int(ed_w[np.argmax(f[ed_w])]), int(es_w[np.argmin(f[es_w])])))
        ed_t += p.period
    return out


def traced_beat(p: PhantomParams) -> tuple[int, int]:
    """ED and ES frame of the traced beat."""
    beats = systoles(p)
    if not beats:
        raise ValueError(f"no whole systole in {p.n_frames} frames (period {p.period:.1f})")
    return beats[min(p.beat, len(beats) - 1)]


def synthesize_video(rng: np.random.Generator | int | PhantomParams, n_frames: int | None = None,
                     fps: float = 50.0, size: int = 112, artefacts: str = "mild") -> PhantomVideo:
    """Draw (or take) parameters and render one video with its ground truth and EchoNet tracings of ED and ES
    (``artefacts``: the level of :data:`ARTEFACT_LEVELS` applied to drawn parameters)."""
    if isinstance(rng, PhantomParams):
        p = rng
    else:
        rng = np.random.default_rng(rng)
        p = sample_params(rng, int(rng.integers(28, 201)) if n_frames is None else n_frames, fps, size)
        p = apply_artefacts(p, artefacts, rng)
    frames, masks = render(p)
    ed, es = traced_beat(p)
    tracings = {ed: np.round(chords(p, ed), 8), es: np.round(chords(p, es), 8)}
    curve = volume_curve((np.arange(p.n_frames) - p.t_ed) / p.period, p.systole)
    return PhantomVideo(frames, masks, tracings, ed, es, curve, p)


def _video_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _file_names(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2**31]))
    names: list[str] = []
    while len(names) < n:
        name = "0X" + "".join(f"{d:X}" for d in rng.integers(0, 16, 16))
        if name not in names:
            names.append(name)
    return names


def _split_counts(n: int, splits) -> tuple[int, int, int]:
    if splits is None:
        n_val = n_test = int(round(0.15 * n))
        return n - n_val - n_test, n_val, n_test
    counts = tuple(int(c) for c in splits)
    if len(counts) != 3 or min(counts) < 0 or sum(counts) != n:
        raise PhantomError(f"splits must be three non-negative counts (train, val, test) summing to n={n}, "
                           f"got {splits}")
    return counts


def _phantom_video(seed: int, index: int, frames, fps: float, size: int, artefacts: str) -> PhantomVideo:
    rng = _video_rng(seed, index)
    n_frames = int(rng.integers(frames[0], frames[1] + 1))
    return synthesize_video(apply_artefacts(sample_params(rng, n_frames, fps, size), artefacts, rng))


def write_avi(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """Write (T, H, W) uint8 grey frames as an MJPG AVI with three identical channels, atomically."""
    write_video(path, frames, fps)


def write_dense_truth(path: str | os.PathLike, masks: np.ndarray) -> None:
    """Write the every-frame LV masks (frames, H, W) uint8 0/1 as a compressed ``.npz``, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, masks=np.asarray(masks, np.uint8))


def synthesize(out_dir, n: int = 20, seed: int = 0, frames=(28, 200), splits=None, fps: float = 50.0,
               size: int = 112, artefacts: str = "mild", labeled_train: int | None = None) -> Path:
    """Write an EchoNet-Dynamic-format phantom dataset to ``out_dir`` and return it.

    ``out_dir/Videos/<FileName>.avi``, ``FileList.csv`` (EF/EDV/ESV by the method of disks from the
    tracings) and ``VolumeTracings.csv`` (ED and ES of one beat, 21 rows each, the two frames' blocks in
    random order); the dense truth: ``DenseTruth/<FileName>.npz`` (the true LV mask of every frame) and
    ``CorruptedFrames.csv`` (FileName, Frame, Kind of every frame artefact, see :func:`corrupted_frames`);
    ``phantom.json`` (the arguments, for :func:`load_video`). ``splits`` are the (TRAIN, VAL, TEST)
    counts; default about 70/15/15 %. ``artefacts``: one of :data:`ARTEFACT_LEVELS`. ``labeled_train``:
    only the first K TRAIN videos of FileList.csv get tracings, the other TRAIN videos are listed untraced
    (a low-label setting). Deterministic in ``seed``.
    """
    n = int(n)
    lo, hi = int(frames[0]), int(frames[1])
    if n < 1:
        raise PhantomError(f"n must be at least 1, got {n}")
    if not 8 <= lo <= hi:
        raise PhantomError(f"frames must be (min, max) with 8 <= min <= max, got {frames}")
    if artefacts not in ARTEFACT_LEVELS:
        raise PhantomError(f"artefacts must be one of {', '.join(ARTEFACT_LEVELS)}, got {artefacts!r}")
    counts = _split_counts(n, splits)
    if labeled_train is not None and not 0 <= labeled_train <= counts[0]:
        raise PhantomError(f"labeled_train must be between 0 and the {counts[0]} TRAIN videos, got {labeled_train}")
    out = Path(out_dir)
    names = _file_names(seed, n)
    _clear_previous(out, keep=names)
    (out / echonet.VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
    split_of = np.repeat(np.array(echonet.SPLITS), counts)[np.random.default_rng([int(seed), 2**31 + 1]).permutation(n)]
    traced_train = np.cumsum(split_of == "TRAIN") <= (counts[0] if labeled_train is None else labeled_train)
    order_rng = np.random.default_rng([int(seed), 2**31 + 2])
    filelist = [",".join(echonet.FILELIST_LAYOUT)]
    tracings = [",".join(echonet.TRACING_COLUMNS)]
    corrupted = [",".join(echonet.CORRUPTED_COLUMNS)]
    for i, name in enumerate(names):
        video = _phantom_video(seed, i, (lo, hi), fps, size, artefacts)
        write_avi(out / echonet.VIDEOS_DIR / f"{name}.avi", video.frames, fps)
        write_dense_truth(echonet.dense_truth_path(out, name), video.masks)
        corrupted += [f"{name}.avi,{t},{kind}" for t, kind in corrupted_frames(video.params)]
        edv = volume_by_disks(*video.tracings[video.ed_frame].T)
        esv = volume_by_disks(*video.tracings[video.es_frame].T)
        ef = ejection_fraction(edv, esv)
        filelist.append(f"{name},{ef!r},{esv!r},{edv!r},{size},{size},{fps:g},{video.params.n_frames},{split_of[i]}")
        traced = [video.ed_frame, video.es_frame]
        order_rng.shuffle(traced)
        if split_of[i] != "TRAIN" or traced_train[i]:
            for frame in traced:
                for x1, y1, x2, y2 in video.tracings[frame].tolist():
                    tracings.append(f"{name}.avi,{x1!r},{y1!r},{x2!r},{y2!r},{frame}")
    write_json(out / SIDECAR, dict(seed=int(seed), n=n, frames=[lo, hi], fps=float(fps), size=int(size),
                                   artefacts=artefacts, labeled_train=labeled_train, file_names=names))
    write_text(out / echonet.CORRUPTED_FRAMES, "\n".join(corrupted) + "\n")
    write_text(out / echonet.TRACINGS, "\n".join(tracings) + "\n")
    write_text(out / echonet.FILELIST, "\n".join(filelist) + "\n")
    return out


def _clear_previous(out: Path, keep: list[str]) -> None:
    """Make room for a new phantom in ``out``: remove an earlier phantom's videos and truth that the new one
    lacks; refuse to write over a folder that holds an EchoNet-Dynamic dataset that is not a phantom."""
    if (out / SIDECAR).is_file():
        for name in set(json.loads((out / SIDECAR).read_text()).get("file_names", [])) - set(keep):
            (out / echonet.VIDEOS_DIR / f"{name}.avi").unlink(missing_ok=True)
            echonet.dense_truth_path(out, name).unlink(missing_ok=True)
    elif (out / echonet.FILELIST).exists() or (out / echonet.TRACINGS).exists():
        raise PhantomError(f"{out} already holds an EchoNet-Dynamic dataset that is not a phantom; "
                           "choose another folder")


def load_video(out_dir, file_name: str) -> PhantomVideo:
    """Re-render one video of a dataset written by :func:`synthesize` with its ground truth (masks of every frame)."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / SIDECAR).read_text())
    except FileNotFoundError:
        raise PhantomError(f"{out / SIDECAR} not found: {out} was not written by "
                           "unilvseg_nnunet.data.phantom.synthesize") from None
    name = echonet.normalize_name(file_name)
    if name not in meta["file_names"]:
        raise PhantomError(f"{name} is not a video of the phantom dataset {out}")
    return _phantom_video(meta["seed"], meta["file_names"].index(name), meta["frames"], meta["fps"], meta["size"],
                          meta.get("artefacts", "mild"))
