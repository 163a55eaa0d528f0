"""EchoNet-Dynamic reading: CSV parsing and name/split normalisation, dataset-level errors, ED/ES by
area, video decoding, and masks checked against an independent rendering (cv2.fillPoly)."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from unilvseg_nnunet.data import echonet

# ------------------------------------------------------------------------------------------------
# Helpers that write tiny EchoNet-Dynamic-format folders (also used by test_conversion.py)
# ------------------------------------------------------------------------------------------------

FILELIST_HEADER = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]


def lv_tracing(rng, scale: float = 1.0, size: int = 112) -> np.ndarray:
    """A plausible LV tracing, (21, 4) X1, Y1, X2, Y2 with sub-pixel values: row 0 the long axis
    (apex to base), rows 1..20 chords perpendicular to it."""
    c = np.array([size / 2, size / 2]) + rng.uniform(-8, 8, 2)
    theta = rng.uniform(-0.5, 0.5) + np.pi / 2
    u = np.array([np.cos(theta), np.sin(theta)])
    n = np.array([-u[1], u[0]])
    length, width = 60 * scale * rng.uniform(0.9, 1.1), 18 * scale * rng.uniform(0.9, 1.1)
    apex, base = c - u * length / 2, c + u * length / 2
    rows = [[*apex, *base]]
    for i in range(20):
        t = (i + 0.5) / 20
        p = apex + u * length * t
        w = width * np.sin(np.pi * (0.15 + 0.85 * t)) ** 0.6
        rows.append([*(p - n * w), *(p + n * w)])
    return np.array(rows)


def write_avi(path: Path, frames: np.ndarray, fps: float = 50.0) -> None:
    """MJPG AVI from (F, H, W) grey frames stored in three identical channels, like EchoNet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()


def make_video(rng, num_frames: int, size: int = 112) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    base = (60 + 40 * np.sin(xx / 7.0) * np.cos(yy / 9.0)).astype(np.float32)
    out = np.empty((num_frames, size, size), np.uint8)
    for i in range(num_frames):
        r = 20 + 6 * np.sin(2 * np.pi * i / 25)
        disk = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < r * r) * 80
        out[i] = np.clip(base + disk + rng.normal(0, 5, (size, size)), 0, 255).astype(np.uint8)
    return out


def make_echonet(root: Path, videos: list[dict], seed: int = 0, write_tracings_avi: bool = True) -> Path:
    """Write an EchoNet-Dynamic folder. Each video dict: name, split, frames (decoded length),
    traced {frame: (rows, 4) array} (default: ED at 3 and ES at frames//2), listed_frames
    (NumberOfFrames in FileList, default frames), write (False: no AVI file), content (raw bytes
    instead of a real video). Tracing file names carry ".avi" unless the dict says avi=False."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "FileList.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FILELIST_HEADER)
        for v in videos:
            w.writerow([v.get("filelist_name", v["name"]), 60.0, 30.0, 75.0, 112, 112, 50, v.get("listed_frames", v["frames"]), v["split"]])
    with open(root / "VolumeTracings.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["FileName", "X1", "Y1", "X2", "Y2", "Frame"])
        for v in videos:
            traced = v.get("traced")
            if traced is None:
                traced = {3: lv_tracing(rng, 1.0), v["frames"] // 2: lv_tracing(rng, 0.75)}
                v["traced"] = traced
            name = v["name"] + (".avi" if v.get("avi", True) else "")
            for frame, rows in traced.items():
                for r in rows:
                    w.writerow([name, *(f"{x:.6f}" for x in r), frame])
    for v in videos:
        path = root / "Videos" / f"{v['name']}.avi"
        if "content" in v:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(v["content"])
        elif v.get("write", True):
            write_avi(path, make_video(rng, v["frames"]))
    (root / "Videos").mkdir(exist_ok=True)
    return root


def reference_mask(rows: np.ndarray, shape=(112, 112)) -> np.ndarray:
    """Independent rendering of EchoNet's rule: cv2.fillPoly on the same rounded vertices.

    fillPoly also paints the polygon's boundary pixels, which skimage.draw.polygon includes only
    when they fall inside, so the reference is compared on interior pixels and boundary separately."""
    x = np.concatenate((rows[1:, 0], rows[1:, 2][::-1]))
    y = np.concatenate((rows[1:, 1], rows[1:, 3][::-1]))
    pts = np.stack([np.rint(x), np.rint(y)], 1).astype(np.int32)
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [pts], 1)
    return out


def echonet_reference_mask(rows: np.ndarray, shape=(112, 112)) -> np.ndarray:
    """EchoNet-Dynamic's echo.py transcribed literally (its __getitem__ for LargeTrace/SmallTrace)."""
    import skimage.draw

    x1, y1, x2, y2 = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    x = np.concatenate((x1[1:], np.flip(x2[1:])))
    y = np.concatenate((y1[1:], np.flip(y2[1:])))
    r, c = skimage.draw.polygon(np.rint(y).astype(int), np.rint(x).astype(int), shape)
    mask = np.zeros(shape, np.float32)
    mask[r, c] = 1
    return mask.astype(np.uint8)


def assert_mask_matches_tracing(mask: np.ndarray, rows: np.ndarray) -> None:
    """Pixel-for-pixel EchoNet's rule, and agreement with an independent rasteriser (cv2.fillPoly on the
    same rounded vertices) everywhere except pixels on the polygon's boundary, which fillPoly always paints."""
    np.testing.assert_array_equal(mask, echonet_reference_mask(rows, mask.shape))
    ref = reference_mask(rows, mask.shape).astype(bool)
    m = mask.astype(bool)
    assert not (m & ~ref).any(), "mask paints pixels outside the traced polygon"
    x = np.rint(np.concatenate((rows[1:, 0], rows[1:, 2][::-1])))
    y = np.rint(np.concatenate((rows[1:, 1], rows[1:, 3][::-1])))
    outline = np.zeros(mask.shape, np.uint8)
    cv2.polylines(outline, [np.stack([x, y], 1).astype(np.int32)], True, 1)
    assert not (ref & ~m & ~outline.astype(bool)).any(), "mask misses interior pixels of the traced polygon"
    assert m.sum() > 0.9 * ref.sum()


@pytest.mark.parametrize("seed", range(6))
def test_tracing_mask_matches_independent_rendering(seed):
    rng = np.random.default_rng(seed)
    rows = lv_tracing(rng, rng.uniform(0.5, 1.2))
    mask = echonet.tracing_mask(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], (112, 112))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert_mask_matches_tracing(mask, rows)
    # the polygon area (shoelace) agrees with the pixel count to within the boundary
    assert abs(echonet.tracing_area(rows) - mask.sum()) < 0.15 * mask.sum()


def test_ed_es_by_area_not_row_order():
    assert echonet.ed_es_frames({10: 500.0, 40: 900.0}) == (40, 10)
    assert echonet.ed_es_frames({40: 900.0, 10: 500.0, 25: 700.0}) == (40, 10)
    assert echonet.ed_es_frames({7: 300.0}) == (None, None)
    assert echonet.ed_es_frames({}) == (None, None)


def test_normalize_name():
    assert echonet.normalize_name("0X100CF05D141FF143.avi") == "0X100CF05D141FF143"
    assert echonet.normalize_name(" 0X100CF05D141FF143.AVI ") == "0X100CF05D141FF143"
    assert echonet.normalize_name("0X100CF05D141FF143") == "0X100CF05D141FF143"


def test_read_csvs_normalise_names_and_splits(tmp_path):
    videos = [dict(name="A", filelist_name="A.avi", split="train", frames=30, avi=False),
              dict(name="B", split="Val", frames=30), dict(name="C", split="TEST", frames=30)]
    root = make_echonet(tmp_path / "e", videos)
    rows = echonet.read_filelist(root / echonet.FILELIST)
    assert [(r["FileName"], r["Split"]) for r in rows] == [("A", "TRAIN"), ("B", "VAL"), ("C", "TEST")]
    assert rows[0]["NumberOfFrames"] == 30 and rows[0]["EF"] == 60.0
    tr = echonet.read_tracings(root / echonet.TRACINGS)
    assert set(tr) == {"A", "B", "C"}
    for v in videos:
        assert sorted(tr[v["name"]]) == sorted(v["traced"])
        for frame, rows_ in v["traced"].items():
            np.testing.assert_allclose(tr[v["name"]][frame], rows_, atol=1e-6)  # file order kept


@pytest.mark.parametrize("which,column", [("FileList.csv", "Split"), ("VolumeTracings.csv", "Frame")])
def test_missing_column_names_file_and_column(tmp_path, which, column):
    root = make_echonet(tmp_path / "e", [dict(name="A", split="TRAIN", frames=30)])
    path = root / which
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    idx = header.index(column)
    path.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != idx) for line in lines) + "\n")
    reader = echonet.read_filelist if which == "FileList.csv" else echonet.read_tracings
    with pytest.raises(echonet.EchoNetFormatError, match=rf"{which}.*missing column.*{column}"):
        reader(path)


def test_missing_csv_names_file(tmp_path):
    with pytest.raises(echonet.EchoNetFormatError, match="FileList.csv: file not found"):
        echonet.read_filelist(tmp_path / "FileList.csv")


def test_decode_video_grey_and_colour(tmp_path):
    rng = np.random.default_rng(0)
    frames = make_video(rng, 12)
    write_avi(tmp_path / "v.avi", frames)
    grey = echonet.decode_video(tmp_path / "v.avi")
    assert grey.shape == (12, 112, 112) and grey.dtype == np.uint8
    assert np.abs(grey.astype(int) - frames).mean() < 4  # MJPG is lossy
    colour = echonet.decode_video(tmp_path / "v.avi", keep_color=True)
    assert colour.shape == (12, 112, 112, 3)
    assert np.abs(colour.astype(int) - grey[..., None]).max() <= 2  # grey content in three channels
    (tmp_path / "bad.avi").write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="bad.avi"):
        echonet.decode_video(tmp_path / "bad.avi")


def _frame_by_frame(path, code, capture=cv2.VideoCapture) -> np.ndarray:
    cap, frames = capture(str(path)), []
    ok, frame = cap.read()
    while ok:
        frames.append(cv2.cvtColor(frame, code))
        ok, frame = cap.read()
    return np.stack(frames)


@pytest.mark.parametrize("header_frames", [None, 1, 0, 40])
def test_decode_video_equals_frame_by_frame_whatever_the_header_says(tmp_path, monkeypatch, header_frames):
    """One array sized by the header's frame count, grown or trimmed when the header is wrong: the same frames as
    OpenCV's plain frame-by-frame decoding."""
    write_avi(tmp_path / "v.avi", make_video(np.random.default_rng(1), 13))

    real = cv2.VideoCapture

    class Capture:  # OpenCV's capture, with a header that claims another frame count
        def __init__(self, path):
            self.cap = real(path)

        def get(self, prop):
            return header_frames if prop == cv2.CAP_PROP_FRAME_COUNT and header_frames is not None else self.cap.get(prop)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", Capture)
    for keep_color, code in ((False, cv2.COLOR_BGR2GRAY), (True, cv2.COLOR_BGR2RGB)):
        decoded = echonet.decode_video(tmp_path / "v.avi", keep_color=keep_color)
        np.testing.assert_array_equal(decoded, _frame_by_frame(tmp_path / "v.avi", code))
        assert decoded.flags.c_contiguous and (decoded.base is None or decoded.base.shape == decoded.shape)


def test_read_tracings_bad_values_kept_for_reporting(tmp_path):
    path = tmp_path / "VolumeTracings.csv"
    path.write_text("FileName,X1,Y1,X2,Y2,Frame\nA.avi,1,2,3,4,7\nA.avi,abc,2,3,,7\nA,1,2,3,4,x\nA,1,2,3,4,3.5\nB,1,2,3,4,-1\n")
    tr = echonet.read_tracings(path)
    assert sorted(tr["A"]) == [-1, 7] and sorted(tr["B"]) == [-1]
    assert tr["A"][7].shape == (2, 4) and np.isnan(tr["A"][7][1, [0, 3]]).all() and tr["A"][7][1, 1] == 2
    assert len(tr["A"][-1]) == 2


TRACINGS_TEXT = ("FileName,X1,Y1,X2,Y2,Frame\r\nA.avi,1,2,3,4,7\r\n\r\nB,5,6,7,8,2\r\n a.AVI ,1,2,3,,7\r\n"
                 "C.avi,1,2,3,4,x\r\nB.avi,9,9,9,9,2\r\nD,1\r\n")


@pytest.mark.parametrize("variant", ["plain", "quoted", "name_not_first"])
def test_read_tracings_of_selected_videos_equal_the_full_read(tmp_path, variant):
    """Parsing only the rows of some videos (a --max-cases run) gives exactly their part of the full read, and still
    names every video of the file; plain files take the quick line scan, quoted ones the csv module's way."""
    text = TRACINGS_TEXT
    if variant == "quoted":
        text = text.replace("B.avi,9", '"B.avi",9')
    elif variant == "name_not_first":  # FileName as the last column
        text = "\r\n".join(",".join(line.split(",")[1:] + line.split(",")[:1]) if line else line
                           for line in text.split("\r\n"))
    path = tmp_path / "VolumeTracings.csv"
    path.write_text(text, newline="")
    full = echonet.read_tracings(path)
    # a short row ("D,1") has no FileName when that column comes last
    assert sorted(full) == (["", "A", "B", "C", "a"] if variant == "name_not_first" else ["A", "B", "C", "D", "a"])
    for videos in ({"B"}, {"A", "D", "nope"}, {""}, set()):
        part = echonet.read_tracings(path, videos=videos)
        assert part.keys() == full.keys()
        for name, frames in part.items():
            if name not in videos:
                assert frames == {}
            else:
                assert frames.keys() == full[name].keys()
                for f in frames:
                    np.testing.assert_array_equal(frames[f], full[name][f])
    np.testing.assert_array_equal(echonet.read_tracings(path, videos={"B"})["B"][2], [[5, 6, 7, 8], [9, 9, 9, 9]])


def test_unreadable_csv_is_a_dataset_error(tmp_path):
    (tmp_path / "FileList.csv").write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    with pytest.raises(echonet.EchoNetFormatError, match="FileList.csv"):
        echonet.read_filelist(tmp_path / "FileList.csv")
    (tmp_path / "FileList.csv").write_text("")
    with pytest.raises(echonet.EchoNetFormatError, match="FileList.csv: missing column"):
        echonet.read_filelist(tmp_path / "FileList.csv")
