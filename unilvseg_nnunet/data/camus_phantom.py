"""A CAMUS-style phantom: the echo phantom's half sequences (ED to ES) with three labeled structures, larger
and non-square frames, a pixel spacing in mm, written in either CAMUS distribution, so that the CAMUS path
runs without the real data.

- ``fmt="nifti"``: ``database_nifti/patientXXXX/patientXXXX_{VIEW}_half_sequence.nii.gz`` with
  ``_half_sequence_gt`` (every frame labeled), ``_ED``, ``_ED_gt``, ``_ES``, ``_ES_gt`` and ``Info_{VIEW}.cfg``
  (ED, ES, NbFrame, Sex, Age, ImageQuality, EF, FrameRate), plus
  ``database_split/subgroup_{training,validation,testing}.txt``;
- ``fmt="mhd"``: ``training/patientXXXX/patientXXXX_{VIEW}_sequence.mhd/.raw``, ``_ED(_gt)``, ``_ES(_gt)`` and
  ``Info_{VIEW}.cfg`` (ED, ES, NbFrame, Sex, Age, ImageQuality, LVedv, LVesv, LVef); no split files.

Labels as CAMUS: 1 LV cavity, 2 myocardium, 3 left atrium. EF, EDV and ESV come from the phantom's
EchoNet-style tracings of ED and ES by the method of disks, in ml at the pixel spacing. Deterministic in
``seed``; a patient's two views are two independent phantom hearts.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from unilvseg_nnunet.data import camus
from unilvseg_nnunet.data.echonet import ejection_fraction, volume_by_disks
from unilvseg_nnunet.data.phantom import PhantomError, chords, render, sample_params, traced_beat
from unilvseg_nnunet.files import write_text, write_volume

FORMATS = ("nifti", "mhd")
FOLDERS = {"nifti": "database_nifti", "mhd": "training"}
QUALITIES = ("Good", "Medium", "Poor")


def write_mhd(path: Path, array: np.ndarray, spacing) -> None:
    """A MetaImage pair ``path`` (.mhd) + .raw, atomically: both are written in a temporary folder beside
    ``path``, the .raw moved into place first, the header (which names the .raw) last."""
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=path.parent) as tmp:
        sitk.WriteImage(img, str(Path(tmp) / path.name))
        os.replace(Path(tmp) / path.with_suffix(".raw").name, path.with_suffix(".raw"))
        os.replace(Path(tmp) / path.name, path)


def half_sequence(rng: np.random.Generator, frames: tuple[int, int], fps: float, size: int, width: int):
    """One view: (images, labels) of the phantom's traced beat from ED to ES, (T, size, width) uint8, the
    ``size``-pixel square render padded left and right to ``width``; and (EDV, ESV) in pixel^3."""
    p = sample_params(rng, int(rng.integers(frames[0], frames[1] + 1)), fps, size)
    images, labels = render(p, structures=True)
    ed, es = traced_beat(p)
    pad = ((0, 0), (0, 0), ((width - size) // 2, width - size - (width - size) // 2))
    volumes = (volume_by_disks(*chords(p, ed).T), volume_by_disks(*chords(p, es).T))
    return np.pad(images[ed:es + 1], pad), np.pad(labels[ed:es + 1], pad), volumes


def info_text(fmt: str, n: int, rng: np.random.Generator, edv_ml: float, esv_ml: float, fps: float) -> str:
    """An ``Info_{VIEW}.cfg`` of a half sequence of ``n`` frames (ED = 1, ES = n), with that release's keys."""
    lines = ["ED: 1", f"ES: {n}", f"NbFrame: {n}", f"Sex: {'FM'[int(rng.integers(2))]}",
             f"Age: {int(rng.integers(20, 90))}", f"ImageQuality: {QUALITIES[int(rng.integers(3))]}"]
    ef = ejection_fraction(edv_ml, esv_ml)
    lines += ([f"EF: {round(ef)}", f"FrameRate: {fps:g}"] if fmt == "nifti" else
              [f"LVedv: {edv_ml:.2f}", f"LVesv: {esv_ml:.2f}", f"LVef: {ef:.2f}"])
    return "\n".join(lines) + "\n"


def synthesize_camus(out_dir, n_patients: int = 6, seed: int = 0, fmt: str = "nifti", views=camus.VIEWS,
                     size: int = 160, width: int = 200, spacing: float = 0.6, fps: float = 40.0,
                     frames: tuple[int, int] = (28, 48), splits: tuple[int, int, int] | None = None) -> Path:
    """Write a CAMUS-style phantom of ``n_patients`` patients (``patient0001``...) to ``out_dir`` and return it.

    ``fmt``: "nifti" or "mhd" (see the module doc); frames are ``size`` x ``width`` pixels of ``spacing`` mm;
    ``frames``: the range of the whole phantom video's length, of which the ED-to-ES half is kept. ``splits``:
    (TRAIN, VAL, TEST) patient counts for the NIfTI release's split files (default: CAMUS's 80/10/10 %)."""
    if fmt not in FORMATS:
        raise PhantomError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if width < size or n_patients < 1:
        raise PhantomError(f"need width >= size and at least one patient, got size {size}, width {width}, "
                           f"{n_patients} patients")
    out = Path(out_dir)
    patients = [f"patient{i:04d}" for i in range(1, n_patients + 1)]
    for i, patient in enumerate(patients):
        folder = out / FOLDERS[fmt] / patient
        for v, view in enumerate(views):
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), i, v]))
            images, labels, (edv, esv) = half_sequence(rng, frames, fps, size, width)
            ml = spacing ** 3 / 1000.0
            write_text(folder / f"Info_{view}.cfg", info_text(fmt, len(images), rng, edv * ml, esv * ml, fps))
            stem = f"{patient}_{view}"
            seq = {"nifti": "_half_sequence", "mhd": "_sequence"}[fmt]
            volumes = {seq: images, "_ED": images[0], "_ED_gt": labels[0], "_ES": images[-1], "_ES_gt": labels[-1]}
            if fmt == "nifti":
                volumes[f"{seq}_gt"] = labels
            for suffix, array in volumes.items():
                spacings = (1.0, spacing, spacing)[-array.ndim:]
                if fmt == "nifti":
                    write_volume(folder / f"{stem}{suffix}.nii.gz", array, spacings, compress=True)
                else:
                    write_mhd(folder / f"{stem}{suffix}.mhd", array, spacings)
    if fmt == "nifti":
        held_out = max(1, round(0.1 * n_patients))
        counts = splits or (n_patients - 2 * held_out, held_out, held_out)
        if len(counts) != 3 or min(counts) < 0 or sum(counts) != n_patients:
            raise PhantomError(f"splits must be three counts summing to {n_patients}, got {splits}")
        order = [patients[j] for j in np.random.default_rng([int(seed), 2**31]).permutation(n_patients)]
        bounds = np.cumsum((0, *counts))
        for k, name in enumerate(camus.SPLIT_FILES.values()):
            listed = sorted(order[bounds[k]:bounds[k + 1]])
            write_text(out / camus.SPLIT_DIR / name, "".join(f"{p}\n" for p in listed))
    return out
