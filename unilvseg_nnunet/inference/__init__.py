"""Stage 4, inference: trained nnU-Net model folders applied to videos.

``predictor`` loads a model folder (checks, folds, our trainers made visible) and segments whole
videos; ``window`` lets a whole-video network segment any length in one tile (``clip_norm`` gives its
instance norms the statistics of a training clip, ``gaussian`` builds nnU-Net's tile weights for it
cheaply); ``video`` is ``unilvseg predict-video``: raw echo videos in,
masks, overlays, area curves, ED/ES and EF out; ``time_filter`` smooths any model's probabilities along
time (``unilvseg time-filter``).
"""
