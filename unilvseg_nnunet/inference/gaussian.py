"""nnU-Net's sliding-window Gaussian computed as an outer product of 1-D Gaussians.

nnU-Net's ``compute_gaussian`` filters a one-voxel impulse the size of the tile with scipy's n-D
``gaussian_filter``. For a temporal configuration's tile of 1,024 x 112 x 112 voxels that takes about 6 s
of CPU, and nnU-Net clears its cache at the end of every prediction run, so every ``nnUNetv2_predict`` of
such a model (and every final validation) paid it before the first frame. A Gaussian filter of an impulse
is separable: the outer product of the 1-D filtered impulses is the same array, bit for bit after nnU-Net's
float16 cast, in a twentieth of the time. :func:`use_separable_gaussian` puts it in the place nnU-Net's
predictor calls; :func:`~unilvseg_nnunet.inference.window.video_window_net` does so when it builds a
whole-video network.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d


@lru_cache(maxsize=2)
def separable_gaussian(tile_size: tuple, sigma_scale: float = 1. / 8, value_scaling_factor: float = 1,
                       dtype=torch.float16, device=torch.device("cuda", 0)) -> torch.Tensor:
    """nnU-Net's ``compute_gaussian`` (same signature, same array), one axis at a time."""
    g = np.ones(())
    for n in tile_size:
        impulse = np.zeros(n)
        impulse[n // 2] = 1
        g = np.multiply.outer(g, gaussian_filter1d(impulse, n * sigma_scale, mode="constant", cval=0))
    g /= np.max(g) / value_scaling_factor
    g = torch.from_numpy(g).to(device=device, dtype=dtype)
    zero = g == 0  # as nnU-Net: no zero weights (they would divide by zero)
    g[zero] = torch.min(g[~zero])
    return g


def use_separable_gaussian() -> None:
    """Make nnU-Net's predictor (``nnUNetv2_predict``, final validation) use :func:`separable_gaussian`."""
    from nnunetv2.inference import predict_from_raw_data

    predict_from_raw_data.compute_gaussian = separable_gaussian
