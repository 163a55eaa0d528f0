"""Overlay video: the predicted LV contour drawn on every frame of an echo video (OpenCV, MJPG AVI)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from unilvseg_nnunet.files import write_video

CONTOUR_BGR = (0, 255, 255)  # yellow
ED_BGR = (60, 60, 255)  # red
ES_BGR = (80, 220, 80)  # green


def overlay_frames(frames: np.ndarray, mask: np.ndarray, scale: int = 3, ed=(), es=(), disks=None) -> np.ndarray:
    """(F, H*scale, W*scale, 3) BGR frames with the contour of ``mask == 1`` on each (see :func:`iter_overlay`)."""
    return np.stack(list(iter_overlay(frames, mask, scale, ed, es, disks)))


def iter_overlay(frames: np.ndarray, mask: np.ndarray, scale: int = 3, ed=(), es=(), disks=None):
    """Yield (H*scale, W*scale, 3) BGR frames with the contour of ``mask == 1`` drawn on each, one at a time.

    Frames in ``ed``/``es`` get an "ED"/"ES" tag and the contour in that phase's colour;
    ``disks`` maps a frame to its (x1, y1, x2, y2) long axis and chords (method of disks), drawn thin.
    """
    if np.shape(frames) != np.shape(mask):
        raise ValueError(f"frames {np.shape(frames)} and mask {np.shape(mask)} differ in shape")
    f, h, w = np.shape(frames)
    ed, es = set(int(i) for i in ed), set(int(i) for i in es)
    for t in range(f):
        img = cv2.cvtColor(cv2.resize(np.asarray(frames[t]), (w * scale, h * scale), interpolation=cv2.INTER_LINEAR),
                           cv2.COLOR_GRAY2BGR)
        colour = ED_BGR if t in ed else ES_BGR if t in es else CONTOUR_BGR
        lv = (np.asarray(mask[t]) == 1).astype(np.uint8)
        contours, _ = cv2.findContours(lv, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        # pixel (i, j) covers [j, j+1) x [i, i+1) at scale 1: draw through the scaled pixel centres
        scaled = [(c.astype(np.float32) * scale + (scale - 1) / 2).round().astype(np.int32) for c in contours]
        cv2.polylines(img, scaled, True, colour, 1, cv2.LINE_AA)
        if disks and t in disks:
            for x1, y1, x2, y2 in np.stack(disks[t], 1) * scale + (scale - 1) / 2:
                cv2.line(img, (round(x1), round(y1)), (round(x2), round(y2)), colour, 1, cv2.LINE_AA)
        tag = "ED" if t in ed else "ES" if t in es else ""
        cv2.putText(img, f"{t}{'  ' + tag if tag else ''}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1,
                    cv2.LINE_AA)
        yield img


def write_overlay_video(path: str | os.PathLike, frames: np.ndarray, mask: np.ndarray, fps: float,
                        scale: int = 3, ed=(), es=(), disks=None) -> None:
    """Write the overlay (see :func:`iter_overlay`) as an MJPG AVI atomically, frame by frame; RuntimeError if
    OpenCV cannot encode."""
    write_video(path, iter_overlay(frames, mask, scale, ed, es, disks), fps)
