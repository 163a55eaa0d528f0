"""Super-image layout and video wrapper: exact tiling, clips at the sampling period, neighbouring frames treated
alike (equal frames give equal outputs, outputs shift with the video), planning with nnU-Net's planner."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from unilvseg_nnunet.inference.precision import ENV
from unilvseg_nnunet.inference.window import VideoWindowNet
from unilvseg_nnunet.planning.superimage import configuration_name, inference_window, superimage_configuration
from unilvseg_nnunet.training.superimage import SuperImageNet, clip_indices, grid_side, tile, untile


@pytest.fixture(autouse=True)
def float32_inference(monkeypatch):
    """Outputs here are compared with float32 references; bfloat16 inference is tested in test_networks.py."""
    monkeypatch.setenv(ENV, "0")


def tiny_unet_kwargs(n_stages: int = 3) -> dict:
    """A small planned-style PlainConvUNet (as nnU-Net's planner writes it, classes located)."""
    return dict(net_class="dynamic_network_architectures.architectures.unet.PlainConvUNet", n_stages=n_stages,
                features_per_stage=[4 * 2 ** i for i in range(n_stages)], conv_op=nn.Conv2d,
                kernel_sizes=[[3, 3]] * n_stages, strides=[[1, 1]] + [[2, 2]] * (n_stages - 1),
                n_conv_per_stage=[1] * n_stages, n_conv_per_stage_decoder=[1] * (n_stages - 1), conv_bias=True,
                norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None,
                dropout_op_kwargs=None, nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})


@pytest.mark.parametrize("frames", [1, 4, 9, 16])
def test_tile_untile_are_exact_inverses(frames):
    x = torch.randn(2, 3, frames, 5, 7)
    image = tile(x)
    g = grid_side(frames)
    assert image.shape == (2, 3, g * 5, g * 7)
    assert torch.equal(untile(image, frames), x)
    y = torch.randn(2, 3, g * 5, g * 7)
    assert torch.equal(tile(untile(y, frames)), y)


def test_tile_layout_is_row_major_grid():
    x = torch.arange(4, dtype=torch.float32).reshape(1, 1, 4, 1, 1).expand(1, 1, 4, 2, 3)
    image = tile(x)[0, 0]
    assert image[:2, :3].unique().tolist() == [0] and image[:2, 3:].unique().tolist() == [1]
    assert image[2:, :3].unique().tolist() == [2] and image[2:, 3:].unique().tolist() == [3]


def test_non_square_frame_counts_are_rejected():
    with pytest.raises(ValueError, match="square number of frames"):
        tile(torch.zeros(1, 1, 8, 4, 4))
    with pytest.raises(ValueError, match="square number of frames"):
        SuperImageNet(1, 2, frames=8, **tiny_unet_kwargs())


def test_window_clips_at_the_period():
    """One clip per start frame; a window of F*T frames holds the T interleaved sub-clips, each frame once."""
    assert clip_indices(12, frames=4, period=3).tolist() == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    index = clip_indices(16, frames=4, period=2)
    assert index.shape == (10, 4) and index[-1].tolist() == [9, 11, 13, 15]
    assert torch.bincount(index.flatten()).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 3, 3, 2, 2, 1, 1]


def test_window_output_is_the_mean_over_the_clips_holding_each_frame():
    """Against a direct computation, with the clips split over several passes and two videos in the batch."""
    frames, period, window = 4, 2, 16
    net = _net(frames, period)
    net.clips_per_pass = 6
    x = torch.randn(2, 1, window, 8, 8)
    index = clip_indices(window, frames, period)
    with torch.no_grad():
        out = net(x)
        clips = [net(x[:, :, rows]) for rows in index]  # one clip of F frames each
    expected = torch.stack([torch.stack([clips[u][:, :, k] for u, k in (index == t).nonzero().tolist()]).mean(0)
                            for t in range(window)], 2)
    torch.testing.assert_close(out, expected)


def _net(frames=4, period=2, **kw):
    torch.manual_seed(0)
    return SuperImageNet(1, 2, frames=frames, period=period, **(kw or tiny_unet_kwargs())).eval()


def test_output_frame_depends_only_on_its_own_subclip():
    """Gradient of output frame i w.r.t. the input is zero outside i's sub-clip (frames i mod T)."""
    frames, period = 4, 3
    net = _net(frames, period)
    x = torch.randn(2, 1, frames * period, 12, 12, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 2, frames * period, 12, 12)
    for i in range(frames * period):
        (grad,) = torch.autograd.grad(out[1, :, i].sum(), x, retain_graph=True)
        touched = grad[1, 0].abs().flatten(1).sum(1) > 0
        assert touched.nonzero().flatten().tolist() == list(range(i % period, frames * period, period))
        assert grad[0].abs().sum() == 0  # other batch items untouched


def test_perturbing_one_frame_changes_only_its_subclip():
    frames, period = 4, 2
    net = _net(frames, period)
    x = torch.randn(1, 1, frames * period, 9, 9)  # 18 px super images, zero-padded to the total stride (4)
    with torch.no_grad():
        y0 = net(x)
        x[:, :, 5] += 3.0
        y1 = net(x)
    changed = (y1 - y0).abs().flatten(3).amax(3)[0].amax(0) > 0
    assert changed.nonzero().flatten().tolist() == [1, 3, 5, 7]


def test_f_frames_run_a_single_super_image_and_match_the_window():
    """A training clip of F frames runs one super image; in a window of F*T frames, sub-clip s gives the same output."""
    frames, period = 4, 2
    net = _net(frames, period)
    batches = []
    net.net.register_forward_hook(lambda m, inp, out: batches.append(inp[0].shape[0]))
    x = torch.randn(3, 1, frames * period, 8, 8)
    with torch.no_grad():
        window = net(x)
        clip = net(x[:, :, 1::period])
    assert batches == [3 * period, 3]
    torch.testing.assert_close(clip, window[:, :, 1::period])


def test_neighbouring_frames_are_predicted_alike():
    """In a window of 2*F*T frames, every frame of the centre is predicted at every grid position: a video of
    equal frames gives equal outputs there, and shifting the video by one frame shifts the outputs."""
    frames, period, window = 4, 2, 16
    net = _net(frames, period)
    full = [t for t in range(window) if torch.bincount(clip_indices(window, frames, period).flatten())[t] == frames]
    assert full == [6, 7, 8, 9]
    with torch.no_grad():
        same = net(torch.randn(1, 1, 1, 8, 8).expand(1, 1, window, 8, 8))
        torch.testing.assert_close(same[:, :, full], same[:, :, full[:1]].expand(-1, -1, len(full), -1, -1))
        assert (same[:, :, 0] - same[:, :, 6]).abs().max() > 1e-4  # not a constant network: grid positions differ
        video = torch.randn(1, 1, window + 1, 8, 8)
        now, later = net(video[:, :, :window]), net(video[:, :, 1:])
    torch.testing.assert_close(later[:, :, full[0]:full[-1]], now[:, :, full[1]:full[-1] + 1])


def test_whole_video_windows_give_the_whole_video_output():
    """In the planned windows (the margin drops the frames fewer clips hold) a long video's output is, frame for
    frame, that of one pass over the whole video: no seam where windows meet; a video shorter than one clip at
    stride T (3 frames) is segmented as if zero frames followed it."""
    frames, period = 4, 2
    net = _net(frames, period)
    window = {**inference_window(frames, period), "max_frames": 90}
    assert window["margin"] == 6 and window["norm_frames"] == 0
    video = VideoWindowNet(net, **window).eval()
    x = torch.randn(1, 1, 200, 8, 8)
    assert len(video.windows(200)) == 3
    with torch.no_grad():
        torch.testing.assert_close(video(x), net(x))
        short = torch.randn(1, 1, 3, 8, 8)
        padded = torch.cat([short, torch.zeros(1, 1, 5, 8, 8)], 2)
        torch.testing.assert_close(video(short), net(padded)[:, :, :3])


def test_standardised_tiles_read_a_dim_frame_like_the_others():
    """A near-blank frame (gain 0.05) in a clip: with each tile standardised (``frame_norm``, what planning writes)
    the super image segments it as at full gain, and the other frames as before; without, its tile stays dark
    inside the 2D network's instance norms, which see the whole super image."""
    torch.manual_seed(0)
    clip = torch.randn(1, 1, 4, 8, 8) + 2.0
    dim = clip.clone()
    dim[:, :, 2] *= 0.05
    for frame_norm in (True, False):
        net = SuperImageNet(1, 2, frames=4, frame_norm=frame_norm, **tiny_unet_kwargs()).eval()
        with torch.no_grad():
            change = (net(dim) - net(clip)).abs().amax((0, 1, 3, 4))
        if frame_norm:
            assert change.max() < 2e-3, change
        else:
            assert change[2] > 0.05, change


def test_bad_inputs_and_deep_supervision_get_clear_errors():
    net = _net(4, 2)
    with pytest.raises(ValueError, match=r"D = 4 \(one clip\) or another number"):
        net(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="no deep supervision"):
        SuperImageNet(1, 2, frames=4, deep_supervision=True, **tiny_unet_kwargs())
    net.decoder.deep_supervision = True  # what nnU-Net's set_deep_supervision_enabled(True) does
    with pytest.raises(RuntimeError, match="enable_deep_supervision = False"):
        net(torch.zeros(1, 1, 4, 8, 8))


def test_reconstruction_head_and_seg_layers_naming():
    """num_classes = input channels works (temporal masking); heads sit under '.seg_layers.' only."""
    net = SuperImageNet(3, 3, frames=4, **tiny_unet_kwargs())
    assert isinstance(net.net, PlainConvUNet)
    assert net(torch.zeros(1, 3, 4, 8, 8)).shape == (1, 3, 4, 8, 8)
    heads = [k for k in net.state_dict() if ".seg_layers." in k]
    assert heads and all(k.startswith("net.decoder.seg_layers.") for k in heads)


def test_configuration_names():
    assert configuration_name(16, 5) == "si_f16t5"
    assert configuration_name(16, 5, "resnet18") == "si_f16t5_resnet18"


@pytest.mark.nnunet
def test_planning_uses_nnunet_2d_planner_on_super_image_size(preprocessed_dataset, nnunet_env, monkeypatch):
    """F=16: the inner U-Net is what nnU-Net plans for a 448x448 2D dataset; the config reuses 3d_fullres data."""
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(k, nnunet_env[k])  # nnU-Net reads its paths lazily
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.json_export import recursive_fix_for_json_export
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    plans = json.loads((preprocessed_dataset / "nnUNetPlans.json").read_text())
    fingerprint = json.loads((preprocessed_dataset / "dataset_fingerprint.json").read_text())
    name, cfg = superimage_configuration(plans, fingerprint, frames=16, period=5)
    assert name == "si_f16t5" and cfg["inherits_from"] == "3d_fullres"
    frame = plans["configurations"]["3d_fullres"]["patch_size"][1:]
    assert cfg["patch_size"] == [1024, *frame]  # nnUNetv2_predict hands whole videos to the network
    settings = {k: cfg["unilvseg"][k] for k in ("frames", "period", "layout")}
    assert settings == {"frames": 16, "period": 5, "layout": "superimage"}
    assert cfg["unilvseg"]["inference"] == inference_window(16, 5) == \
        {"max_frames": 498, "overlap": 166, "margin": 75, "norm_frames": 0}  # margin: the 75 frames fewer clips hold
    si = [4 * s for s in frame]
    assert cfg["unilvseg"]["super_image_size"] == si

    planner = ExperimentPlanner(plans["dataset_name"])
    base = plans["configurations"]["3d_fullres"]
    n_vox = float(np.prod(base["median_image_size_in_voxels"], dtype=np.float64) * planner.dataset_json["numTraining"])
    expected = planner.get_plans_for_configuration(base["spacing"][1:], si, "x", n_vox, {})
    recursive_fix_for_json_export(expected)
    arch = cfg["architecture"]["arch_kwargs"]
    for key in ("n_stages", "features_per_stage", "strides", "kernel_sizes", "n_conv_per_stage"):
        assert arch[key] == expected["architecture"]["arch_kwargs"][key], key
    assert cfg["batch_size"] == expected["batch_size"]
    assert arch["net_class"] == expected["architecture"]["network_class_name"]

    plans["configurations"][name] = cfg
    json.dumps(plans)  # JSON-serialisable as stored
    manager = PlansManager(plans)
    net = nnUNetTrainer.build_network_architecture(manager, manager.get_configuration(name), 1, 2, False)
    assert isinstance(net, SuperImageNet) and isinstance(net.net, PlainConvUNet)
    assert net.frames == 16 and net.period == 5 and net.frame_norm  # configurations planned before lack the key
