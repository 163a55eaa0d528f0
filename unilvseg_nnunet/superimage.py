"""Plans files written before the package was grouped by stage name the super-image network
``unilvseg_nnunet.superimage.SuperImageNet``; nnU-Net resolves that path with ``pydoc.locate``,
so it stays importable here."""
from unilvseg_nnunet.training.superimage import SuperImageNet

__all__ = ["SuperImageNet"]
