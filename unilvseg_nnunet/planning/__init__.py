"""Stage 2, planning: video configurations added to a dataset's nnU-Net plans.

``temporal`` plans the 3D (2D+t) configurations and ``superimage`` the super-image ones, both with
nnU-Net's own planners; the stock ``2d``/``3d_fullres`` configurations stay nnU-Net's.
"""
