"""A Gaussian filter along time on the class probabilities of any nnU-Net model's video predictions.

The obvious alternative to a video network: segment each frame with stock nnU-Net ``2d`` (or any
model), keep its probabilities (``nnUNetv2_predict --save_probabilities``), and average each frame's
with its neighbours' before the argmax. A blank or noisy frame then takes its mask from the frames
around it and the area curve loses its frame-to-frame flicker; the price is a curve whose extremes
are flattened (the filter's response at the heart rate), which lowers EF. At either end of a video
the frames are mirrored (frame -k reads as frame k), so a blank first or last frame, which nnU-Net
crops away and returns as background, takes its mask from the frames beside it as an inner one does. ``unilvseg time-filter``
applies it to a prediction folder, ``unilvseg predict-video --time-filter`` to videos as they are segmented
(window by window for a whole-video network: :func:`filter_stream`, the same labels);
``bench/bench_accuracy.py`` scores it beside the video networks.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter1d

from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.files import atomic_path


class TimeFilterError(UnilvsegError):
    """A prediction folder or one of its files cannot be filtered."""


def filter_probabilities(probabilities: np.ndarray, sigma: float) -> np.ndarray:
    """``probabilities`` (classes, frames, ...) filtered along frames with a Gaussian of ``sigma`` frames
    (mirrored at either end: frame -k reads as frame k; ``sigma`` 0 returns the input). Still sums to 1 over classes."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if probabilities.ndim < 2:
        raise ValueError(f"need (classes, frames, ...), got shape {probabilities.shape}")
    if sigma == 0:
        return probabilities
    return gaussian_filter1d(probabilities.astype(np.float32, copy=False), sigma, axis=1, mode="mirror")


def filtered_labels(probabilities: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 labels (frames, ...): the argmax over classes of :func:`filter_probabilities`."""
    return filter_probabilities(probabilities, sigma).argmax(0).astype(np.uint8)


def filter_stream(chunks, sigma: float):
    """:func:`filtered_labels` of a video whose probabilities arrive as consecutive chunks of frames (classes,
    frames, ...), e.g. the windows of a whole-video network: yields ``(first frame, labels)`` in order, the
    same labels as offline, holding only the frames the Gaussian still needs (twice its radius)."""
    filter_probabilities(np.zeros((1, 1)), sigma)  # validates sigma
    radius = int(4.0 * sigma + 0.5)  # scipy's default truncation, 4 sigma
    held, first, done = None, 0, 0  # frames held, index of the first, frames already labeled
    for chunk in itertools.chain(chunks, [None]):  # None: the video ended, mirrored past its last frame
        if chunk is not None:
            chunk = chunk.astype(np.float32, copy=False)
            held = chunk if held is None else np.concatenate([held, chunk], axis=1)
        if held is None:
            return
        stop = first + held.shape[1] - (radius if chunk is not None else 0)
        if stop > done:
            yield done, filtered_labels(held, sigma)[done - first:stop - first]
            keep = max(0, stop - radius - first)
            held, first, done = held[:, keep:], first + keep, stop


def _file_ending(pred_dir: Path) -> str:
    """The file ending of nnUNetv2_predict's output, from the dataset.json it copies beside the masks; refuses
    region-based datasets (their probabilities are not a distribution over labels)."""
    path = pred_dir / "dataset.json"
    if not path.is_file():
        raise TimeFilterError(f"{path} not found: give the folder nnUNetv2_predict wrote (with --save_probabilities)")
    dataset = json.loads(path.read_text())
    if any(isinstance(v, (list, tuple)) for v in dataset.get("labels", {}).values()):
        raise TimeFilterError(f"{path}: a region-based dataset (label values are lists); its sigmoid outputs "
                              "cannot be filtered as one distribution over labels")
    return dataset["file_ending"]


def filter_case(npz: Path, mask: Path, out: Path, sigma: float) -> None:
    """Write ``out``: the labels of ``npz``'s filtered probabilities with the geometry of nnU-Net's ``mask``."""
    try:
        with np.load(npz) as data:
            probabilities = data["probabilities"]
    except (OSError, ValueError, KeyError) as e:
        raise TimeFilterError(f"{npz}: not nnU-Net's probabilities file ({e})") from None
    reference = sitk.ReadImage(str(mask))
    shape = tuple(reversed(reference.GetSize()))
    if probabilities.ndim != 1 + len(shape) or probabilities.shape[1:] != shape:
        raise TimeFilterError(f"{npz}: probabilities of shape {probabilities.shape} do not match the mask {mask.name} "
                              f"of shape {shape}")
    image = sitk.GetImageFromArray(filtered_labels(probabilities, sigma))
    image.CopyInformation(reference)
    with atomic_path(out) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def filter_predictions(pred_dir, out_dir, sigma: float) -> dict:
    """Filter every case of an nnUNetv2_predict folder (``<case>.npz`` beside ``<case><ending>``) into
    ``out_dir`` (same mask names). A bad case is reported and skipped; the others are written.

    Returns {"written": [cases], "failed": {case: message}}."""
    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    if pred_dir.resolve() == out_dir.resolve():
        raise TimeFilterError(f"the output folder must differ from the prediction folder {pred_dir}")
    ending = _file_ending(pred_dir)
    cases = sorted(p.name[:-len(ending)] for p in pred_dir.glob(f"*{ending}") if not p.name.startswith(".tmp-"))
    if not cases:
        raise TimeFilterError(f"{pred_dir}: no predicted masks (*{ending})")
    written, failed = [], {}
    for case in cases:
        npz = pred_dir / f"{case}.npz"
        try:
            if not npz.is_file():
                raise TimeFilterError(f"{npz} not found: predict with nnUNetv2_predict --save_probabilities")
            filter_case(npz, pred_dir / f"{case}{ending}", out_dir / f"{case}{ending}", sigma)
            written.append(case)
        except TimeFilterError as e:
            failed[case] = str(e)
    return {"written": written, "failed": failed}
