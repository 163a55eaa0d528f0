"""UniLVSeg for nnU-Net v2: left-ventricle segmentation in every echocardiogram frame from sparse labels."""

__version__ = "0.1.0"
