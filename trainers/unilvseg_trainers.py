"""Shim for nnU-Net's trainer finder: re-exports the trainers of the installed package."""
from unilvseg_nnunet.training.trainers import *  # noqa: F401,F403
from unilvseg_nnunet.training.trainers import __all__  # noqa: F401
