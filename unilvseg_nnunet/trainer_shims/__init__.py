"""A folder for ``nnUNet_extTrainer`` inside the installed package (``unilvseg env`` prints it).

nnU-Net imports every module of that folder under a top-level name and drops it afterwards; the
modules here only re-export :mod:`unilvseg_nnunet.training.trainers`, so the classes it finds are the
package's own (one module copy, class identity kept)."""
