"""Clinical read-outs from a predicted LV mask video: the LV-area curve, its temporal consistency,
EF by the method of disks with the long axis found from the mask, and ED/ES detection.

Choices (pinned by tests/test_cardiac.py):

* **High-frequency energy share**: the share of the area curve's spectral energy above
  ``HF_CUTOFF_HZ`` = 10 Hz (periodogram of the linearly detrended curve, Hann window, DC
  excluded). 10 Hz is 3x the fundamental of the fastest plausible heart (200 bpm = 3.3 Hz): a
  real LV curve keeps almost all its energy in its first harmonics, so what lies above 10 Hz is
  frame-to-frame flicker of the segmentation (the paper's Fig. 6c). NaN when the video's Nyquist
  frequency (fps/2) is not above the cut-off or it has fewer than 8 frames.
* **Jitter**: mean |second difference| of the area curve divided by its mean (dimensionless;
  0 for a straight line, grows with flicker; depends on fps, so compare models on one dataset).
* **Long axis from a mask** (largest connected component, holes filled): the principal axis of
  the mask's pixel coordinates (PCA), which for an LV runs apex to mitral annulus; its length is
  the extent of the sub-pixel contour (marching squares at 0.5) projected on that axis. The 20
  chords are perpendicular to it at the centres of 20 equal segments, each spanning the contour
  from its lowest to its highest crossing. Volume = Σ π/4·d²·L/20, i.e. exactly
  :func:`unilvseg_nnunet.data.echonet.volume_by_disks` on EchoNet's tracing layout (row 0 = long axis,
  rows 1..20 = chords), so mask and tracing volumes are comparable (pixel³; units cancel in EF).
* **ED/ES detection**: the area curve is smoothed with a Gaussian of σ = 0.03 s, ED = maxima,
  ES = minima (``scipy.signal.find_peaks``), at least 60/``MAX_HEART_RATE_BPM`` s apart and
  with a prominence of at least 25% of the curve's 5–95% range (and 2% of its mean area).
  A beat = an ED followed by the next ES before the next ED; beat EF uses disk volumes of the
  mask at those two frames.
* **Implausible EF** (:func:`ef_problem`): an EF outside 0-``MAX_EF_PERCENT`` %, or from an ED or ES
  mask of fewer than ``MIN_LV_AREA_PX`` pixels, is no measurement of a heart but of a mask that
  lost the LV; it is kept out of means and MAEs and counted as unavailable instead, so a model
  with empty masks shows "n unavailable" rather than an error of thousands of EF points.
* **Against an every-frame truth**: ED/ES error = mean over the truth's detected events of the
  distance to the nearest predicted event (:func:`event_error`); a predicted beat matches a truth
  beat when its ED and ES both lie within half the truth beat's ED-to-ES time (:func:`match_beats`).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, signal
from skimage import measure

from unilvseg_nnunet.data.echonet import ejection_fraction, volume_by_disks

HF_CUTOFF_HZ = 10.0
MAX_HEART_RATE_BPM = 200.0
SMOOTH_SIGMA_S = 0.03
MIN_PROMINENCE_RANGE = 0.25
MIN_PROMINENCE_MEAN = 0.02
N_DISKS = 20
MAX_EF_PERCENT = 90.0  # no heart empties more: a higher EF comes from a mask that lost the LV at ES
MIN_LV_AREA_PX = 20  # an ED or ES mask with fewer LV pixels holds no LV: its "beat" is noise of an empty mask


def area_curve(mask: np.ndarray) -> np.ndarray:
    """LV area (pixels) of every frame of a (F, H, W) mask."""
    m = np.asarray(mask)
    return (m == 1).reshape(m.shape[0], -1).sum(1).astype(float)


def high_frequency_share(area: np.ndarray, fps: float, cutoff_hz: float = HF_CUTOFF_HZ) -> float:
    """Share of the (detrended, Hann-windowed) area curve's spectral energy above ``cutoff_hz``."""
    area = np.asarray(area, float)
    if len(area) < 8 or not fps or fps / 2.0 <= cutoff_hz:
        return float("nan")
    if np.abs(signal.detrend(area)).max() <= 1e-9 * max(1.0, np.abs(area).mean()):
        return 0.0  # a constant or straight curve has no oscillation at all (avoid round-off ratios)
    freqs, power = signal.periodogram(area, fs=fps, window="hann", detrend="linear")
    total = power[1:].sum()
    return float(power[freqs > cutoff_hz].sum() / total)


def jitter(area: np.ndarray) -> float:
    """Mean |second difference| of the area curve over its mean area."""
    area = np.asarray(area, float)
    if len(area) < 3 or area.mean() <= 0:
        return float("nan")
    return float(np.abs(np.diff(area, 2)).mean() / area.mean())


def area_swing(area: np.ndarray, truth_area: np.ndarray) -> float:
    """How far a predicted area curve swings relative to the true one: the least-squares slope of predicted on
    true area (1 = full swing; 0.75 = ED areas too small and ES areas too large by a quarter of the true
    swing, which lowers EF). Frame-wise noise does not bias it; NaN when the truth does not move."""
    a, t = np.asarray(area, float), np.asarray(truth_area, float)
    t = t - t.mean()
    denom = float((t * t).sum())
    return float((t * (a - a.mean())).sum() / denom) if len(t) > 1 and denom > 0 else float("nan")


def _clean_mask(mask2d: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(np.asarray(mask2d) == 1)
    if n == 0:
        return np.zeros(lab.shape, bool)
    largest = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    return ndimage.binary_fill_holes(lab == largest)


def disks_from_mask(mask2d: np.ndarray, n_disks: int = N_DISKS):
    """Long axis and ``n_disks`` perpendicular chords of a 2D LV mask, in EchoNet's tracing layout.

    Returns (x1, y1, x2, y2) arrays of length ``n_disks + 1`` (x = column, y = row): row 0 is the
    long axis, rows 1.. the chords; ``None`` for an empty mask. See the module doc for the method.
    """
    m = _clean_mask(mask2d)
    if m.sum() < 3:
        return None
    rows, cols = np.nonzero(m)
    pts = np.stack([cols, rows], 1).astype(float)
    centre = pts.mean(0)
    evals, evecs = np.linalg.eigh(np.cov((pts - centre).T))
    eu = evecs[:, np.argmax(evals)]
    ev = np.array([-eu[1], eu[0]])
    contour = max(measure.find_contours(np.pad(m, 1).astype(float), 0.5), key=len)[:, ::-1] - 1.0  # (x, y)
    u = (contour - centre) @ eu
    v = (contour - centre) @ ev
    u0, u1 = u.min(), u.max()
    pos = u0 + (np.arange(n_disks) + 0.5) * (u1 - u0) / n_disks
    # crossings of every contour edge with every chord line u = pos_i (closed contour)
    ua, ub = u[:-1][None], u[1:][None]
    va, vb = v[:-1][None], v[1:][None]
    p = pos[:, None]
    crosses = ((ua <= p) & (p < ub)) | ((ub <= p) & (p < ua))
    with np.errstate(invalid="ignore", divide="ignore"):
        vx = np.where(crosses, va + (p - ua) / np.where(ub != ua, ub - ua, 1.0) * (vb - va), np.nan)
    has = crosses.any(1)
    vlo = np.where(has, np.nanmin(np.where(has[:, None], vx, 0.0), axis=1), 0.0)
    vhi = np.where(has, np.nanmax(np.where(has[:, None], vx, 0.0), axis=1), 0.0)
    axis_u = np.array([u0, u1])
    start = centre + np.concatenate([axis_u[:1], pos])[:, None] * eu + np.concatenate([[0.0], vlo])[:, None] * ev
    end = centre + np.concatenate([axis_u[1:], pos])[:, None] * eu + np.concatenate([[0.0], vhi])[:, None] * ev
    return start[:, 0], start[:, 1], end[:, 0], end[:, 1]


def mask_volume(mask2d: np.ndarray, n_disks: int = N_DISKS) -> float:
    """LV volume (pixel³) of a 2D mask by the method of disks; 0.0 for an empty mask."""
    d = disks_from_mask(mask2d, n_disks)
    return 0.0 if d is None else volume_by_disks(*d)


def ef_from_volumes(edv: float, esv: float) -> float:
    """EF in percent; NaN when EDV is not positive."""
    return float(ejection_fraction(edv, esv)) if edv > 0 else float("nan")


def ef_problem(ef: float, ed_area: float, es_area: float, ed: int | None = None, es: int | None = None) -> str | None:
    """Why an EF computed from the masks at ED and ES (areas in pixels; frame indices for the message) is no
    measurement, or None when it is one."""
    for name, frame, area in (("ED", ed, ed_area), ("ES", es, es_area)):
        if area < MIN_LV_AREA_PX:
            where = f"frame {frame}" if frame is not None else name
            return (f"the LV mask of {where} holds {area:.0f} pixels (fewer than {MIN_LV_AREA_PX}): "
                    f"no LV is segmented there, so it gives no EF")
    if not (np.isfinite(ef) and 0.0 <= ef <= MAX_EF_PERCENT):
        at = f"ED frame {ed} / ES frame {es} " if ed is not None else ""
        return f"{at}EF {ef:.1f}% lies outside 0-{MAX_EF_PERCENT:g}: the masks' extremes are not a heart's"
    return None


def smooth_area(area: np.ndarray, fps: float) -> np.ndarray:
    """The area curve smoothed for ED/ES detection (Gaussian, sigma = SMOOTH_SIGMA_S seconds)."""
    sigma = SMOOTH_SIGMA_S * fps
    area = np.asarray(area, float)
    return ndimage.gaussian_filter1d(area, sigma, mode="nearest") if sigma > 0.3 else area


def min_prominence(smoothed: np.ndarray) -> float:
    """The prominence an extremum of the smoothed area curve needs to count as ED or ES: a share of the curve's
    5-95 % range, at least a share of its mean area."""
    lo, hi = np.percentile(smoothed, [5, 95])
    return max(MIN_PROMINENCE_RANGE * (hi - lo), MIN_PROMINENCE_MEAN * float(np.mean(smoothed)), 1e-9)


def detect_ed_es(area: np.ndarray, fps: float, max_hr_bpm: float = MAX_HEART_RATE_BPM) -> tuple[np.ndarray, np.ndarray]:
    """ED (area maxima) and ES (area minima) frame indices detected on the area curve."""
    s = smooth_area(area, fps)
    if len(s) < 3:
        return np.zeros(0, int), np.zeros(0, int)
    prominence = min_prominence(s)
    distance = max(1, int(np.floor(fps * 60.0 / max_hr_bpm)))
    ed, _ = signal.find_peaks(s, distance=distance, prominence=prominence)
    es, _ = signal.find_peaks(-s, distance=distance, prominence=prominence)
    return ed, es


def beats(ed: np.ndarray, es: np.ndarray) -> list[tuple[int, int]]:
    """(ED, ES) pairs: each ED with the first ES after it and before the next ED."""
    out = []
    ed = np.sort(ed)
    es = np.sort(es)
    for i, e in enumerate(ed):
        nxt = ed[i + 1] if i + 1 < len(ed) else np.inf
        cand = es[(es > e) & (es < nxt)]
        if len(cand):
            out.append((int(e), int(cand[0])))
    return out


def nearest_error(detected: np.ndarray, target: int | None) -> float:
    """|frame difference| between ``target`` and the nearest detected frame (NaN if none)."""
    if target is None or len(detected) == 0:
        return float("nan")
    return float(np.min(np.abs(np.asarray(detected) - int(target))))


def event_error(detected, truth_events) -> float:
    """Mean over ``truth_events`` (frames) of |frame - nearest detected frame|; NaN when either is empty."""
    detected, truth_events = np.asarray(detected, float), np.asarray(truth_events, float)
    if detected.size == 0 or truth_events.size == 0:
        return float("nan")
    return float(np.abs(truth_events[:, None] - detected[None, :]).min(1).mean())


def match_beats(pred_beats: list[tuple[int, int]], truth_beats: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Pairs (truth index, pred index): each truth beat (ED, ES) with the predicted beat whose ED and ES both lie
    within half the truth beat's ED-to-ES time (at least 2 frames); the nearest such beat, each used once."""
    pairs, used = [], set()
    for i, (ed, es) in enumerate(truth_beats):
        tol = max(2.0, 0.5 * (es - ed))
        cand = [(abs(p_ed - ed) + abs(p_es - es), j) for j, (p_ed, p_es) in enumerate(pred_beats)
                if j not in used and abs(p_ed - ed) <= tol and abs(p_es - es) <= tol]
        if cand:
            j = min(cand)[1]
            used.add(j)
            pairs.append((i, j))
    return pairs


def video_readout(mask: np.ndarray, fps: float, cutoff_hz: float = HF_CUTOFF_HZ) -> dict:
    """Everything a clinician reads from one predicted mask video (JSON-ready).

    Keys: area (list), hf_share, jitter, ed_frames, es_frames, beats (list of {ed, es, edv, esv,
    ef, ef_problem}: None or why :func:`ef_problem` rejects the beat's EF), ef_beats_mean (mean over the
    beats with a plausible EF, NaN without one), heart_rate_bpm (from ED spacing, NaN with fewer than
    two EDs).
    """
    mask = np.asarray(mask)
    area = area_curve(mask)
    ed, es = detect_ed_es(area, fps)
    beat_list = []
    for e, s in beats(ed, es):
        edv, esv = mask_volume(mask[e]), mask_volume(mask[s])
        ef = ef_from_volumes(edv, esv)
        beat_list.append({"ed": e, "es": s, "edv": edv, "esv": esv, "ef": ef,
                          "ef_problem": ef_problem(ef, area[e], area[s], e, s)})
    efs = [b["ef"] for b in beat_list if b["ef_problem"] is None]
    hr = 60.0 * fps / float(np.mean(np.diff(ed))) if len(ed) >= 2 and fps else float("nan")
    return {
        "fps": float(fps), "num_frames": int(mask.shape[0]), "area": area.tolist(),
        "hf_share": high_frequency_share(area, fps, cutoff_hz), "hf_cutoff_hz": cutoff_hz,
        "jitter": jitter(area),
        "ed_frames": ed.tolist(), "es_frames": es.tolist(), "beats": beat_list,
        "ef_beats_mean": float(np.mean(efs)) if efs else float("nan"),
        "heart_rate_bpm": hr,
    }
