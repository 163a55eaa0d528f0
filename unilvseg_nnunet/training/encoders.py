"""2D U-Nets with pretrained-style encoders for the super image: timm backbones and UniFormer-S.

The decoder is the one of the paper's code (segmentation_models_pytorch's U-Net decoder, as in
the authors' SimLVSeg release): five blocks of nearest 2x upsampling, concatenation with the
encoder map of the same stride, and two 3x3 conv-BN-ReLU with widths (256, 128, 64, 32, 16); the
output head (a 3x3 convolution) lives under ``decoder.seg_layers`` so that nnU-Net's
``-pretrained_weights`` skips it. ViT-B/16 has a single stride (16): the token maps of blocks 3,
6, 9 and 12 (UNETR's taps) become a pyramid at strides 2, 4, 8 (1x1 projection + bilinear
upsampling) and 16.

Nothing is downloaded: encoders are built with ``pretrained=False``; ImageNet weights come from
an optional local file (:func:`load_encoder_weights`).
"""
from __future__ import annotations

import math
import os

import timm
import torch
import torch.nn.functional as F
from torch import nn

from unilvseg_nnunet.training.uniformer import uniformer_small

# our name -> timm model name and extra create_model arguments (None: built here)
ENCODERS = {
    "resnet18": ("resnet18", {}),
    "mobilenetv3": ("mobilenetv3_large_100", {}),
    "vit_b16": ("vit_base_patch16_224", {"out_indices": (2, 5, 8, 11), "dynamic_img_size": True}),
    "uniformer_s": None,
}
DECODER_CHANNELS = (256, 128, 64, 32, 16)


class ViTPyramid(nn.Module):
    """ViT-B/16 feature extractor returning maps at strides 2, 4, 8 and 16 (channels 32, 64, 128, 768).

    ``img_size``: the expected input side, rounded up to the patch size (16), sets the grid of the
    learned position embeddings; other sizes work too (timm's ``dynamic_img_size`` interpolates them).
    """

    def __init__(self, in_channels: int, img_size: int | None = None, skip_channels=(32, 64, 128)):
        super().__init__()
        name, kwargs = ENCODERS["vit_b16"]
        if img_size is not None:
            kwargs = {**kwargs, "img_size": -(-int(img_size) // 16) * 16}
        self.model = timm.create_model(name, features_only=True, pretrained=False, in_chans=in_channels, **kwargs)
        width = self.model.feature_info.channels()[-1]
        self.proj = nn.ModuleList(nn.Sequential(nn.Conv2d(width, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
                                  for c in skip_channels)
        self.channels = [*skip_channels, width]
        self.reductions = [2, 4, 8, 16]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = self.model(x)
        pyramid = [F.interpolate(p(m), scale_factor=16 // r, mode="bilinear", align_corners=False)
                   for p, m, r in zip(self.proj, maps, self.reductions)]
        return [*pyramid, maps[-1]]


class TimmEncoder(nn.Module):
    """A timm CNN with ``features_only=True``; ``channels``/``reductions`` describe its outputs."""

    def __init__(self, name: str, in_channels: int):
        super().__init__()
        timm_name, kwargs = ENCODERS[name]
        self.model = timm.create_model(timm_name, features_only=True, pretrained=False, in_chans=in_channels, **kwargs)
        self.channels = self.model.feature_info.channels()
        self.reductions = self.model.feature_info.reduction()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)


def build_encoder(name: str, in_channels: int, img_size: int | None = None) -> nn.Module:
    """Encoder module with attributes ``channels`` and ``reductions`` (ascending strides)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)} (or 'unet' for nnU-Net's planned U-Net)")
    if name == "uniformer_s":
        return uniformer_small(in_channels)
    if name == "vit_b16":
        return ViTPyramid(in_channels, img_size)
    return TimmEncoder(name, in_channels)


class DecoderBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        layers = []
        for c in (in_channels, out_channels):
            layers += [nn.Conv2d(c, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class UNetDecoder(nn.Module):
    """U-Net decoder from the deepest encoder map up to full resolution (one block per 2x)."""

    def __init__(self, channels, reductions, num_classes: int, decoder_channels=DECODER_CHANNELS):
        super().__init__()
        n_blocks = int(math.log2(reductions[-1]))
        if len(decoder_channels) < n_blocks:
            raise ValueError(f"decoder_channels {decoder_channels} has fewer than the {n_blocks} blocks needed for stride {reductions[-1]}")
        by_reduction = {r: i for i, r in enumerate(reductions[:-1])}
        # encoder map index concatenated after each upsampling (None: no map at that stride)
        self.skip_index = [by_reduction.get(reductions[-1] >> (k + 1)) for k in range(n_blocks)]
        blocks, prev = [], channels[-1]
        for out, skip in zip(decoder_channels[-n_blocks:], self.skip_index):
            blocks.append(DecoderBlock(prev + (channels[skip] if skip is not None else 0), out))
            prev = out
        self.blocks = nn.ModuleList(blocks)
        self.seg_layers = nn.ModuleList([nn.Conv2d(prev, num_classes, 3, padding=1)])
        self.deep_supervision = False  # nnU-Net's trainer sets this flag; these networks have one output

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for block, skip in zip(self.blocks, self.skip_index):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            if skip is not None:
                x = torch.cat([x, features[skip]], dim=1)
            x = block(x)
        return self.seg_layers[0](x)


class EncoderUNet(nn.Module):
    """2D U-Net: ``encoder`` (see :data:`ENCODERS`) + :class:`UNetDecoder`; input sides must be multiples of ``divisor``.

    ``img_size``: the input side the network is built for (ViT's position-embedding grid; CNNs ignore it).
    """

    def __init__(self, input_channels: int, num_classes: int, encoder: str = "resnet18", img_size: int | None = None,
                 decoder_channels=DECODER_CHANNELS, deep_supervision: bool = False):
        super().__init__()
        if deep_supervision:
            raise ValueError("EncoderUNet has a single output: build it with deep_supervision=False")
        self.encoder_name = encoder
        self.encoder = build_encoder(encoder, input_channels, img_size)
        self.decoder = UNetDecoder(self.encoder.channels, self.encoder.reductions, num_classes, tuple(decoder_channels))
        self.divisor = self.encoder.reductions[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def load_encoder_weights(encoder: nn.Module, path: str | os.PathLike) -> int:
    """Load a local checkpoint (plain state dict, or under "state_dict"/"model") into ``encoder`` by name.

    Keys may be those of the plain timm/UniFormer model (``model.`` is prepended for timm feature
    wrappers); classifier keys are ignored. A stem convolution for another number of input
    channels is adapted with timm's ``adapt_input_conv`` (e.g. RGB ImageNet weights for grey
    echo), ViT position embeddings are resampled to the encoder's grid. Returns the number of
    tensors loaded; raises if none match.
    """
    from timm.layers import resample_abs_pos_embed
    from timm.models._manipulate import adapt_input_conv

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: encoder weights file not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    own = encoder.state_dict()
    loaded = {}
    for key, value in state.items():
        name = next((k for k in (key, f"model.{key}") if k in own), None)
        if name is None:
            continue
        target = own[name].shape
        if value.shape != target:
            if value.ndim == 4 and value.shape[0] == target[0] and value.shape[2:] == target[2:]:
                value = adapt_input_conv(target[1], value)
            elif name.endswith("pos_embed"):
                prefix = value.shape[1] - int(math.isqrt(value.shape[1] - 1)) ** 2
                grid = int(math.isqrt(target[1] - prefix))
                value = resample_abs_pos_embed(value, [grid, grid], num_prefix_tokens=prefix)
            else:
                raise ValueError(f"{path}: tensor {key!r} has shape {tuple(value.shape)}, the encoder expects {tuple(target)}")
        loaded[name] = value
    if not loaded:
        raise ValueError(f"{path}: no tensor name matches the encoder (first keys: {list(state)[:3]})")
    encoder.load_state_dict(loaded, strict=False)
    return len(loaded)
