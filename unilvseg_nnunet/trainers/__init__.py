"""nnU-Net trainers of unilvseg. nnU-Net finds them by class name through ``nnUNet_extTrainer``
pointing at a folder of shim modules that import this package (see ``unilvseg env``)."""
from .pretraining import (TemporalMaskingPretrainer, TemporalMaskingPretrainer_5epochs, TemporalMaskingPretrainer_AdamW,
                          TemporalMaskingPretrainer_mask40, TemporalMaskingPretrainer_mask80, TemporalMaskingPretrainer_smoke)
from .schedules import nnUNetTrainer_smoke
from .sparse_temporal import (SparseTemporalTrainer, SparseTemporalTrainer_5epochs, SparseTemporalTrainer_AdamW,
                              SparseTemporalTrainer_DiceOnly, SparseTemporalTrainer_smoke)

__all__ = [
    "SparseTemporalTrainer", "SparseTemporalTrainer_DiceOnly", "SparseTemporalTrainer_AdamW",
    "SparseTemporalTrainer_5epochs", "SparseTemporalTrainer_smoke",
    "TemporalMaskingPretrainer", "TemporalMaskingPretrainer_mask40", "TemporalMaskingPretrainer_mask80",
    "TemporalMaskingPretrainer_AdamW", "TemporalMaskingPretrainer_5epochs", "TemporalMaskingPretrainer_smoke",
    "nnUNetTrainer_smoke",
]

# The super-image trainers (unilvseg_nnunet/trainers/superimage.py, which subclass SparseTemporalTrainer):
# every trainer class defined there is exported too, once that module exists.
import importlib.util as _util

if _util.find_spec(f"{__name__}.superimage") is not None:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as _base

    from . import superimage as _superimage

    _si = [n for n, o in vars(_superimage).items()
           if isinstance(o, type) and issubclass(o, _base) and o.__module__ == _superimage.__name__]
    globals().update({n: getattr(_superimage, n) for n in _si})
    __all__ += _si
