"""Super-image encoders: every one builds (no download) and keeps shapes; parameter counts match the paper's."""
from __future__ import annotations

import pytest
import timm
import torch

from unilvseg_nnunet.training.encoders import ENCODERS, EncoderUNet, load_encoder_weights
from unilvseg_nnunet.training.superimage import SuperImageNet
from unilvseg_nnunet.training.uniformer import CBlock, SABlock, uniformer_small

IMAGENET_HEAD_M = (512 * 1000 + 1000) / 1e6  # UniFormer-S classifier, built (unused) by the authors' SI network


def n_params(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_every_encoder_builds_and_keeps_shapes(encoder):
    net = SuperImageNet(1, 2, frames=4, period=2, encoder=encoder, img_size=64).eval()
    x = torch.randn(1, 1, 8, 24, 24)  # 48 px super images, padded to the encoder's stride
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 2, 8, 24, 24) and torch.isfinite(y).all()
    heads = [k for k in net.state_dict() if ".seg_layers." in k]
    assert heads == ["net.decoder.seg_layers.0.weight", "net.decoder.seg_layers.0.bias"]


def test_uniformer_s_stages():
    enc = uniformer_small(in_channels=1).eval()
    with torch.no_grad():
        feats = enc(torch.zeros(1, 1, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 16, 24), (1, 128, 8, 12), (1, 320, 4, 6), (1, 512, 2, 3)]
    assert [len(getattr(enc, f"blocks{i}")) for i in range(1, 5)] == [3, 4, 8, 3]
    assert all(isinstance(b, CBlock) for b in [*enc.blocks1, *enc.blocks2])
    assert all(isinstance(b, SABlock) for b in [*enc.blocks3, *enc.blocks4])
    assert enc.blocks3[0].attn.num_heads == 5 and enc.blocks4[0].attn.num_heads == 8  # head dim 64


@pytest.mark.parametrize("encoder, paper_m", [("uniformer_s", 24.83), ("resnet18", 14.33), ("mobilenetv3", 6.69)])
def test_parameter_counts_match_the_paper(encoder, paper_m):
    """As the authors count them: RGB input, one output channel; UniFormer-S with its unused ImageNet classifier."""
    net = EncoderUNet(3, 1, encoder)
    total = n_params(net) + (IMAGENET_HEAD_M if encoder == "uniformer_s" else 0)
    assert total == pytest.approx(paper_m, abs=0.005)


def test_local_weights_load_with_channel_adaptation(tmp_path):
    """An RGB timm checkpoint loads into a grey (1-channel) encoder: stem summed over RGB, classifier ignored."""
    rgb = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": rgb.state_dict()}, path)
    net = EncoderUNet(1, 2, "resnet18")
    n = load_encoder_weights(net.encoder, path)
    assert n == len(net.encoder.state_dict())
    torch.testing.assert_close(net.encoder.model.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(net.encoder.model.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)


def test_local_weights_errors(tmp_path):
    net = EncoderUNet(1, 2, "uniformer_s")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_encoder_weights(net.encoder, tmp_path / "missing.pth")
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no tensor name matches"):
        load_encoder_weights(net.encoder, tmp_path / "other.pth")
    src = uniformer_small(3).state_dict()
    src["blocks1.0.conv1.weight"] = torch.zeros(7, 7, 1, 1)
    torch.save({"model": src}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="blocks1.0.conv1.weight"):
        load_encoder_weights(net.encoder, tmp_path / "bad.pth")


def test_unknown_encoder_is_rejected():
    with pytest.raises(ValueError, match="unknown encoder 'resnet50'"):
        EncoderUNet(1, 2, "resnet50")
