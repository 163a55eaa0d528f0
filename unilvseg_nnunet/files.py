"""Atomic file writes: a killed run never leaves a truncated file under a final name."""
from __future__ import annotations

import itertools
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import SimpleITK as sitk


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffixes); rename it onto ``path`` on success.

    The temporary name starts with ``.tmp-`` so that no nnU-Net glob (``*_0000.mha`` ...) can
    pick it up, and it is removed if the body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="".join(path.suffixes) or ".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the final file the usual permissions
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_volume(path: str | os.PathLike, array: np.ndarray, spacing=(1.0, 1.0, 1.0), compress: bool = False) -> None:
    """Write a (frames, H, W) array as an image nnU-Net's SimpleITKIO reads, atomically.

    ``spacing`` is given in array order (frames, H, W); SimpleITK stores it reversed.
    """
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=compress)


def write_video(path: str | os.PathLike, frames, fps: float) -> None:
    """Write uint8 frames, (H, W) grey or (H, W, 3) BGR, as an MJPG AVI, atomically: a (T, H, W[, 3]) array
    or any iterable of frames (written as they come, so a long video need not be held in memory)."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: no frame to write")
    h, w = np.asarray(first).shape[:2]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (w, h))
        if not writer.isOpened():
            raise RuntimeError(f"{path}: OpenCV cannot open an MJPG video writer")
        try:
            for frame in itertools.chain([first], frames):
                frame = np.asarray(frame)
                if frame.ndim == 2:
                    frame = np.repeat(frame[..., None], 3, axis=-1)  # grey in three identical channels, as EchoNet
                writer.write(np.ascontiguousarray(frame))
        finally:
            writer.release()


def read_volume(path: str | os.PathLike) -> np.ndarray:
    """Read an image written by :func:`write_volume` (or nnU-Net) as a (frames, H, W) array."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def read_volume_spacing(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, ...]]:
    """:func:`read_volume` and the image's spacing in array order ((frames, H, W) for a video)."""
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), tuple(float(s) for s in img.GetSpacing()[::-1])


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
