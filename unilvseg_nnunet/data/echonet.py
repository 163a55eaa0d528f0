"""EchoNet-Dynamic on disk, following EchoNet-Dynamic's own rules: tracings to masks and volumes, and
plain readers for FileList.csv, VolumeTracings.csv (names with or without ".avi", splits in any case)
and the videos. Dataset-level problems raise :class:`EchoNetFormatError` naming the file and column."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import skimage.draw

from unilvseg_nnunet.errors import UnilvsegError


def tracing_polygon(x1, y1, x2, y2) -> tuple[np.ndarray, np.ndarray]:
    """Polygon (x, y) of a tracing: x1[1:] then reversed x2[1:], likewise y (row 0 is the long axis)."""
    x = np.concatenate((np.asarray(x1, float)[1:], np.flip(np.asarray(x2, float)[1:])))
    y = np.concatenate((np.asarray(y1, float)[1:], np.flip(np.asarray(y2, float)[1:])))
    return x, y


def tracing_mask(x1, y1, x2, y2, shape: tuple[int, int]) -> np.ndarray:
    """Binary LV mask exactly as EchoNet-Dynamic draws it (skimage polygon on rounded vertices)."""
    return rows_mask(np.stack([np.asarray(a, float) for a in (x1, y1, x2, y2)], 1), shape)


def volume_by_disks(x1, y1, x2, y2) -> float:
    """LV volume (pixel^3 units) by the method of disks: sum(pi/4 * d_i^2 * L / n) over the n chords.

    Row 0 is the long axis (length L); rows 1.. are the chords perpendicular to it.
    """
    x1, y1, x2, y2 = (np.asarray(a, float) for a in (x1, y1, x2, y2))
    length = np.hypot(x2[0] - x1[0], y2[0] - y1[0])
    d = np.hypot(x2[1:] - x1[1:], y2[1:] - y1[1:])
    return float(np.sum(np.pi / 4.0 * d**2) * length / len(d))


def ejection_fraction(edv: float, esv: float) -> float:
    """EF in percent."""
    return 100.0 * (edv - esv) / edv


# --------------------------------------------------------------------------------------------
# Reading the EchoNet-Dynamic folder: FileList.csv, VolumeTracings.csv, Videos/*.avi
# --------------------------------------------------------------------------------------------

FILELIST = "FileList.csv"
TRACINGS = "VolumeTracings.csv"
VIDEOS_DIR = "Videos"
DEFAULT_FPS = 50.0  # EchoNet-Dynamic's usual frame rate: used only where a video or case gives none
SPLITS = ("TRAIN", "VAL", "TEST")
FILELIST_LAYOUT = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split")
FILELIST_COLUMNS = ("FileName", "Split", "EF", "ESV", "EDV", "FPS", "NumberOfFrames")  # the ones read
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
ROWS_PER_TRACING = 21  # row 0 = long axis, rows 1..20 = chords
# quoting, or a character where str.splitlines ends a line and the csv module does not
_NOT_PLAIN = '"\v\f\x1c\x1d\x1e\x85\u2028\u2029'

# Dense truth: optional additions to an EchoNet-format folder (the phantom writes them; the converter
# carries them into the raw dataset). Real EchoNet-Dynamic has neither.
DENSE_TRUTH_DIR = "DenseTruth"  # <FileName>.npz holding "masks": (frames, H, W) uint8, 1 = LV, on every frame
CORRUPTED_FRAMES = "CorruptedFrames.csv"  # one row per corrupted frame and artefact kind
CORRUPTED_COLUMNS = ("FileName", "Frame", "Kind")


class EchoNetFormatError(UnilvsegError, ValueError):
    """A problem with the dataset as a whole (missing CSV or column): nothing can be converted."""


def normalize_name(name) -> str:
    """EchoNet FileName without directory and ``.avi`` (either CSV may carry it or not)."""
    name = str(name).strip()
    return name[:-4] if name.lower().endswith(".avi") else name


def _read_csv(path, columns: tuple[str, ...], only: tuple[str, set[str]] | None = None) -> dict:
    """The named columns of a CSV as lists of strings; raises EchoNetFormatError naming the
    file and the missing column(s). The csv module, not pandas: starts at once, keeps values as written.

    ``only`` = (column, names), the column one of ``columns``: keep just the rows whose value there, by
    :func:`normalize_name`, is one of ``names``; the result then also holds under ``"*" + column`` the
    set of that column's normalized values over every row. In a plain file (no quoting) a scan of the raw lines
    finds those rows and the csv module parses only them: EchoNet-Dynamic's VolumeTracings.csv has ~420k rows,
    and a run that converts a few hundred videos should not spend seconds parsing all of them."""
    path = Path(path)
    if not path.is_file():
        raise EchoNetFormatError(f"{path}: file not found (an EchoNet-Dynamic folder holds {FILELIST}, "
                                 f"{TRACINGS} and {VIDEOS_DIR}/)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
        plain = only is not None and not any(c in text for c in _NOT_PLAIN)
        lines = text.splitlines() if plain else []
        reader = csv.reader(lines[:1] if plain else io.StringIO(text, newline=""))
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise EchoNetFormatError(f"{path}: missing column(s) {', '.join(missing)} "
                                     f"(found: {', '.join(header) or 'no header'})")
        every = None
        if plain:  # find the wanted rows by hand, parse only them
            at = header.index(only[0])
            lines = [line for line in lines[1:] if line]
            raws = ([line.partition(",")[0] for line in lines] if at == 0
                    else [(line.split(",", at + 1) + [""] * at)[at] for line in lines])
            names = {raw: normalize_name(raw) for raw in set(raws)}  # a few per video, not one per row
            every = set(names.values())
            wanted = {raw for raw, name in names.items() if name in only[1]}
            reader = csv.reader([line for line, raw in zip(lines, raws) if raw in wanted])
        rows = [r if len(r) >= len(header) else r + [""] * (len(header) - len(r)) for r in reader if r]
    except (UnicodeDecodeError, csv.Error) as e:  # not a text CSV: a dataset-level problem
        raise EchoNetFormatError(f"{path}: cannot be read as CSV ({e})") from e
    cols = list(zip(*rows)) if rows else [()] * len(header)
    out = {c: list(cols[header.index(c)]) for c in columns}
    if only is not None and every is None:  # quoted fields: every row was parsed, now filtered
        keys = [normalize_name(v) for v in out[only[0]]]
        out = {c: [v for v, k in zip(values, keys) if k in only[1]] for c, values in out.items()}
        every = set(keys)
    if only is not None:
        out["*" + only[0]] = every
    return out


def _floats(texts: list[str]) -> np.ndarray:
    """CSV numbers as float64, NaN where empty or not a number."""
    try:
        return np.array(texts, dtype=np.float64).reshape(len(texts))
    except ValueError:
        out = np.empty(len(texts))
        for i, t in enumerate(texts):
            try:
                out[i] = float(t)
            except ValueError:
                out[i] = np.nan
        return out


def read_filelist(path) -> list[dict]:
    """Rows of FileList.csv in file order: FileName without ``.avi``, Split upper-case, EF, ESV, EDV,
    FPS as float (NaN when empty or not a number), NumberOfFrames as int or None."""
    cols = _read_csv(path, FILELIST_COLUMNS)
    nums = {c: _floats(cols[c]).tolist() for c in ("EF", "ESV", "EDV", "FPS", "NumberOfFrames")}
    rows = []
    for i, name in enumerate(cols["FileName"]):
        row = {c: nums[c][i] for c in ("EF", "ESV", "EDV", "FPS")}
        n = nums["NumberOfFrames"][i]
        row.update(FileName=normalize_name(name), Split=cols["Split"][i].strip().upper(),
                   NumberOfFrames=int(n) if math.isfinite(n) and n == int(n) else None)
        rows.append(row)
    return rows


def read_tracings(path, coordinates: tuple[str, ...] = TRACING_COLUMNS[1:5],
                  videos: set[str] | None = None) -> dict[str, dict[int, np.ndarray]]:
    """VolumeTracings.csv grouped per video (name without ``.avi``) and frame (0-based int): an
    (rows, 4) float array of X1, Y1, X2, Y2 in file order (``coordinates``: other columns, e.g. EchoNet-Pediatric's
    X, Y). Non-numeric values become NaN; rows whose Frame is not a non-negative integer are kept under frame -1
    so that the caller can report them. ``videos`` (names without ``.avi``): parse only their rows; every other
    video of the file maps to an empty dict (the keys still name every traced video)."""
    only = None if videos is None else ("FileName", set(videos))
    cols = _read_csv(path, ("FileName", *coordinates, "Frame"), only)
    coords = np.stack([_floats(cols[c]) for c in coordinates], 1)
    f = _floats(cols["Frame"])
    ok = np.isfinite(f) & (f >= 0)
    ok[ok] &= f[ok] == np.floor(f[ok])
    frames = np.where(ok, f, -1).astype(np.int64).tolist()
    groups: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(map(normalize_name, cols["FileName"]), frames)):
        groups.setdefault(key, []).append(i)
    out: dict[str, dict[int, np.ndarray]] = {}
    for (name, frame), idx in groups.items():
        out.setdefault(name, {})[frame] = coords[idx]
    for name in cols.get("*FileName", set()) - out.keys():
        out[name] = {}
    return out


def rows_polygon(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polygon (x, y) of a traced frame's rows, as EchoNet's loader reads both layouts: (n, 4) X1, Y1, X2, Y2
    chords (:func:`tracing_polygon`) or (n, 2) X, Y outline points in file order (EchoNet-Pediatric)."""
    return tracing_polygon(*rows.T) if rows.shape[1] == 4 else (rows[:, 0], rows[:, 1])


def rows_mask(rows: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Binary mask of a traced frame's rows (either layout), EchoNet's fill rule (skimage polygon, rounded)."""
    x, y = rows_polygon(rows)
    r, c = skimage.draw.polygon(np.rint(y).astype(np.int64), np.rint(x).astype(np.int64), shape)
    mask = np.zeros(shape, np.uint8)
    mask[r, c] = 1
    return mask


def tracing_area(rows: np.ndarray) -> float:
    """Area (pixel^2) of a tracing's polygon (shoelace), rows in either layout of :func:`rows_polygon`."""
    x, y = rows_polygon(rows)
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def ed_es_frames(areas: dict[int, float]) -> tuple[int | None, int | None]:
    """(ED, ES) frame indices: the traced frames with the largest and smallest area (row order in the
    CSV is not reliable). Fewer than two traced frames give (None, None): one area decides nothing."""
    if len(areas) < 2:
        return None, None
    ed = max(areas, key=lambda f: (areas[f], -f))
    es = min(areas, key=lambda f: (areas[f], f))
    return ed, es


def video_fps(path) -> float | None:
    """Frame rate stored in the video container (None if OpenCV reports none)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return float(fps) if fps and math.isfinite(fps) and fps > 0 else None


def decode_video(path, keep_color: bool = False) -> np.ndarray:
    """All frames of a video with OpenCV: (frames, H, W) uint8 grey (EchoNet stores grey in three
    identical channels), or (frames, H, W, 3) RGB with ``keep_color``. Raises ValueError when the
    file cannot be opened or yields no frame. Frames are converted straight into one array sized by
    the header's frame count (grown if the header says too few): no per-frame arrays to stack."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"{path}: OpenCV cannot open the video")
        code = cv2.COLOR_BGR2RGB if keep_color else cv2.COLOR_BGR2GRAY
        out, frame, n = None, None, 0
        while True:
            ok, frame = cap.read(frame)  # decoding into the previous frame's buffer
            if not ok:
                break
            if out is None:
                size = max(1, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
                out = np.empty((size, *frame.shape[:2], *((3,) if keep_color else ())), np.uint8)
            elif n == len(out):
                out = np.concatenate([out, np.empty_like(out)])
            if frame.shape[:2] != out.shape[1:3]:
                raise ValueError(f"{path}: frame {n} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                                 f"{out.shape[2]}x{out.shape[1]}")
            cv2.cvtColor(frame, code, dst=out[n])
            n += 1
    finally:
        cap.release()
    if not n:
        raise ValueError(f"{path}: no frame could be decoded")
    return out if n == len(out) else out[:n].copy()  # a copy: a truncated video does not keep the larger buffer


def dense_truth_path(folder, name: str) -> Path:
    """Where an EchoNet-format folder keeps the dense truth of video ``name`` (with or without ``.avi``)."""
    return Path(folder) / DENSE_TRUTH_DIR / f"{normalize_name(name)}.npz"


def read_dense_truth(path) -> np.ndarray:
    """The every-frame LV masks of one video, (frames, H, W) uint8 of 0/1; ValueError naming the file otherwise."""
    try:
        with np.load(path) as z:
            masks = z["masks"]
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(f"{path}: not a dense-truth file ({type(e).__name__}: {e})") from None
    if masks.ndim != 3 or masks.size == 0:
        raise ValueError(f"{path}: masks of shape {masks.shape}, expected (frames, H, W)")
    if masks.dtype != np.uint8 or masks.max() > 1:
        raise ValueError(f"{path}: masks must be uint8 0/1, got {masks.dtype} up to {masks.max()}")
    return masks


def read_corrupted_frames(path) -> dict[str, dict[int, list[str]]]:
    """CorruptedFrames.csv as {name without .avi: {frame: [kinds]}}; a Frame that is not a non-negative
    integer raises EchoNetFormatError naming the file and the row."""
    cols = _read_csv(path, CORRUPTED_COLUMNS)
    out: dict[str, dict[int, list[str]]] = {}
    for i, (name, frame, kind) in enumerate(zip(cols["FileName"], cols["Frame"], cols["Kind"])):
        if not frame.strip().isdigit():
            raise EchoNetFormatError(f"{path}: row {i + 2}: Frame {frame!r} is not a non-negative integer")
        out.setdefault(normalize_name(name), {}).setdefault(int(frame), []).append(kind.strip())
    return out
