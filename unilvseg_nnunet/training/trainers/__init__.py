"""nnU-Net trainers of unilvseg. nnU-Net finds them by class name through ``nnUNet_extTrainer``
pointing at a folder of shim modules that import this package (see ``unilvseg env``).

Every nnUNetTrainer subclass defined in the modules below is exported.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as _nnUNetTrainer

from unilvseg_nnunet.training.trainers import pretraining, schedules, sparse_temporal, superimage

_trainers = {name: obj for module in (schedules, sparse_temporal, pretraining, superimage)
             for name, obj in vars(module).items()
             if isinstance(obj, type) and issubclass(obj, _nnUNetTrainer) and obj.__module__ == module.__name__}
globals().update(_trainers)
__all__ = sorted(_trainers)
