"""nnU-Net data loader that draws video clips (positions from :mod:`unilvseg_nnunet.training.sampling`)."""
from __future__ import annotations

import numpy as np
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from threadpoolctl import threadpool_limits

from unilvseg_nnunet.training.sampling import clip_frames, foreground_pixel, window_start
from unilvseg_nnunet.training.trainers.video_transforms import BORDER


class SparseClipDataLoader(nnUNetDataLoader):
    """Batches of clips of ``final_patch_size[0]`` frames at stride ``period``.

    ``mode`` "train": random clip containing a labeled frame; "val": a labeled frame at the centre.
    With ``use_labels=False`` (self-supervision) labels play no part in where clips lie and
    fully unlabeled videos are used like any other; otherwise videos without any labeled frame are
    skipped. Frames beyond the video are zero images with ``ignore`` labels. In-plane, the window
    (``patch_size[1:]``, larger than the final patch for rotation) is placed by nnU-Net's rule; where
    frames are larger than the final patch, a share ``foreground_share`` of training windows is
    centred on a pixel of a random structure of the clip's labeled frames (nnU-Net's foreground
    oversampling), so that crops of large frames still hold the structures. ``stretch``: training clips
    may step by up to ``stretch`` times ``period`` where that lets them hold one more labeled frame
    (see :func:`~unilvseg_nnunet.training.sampling.clip_frames`).
    """

    foreground_share = 0.33  # nnU-Net's oversample_foreground_percent

    def __init__(self, data, batch_size, patch_size, final_patch_size, label_manager, period: int, mode: str,
                 use_labels: bool = True, transforms=None, stretch: int = 1):
        super().__init__(data, batch_size, patch_size, final_patch_size, label_manager,
                         oversample_foreground_percent=0.0, transforms=transforms)
        if label_manager.ignore_label is None:
            raise ValueError("sparse video training needs an ignore label in dataset.json (labels of untraced frames)")
        self.ignore_label, self.period = label_manager.ignore_label, period
        self.mode, self.use_labels, self.stretch = mode, use_labels, stretch
        self.frames = int(final_patch_size[0])
        self.rng = np.random.default_rng(0)  # redrawn per batch from np.random, which nnU-Net seeds per worker
        self._labeled: dict[str, np.ndarray] = {}

    def labeled_frames(self, key: str, seg) -> np.ndarray:
        """Labeled frame indices of case ``key`` (cached)."""
        if key not in self._labeled:
            s = np.asarray(seg[0][:])
            self._labeled[key] = np.flatnonzero((s != self.ignore_label).reshape(s.shape[0], -1).any(1))
        return self._labeled[key]

    def _load(self, key: str):
        """Load ``key``; in labeled mode fall back to random other cases when it has no labeled frame."""
        candidates = [key] + list(self.rng.permutation(self.indices)) if self.use_labels else [key]
        for k in candidates:
            data, seg, _, _ = self._data.load_case(k)
            labeled = self.labeled_frames(k, seg) if self.use_labels else None
            if not self.use_labels or labeled.size:
                return k, data, seg, labeled
        raise RuntimeError("no case of this split has a labeled frame (labels other than the ignore label)")

    def load_clip(self, key: str):
        """(key, image (C, F, H, W), seg (1, F, H, W)) of one clip, before augmentation."""
        key, data, seg, labeled = self._load(key)
        n = data.shape[1]
        t = clip_frames(n, labeled, self.frames, self.period, self.mode, self.rng, self.stretch)
        inside = (t >= 0) & (t < n)
        lo, hi = t[inside].min(), t[inside].max() + 1
        clip_seg = np.asarray(seg[:, lo:hi])[:, t[inside] - lo]
        centre = None
        larger = any(data.shape[d + 1] > self.final_patch_size[d] for d in (1, 2))  # frames larger than the patch
        if larger and self.mode == "train" and self.use_labels and self.rng.random() < self.foreground_share:
            centre = foreground_pixel(clip_seg[0][np.isin(t[inside], labeled)], self.ignore_label, self.rng)
        starts = [window_start(data.shape[d + 1], self.patch_size[d], self.need_to_pad[d], self.mode, self.rng,
                               None if centre is None else centre[d - 1]) for d in (1, 2)]
        bbox = [[0, int(inside.sum())]] + [[s, s + self.patch_size[d]] for s, d in zip(starts, (1, 2))]
        img = np.zeros((data.shape[0], self.frames, *self.patch_size[1:]), np.float32)
        lab = np.full((1, self.frames, *self.patch_size[1:]), self.ignore_label, np.int16)
        img[:, inside] = crop_and_pad_nd(np.asarray(data[:, lo:hi])[:, t[inside] - lo], bbox, 0)
        lab[:, inside] = crop_and_pad_nd(clip_seg, bbox, BORDER)
        return key, torch.from_numpy(img), torch.from_numpy(lab)

    def generate_train_batch(self):
        keys, images, segs = [], [], []
        self.rng = np.random.default_rng(np.random.randint(0, 2 ** 31))
        with torch.no_grad(), threadpool_limits(limits=1, user_api=None):
            for key in self.get_indices():
                key, img, lab = self.load_clip(key)
                if self.transforms is not None:
                    out = self.transforms(image=img, segmentation=lab)
                    img, lab = out["image"], out["segmentation"]
                keys.append(key)
                images.append(img)
                segs.append(lab)
        target = [torch.stack(s) for s in zip(*segs)] if isinstance(segs[0], list) else torch.stack(segs)
        return {"data": torch.stack(images), "target": target, "keys": keys}
