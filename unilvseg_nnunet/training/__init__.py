"""Stage 3, training: what the trainers compose.

``losses`` (frame-wise sparse Dice + CE), ``sampling`` (clip windows around labeled frames),
``masking`` (temporal masking for self-supervision), ``networks`` (temporal networks from plans),
``superimage`` (the super-image video wrapper), ``encoders``/``uniformer`` (2D encoders for the
super image) and ``trainers`` (the nnU-Net trainer classes, found through ``TRAINER_FOLDER``).
"""
from pathlib import Path

TRAINER_FOLDER = Path(__file__).resolve().parents[1] / "trainer_shims"
"""The folder for ``nnUNet_extTrainer``: shim modules inside the installed package, so it works in
editable and non-editable installs alike (the checkout's top-level ``trainers/`` holds the same shim)."""
