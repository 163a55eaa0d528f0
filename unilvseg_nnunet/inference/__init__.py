"""Stage 4, inference: trained nnU-Net model folders applied to videos.

``predictor`` loads a model folder (checks, folds, our trainers made visible) and segments whole
videos; ``video`` is ``unilvseg predict-video``: raw echo videos in, masks, overlays, area curves,
ED/ES and EF out.
"""
