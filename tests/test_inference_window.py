"""Whole-video inference along time (unilvseg_nnunet.inference.window) and the streamed preprocessing of
unilvseg_nnunet.inference.predictor: a video's prediction does not depend on its length relative to the
window, on nnU-Net's padding, or on where windows meet."""
import numpy as np
import pytest
import torch
from torch import nn

from unilvseg_nnunet.inference.clip_norm import ClipInstanceNorm3d, use_clip_norm
from unilvseg_nnunet.inference.gaussian import separable_gaussian
from unilvseg_nnunet.inference.precision import ENV
from unilvseg_nnunet.inference.predictor import nonzero_box, zscore_stats
from unilvseg_nnunet.inference.window import (
    VideoWindowNet,
    content_range,
    iter_blended,
    mirror_index,
    plan_windows,
    video_window_net,
    window_weights,
)

WINDOW = {"max_frames": 64, "overlap": 20, "margin": 5}
LENGTHS = [1, 5, 63, 64, 65, 128, 200, 517]  # shorter than, equal to, just over and many times the window


@pytest.fixture(autouse=True)
def float32_inference(monkeypatch):
    """Outputs here are compared with float32 references; bfloat16 inference is tested in test_networks.py."""
    monkeypatch.setenv(ENV, "0")


class _Decoder:
    deep_supervision = False


class ConvVideoNet(nn.Module):
    """Fully convolutional along time, receptive field +-``rf`` frames (<= the margin), instance norm optional."""

    def __init__(self, rf: int = 4, norm: bool = False):
        super().__init__()
        layers = []
        for i in range(rf):
            layers += [nn.Conv3d(1 if i == 0 else 3, 3, 3, padding=1)]
            layers += [nn.InstanceNorm3d(3, affine=True)] if norm and i == 0 else []
            layers += [nn.LeakyReLU()]
        self.body, self.head, self.decoder = nn.Sequential(*layers), nn.Conv3d(3, 2, 1), _Decoder()

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return ConvVideoNet().eval()


@pytest.mark.parametrize("max_frames,overlap", [(64, 20), (128, 32), (33, 11)])
def test_windows_cover_every_frame_with_bounded_cost(max_frames, overlap):
    for n in range(1, 700, 3):
        windows = plan_windows(n, max_frames, overlap)
        assert windows[0][0] == 0 and windows[-1][1] == n
        assert len({b - a for a, b in windows}) == 1 and all(b - a <= max_frames for a, b in windows)
        if n <= max_frames:
            assert windows == [(0, n)]
        for (a0, a1), (b0, b1), nxt in zip(windows, windows[1:], windows[2:] + [(n, n)]):
            assert a1 - b0 >= overlap and nxt[0] >= a1  # neighbours overlap enough, never three windows at once
        assert sum(b - a for a, b in windows) <= n * max_frames / (max_frames - overlap) + max_frames


def test_weights_split_every_frame_and_drop_window_edges():
    windows = plan_windows(300, 64, 20)
    weights = window_weights(windows, 5)
    total = torch.zeros(300)
    for (a, b), w in zip(windows, weights):
        total[a:b] += w
        assert torch.all(w >= 0) and torch.all(w <= 1)
    assert torch.allclose(total, torch.ones(300))
    for i, ((a0, a1), (b0, b1)) in enumerate(zip(windows, windows[1:])):
        assert torch.all(weights[i][-5:] == 0) and torch.all(weights[i + 1][:5] == 0)  # edge frames never count
    with pytest.raises(ValueError, match="more than twice the margin"):
        window_weights(plan_windows(300, 64, 10), 5)
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(300, 64, 22)


@pytest.mark.parametrize("n", LENGTHS)
def test_windowed_prediction_equals_whole_clip_whatever_the_length(net, n):
    x = torch.randn(1, 1, n, 8, 8)
    wrapped = VideoWindowNet(net, **WINDOW).eval()
    with torch.no_grad():
        whole = net(x)
        assert torch.allclose(wrapped(x), whole, atol=1e-5)
        # nnU-Net pads a video to its tile with zeros (centred): the padding changes nothing, costs no network pass
        tile = 1024
        below = (tile - n) // 2
        padded = wrapped(torch.nn.functional.pad(x, (0, 0, 0, 0, below, tile - n - below)))
        assert torch.allclose(padded[:, :, below:below + n], whole, atol=1e-5)
        assert torch.all(padded[:, :, :below] == 0) and torch.all(padded[:, :, below + n:] == 0)


def test_no_seam_in_constant_and_periodic_videos():
    torch.manual_seed(1)
    normed = ConvVideoNet(norm=True).eval()  # instance norm: statistics per window, the seam's usual source
    wrapped = VideoWindowNet(normed, **WINDOW).eval()
    with torch.no_grad():
        for n in (30, 64, 65, 300):
            y = wrapped(torch.full((1, 1, n, 16, 16), 0.7))
            interior = y[:, :, 4:n - 4]  # frames at the video's own ends see its edge
            assert torch.allclose(interior, interior[:, :, :1].expand_as(interior), atol=1e-5), n
        t = torch.arange(400, dtype=torch.float32)
        frames = torch.sin(2 * torch.pi * t / 25)[:, None, None] * torch.linspace(-1, 1, 16)[None, :, None]
        y = VideoWindowNet(ConvVideoNet().eval(), **WINDOW).eval()(frames.expand(400, 16, 16)[None, None].contiguous())
        assert torch.allclose(y[:, :, 4:-29], y[:, :, 29:-4], atol=1e-5)  # period 25, seams every 44 frames


def test_training_and_deep_supervision_use_the_network_itself(net):
    wrapped = video_window_net(net, {"frames": 8, "inference": WINDOW})
    assert isinstance(wrapped, VideoWindowNet) and video_window_net(net, {"frames": 8}) is net
    assert all(k.startswith("net.") for k in wrapped.state_dict())
    x = torch.zeros(1, 1, 100, 8, 8)
    x[:, :, 10:90] = torch.randn(1, 1, 80, 8, 8)
    calls = []
    handle = net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[2]))
    wrapped.train()
    wrapped(x)
    wrapped.eval()
    net.decoder.deep_supervision = True
    wrapped(x)
    net.decoder.deep_supervision = False
    wrapped(x)
    handle.remove()
    # whole input twice; then the 80 frames of content, with 4 mirrored at either end, in two windows
    assert calls == [100, 100, 54, 54]


def test_mirror_index():
    assert mirror_index(5, 2).tolist() == [2, 1, 0, 1, 2, 3, 4, 3, 2]
    assert mirror_index(3, 9).tolist() == [2, 1, 0, 1, 2, 1, 0]  # at most n - 1 frames a side
    assert mirror_index(1, 4).tolist() == [0] and mirror_index(6, 0).tolist() == list(range(6))


@pytest.mark.parametrize("n", LENGTHS)
def test_mirrored_ends_are_the_network_on_the_mirrored_video(net, n):
    """A video's first and last frames are segmented as the network segments them inside the video mirrored at
    its ends (with zero padding beside them instead, the 3D model's area curve bent there), whatever its length
    relative to the window and inside nnU-Net's zero-padded tile; ``video_window_net`` mirrors half a training
    clip (at most the window's margin) for a temporal network, nothing for a super image."""
    x = torch.randn(1, 1, n, 8, 8)
    wrapped = VideoWindowNet(net, **WINDOW, mirror=4).eval()
    index = mirror_index(n, 4)
    m = (len(index) - n) // 2
    with torch.no_grad():
        reference = net(x[:, :, index])[:, :, m:m + n]
        assert torch.allclose(wrapped(x), reference, atol=1e-5)
        padded = wrapped(torch.nn.functional.pad(x, (0, 0, 0, 0, 7, 1024 - n - 7)))
        assert torch.allclose(padded[:, :, 7:7 + n], reference, atol=1e-5) and torch.all(padded[:, :, :7] == 0)
        if n > 1:  # the ends differ from the zero-padded network's
            assert not torch.allclose(reference[:, :, :1], net(x)[:, :, :1], atol=1e-3)
    assert video_window_net(net, {"frames": 8, "inference": WINDOW}).mirror == 4
    assert video_window_net(net, {"frames": 32, "inference": WINDOW}).mirror == WINDOW["margin"]  # at most the margin
    assert video_window_net(net, {"frames": 4, "layout": "superimage", "inference": WINDOW}).mirror == 0


def test_content_range_and_blending_order():
    x = torch.zeros(1, 2, 10, 4, 4)
    assert content_range(x) == (0, 10)
    x[:, 1, 3, 0, 0] = 1.0
    x[:, 0, 6] = -2.0
    assert content_range(x) == (3, 7)
    chunks = iter_blended(plan_windows(200, 64, 20), 5, lambda a, b: torch.zeros(1, 2, b - a, 1, 1))
    seen = [(a, b) for a, b, _ in chunks]
    assert seen[0][0] == 0 and seen[-1][1] == 200 and all(p[1] == q[0] for p, q in zip(seen, seen[1:]))


def test_streamed_preprocessing_matches_nnunet():
    from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import ZScoreNormalization

    rng = np.random.default_rng(0)
    video = np.zeros((2, 150, 40, 50), np.uint8)
    video[:, 3:140, 2:37, 5:50] = rng.integers(0, 255, (2, 137, 35, 45), dtype=np.uint8)
    video[0, 3:140, 2:37, 5:50][video[0, 3:140, 2:37, 5:50] < 40] = 0  # holes inside the box
    data, _, bbox = crop_to_nonzero(video.astype(np.float32))
    assert nonzero_box(video) == tuple(slice(a, b) for a, b in bbox)
    mean, std = zscore_stats(video[(slice(None), *nonzero_box(video))])
    for c in range(2):
        ref = ZScoreNormalization(use_mask_for_norm=False, intensityproperties={}).run(data[c].copy())
        ours = (data[c] - mean[c]) / std[c]
        assert np.abs(ours - ref).max() < 1e-5
    assert nonzero_box(np.zeros((1, 5, 4, 4), np.uint8)) is None


@pytest.mark.parametrize("tile", [(7, 9, 11), (64, 48, 40), (8, 112, 112), (224, 224)])
def test_separable_gaussian_is_nnunets(tile):
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    cpu = torch.device("cpu")
    assert torch.equal(separable_gaussian(tile, 1. / 8, 10, device=cpu), compute_gaussian(tile, 1. / 8, 10, device=cpu))


def test_whole_video_networks_give_nnunet_the_separable_gaussian(net, monkeypatch):
    from nnunetv2.inference import predict_from_raw_data
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    monkeypatch.setattr(predict_from_raw_data, "compute_gaussian", compute_gaussian)  # restored afterwards
    video_window_net(net, {"frames": 8})
    assert predict_from_raw_data.compute_gaussian is compute_gaussian  # a stock or old plan changes nothing
    video_window_net(net, {"frames": 8, "inference": WINDOW})
    assert predict_from_raw_data.compute_gaussian is separable_gaussian


def _clip_reference(x, frames, norm):
    """Frame by frame: nnU-Net's InstanceNorm3d over the training clip centred on the frame (inside the video)."""
    out = torch.empty_like(x)
    for t in range(x.shape[2]):
        s = min(max(t - frames // 2, 0), max(x.shape[2] - frames, 0))
        out[:, :, t] = norm(x[:, :, s:s + frames])[:, :, t - s]
    return out


@pytest.mark.parametrize("n", [3, 8, 9, 30, 101])
def test_clip_norm_gives_each_frame_the_statistics_of_its_training_clip(n):
    torch.manual_seed(2)
    stock = nn.InstanceNorm3d(4, affine=True).eval()
    with torch.no_grad():
        stock.weight.normal_()
        stock.bias.normal_()
    x = torch.randn(2, 4, n, 6, 5) * torch.linspace(0.5, 3, n)[:, None, None] + torch.linspace(-2, 2, n)[:, None, None]
    holder = nn.Sequential(stock)
    use_clip_norm(holder, 8)
    clip = holder[0]
    assert isinstance(clip, ClipInstanceNorm3d) and clip.weight is stock.weight and clip.bias is stock.bias
    with torch.no_grad():
        assert torch.allclose(clip(x), _clip_reference(x, 8, stock), atol=1e-4)
        clip.train()
        assert torch.equal(clip(x), stock(x))  # training normalises the clip it is given, as nnU-Net does
        clip.eval()
        use_clip_norm(holder, 0)  # 0 frames: whole-input statistics, as before
        assert clip.frames == 0 and torch.equal(clip(x), stock(x))
    if n > 8:  # the whole-input statistics (today's whole-video pass) differ
        assert not torch.allclose(stock.eval()(x), _clip_reference(x, 8, stock), atol=1e-2)


def test_clip_norm_keeps_checkpoints_and_has_no_seam():
    torch.manual_seed(3)
    plain = ConvVideoNet(norm=True).eval()
    state = plain.state_dict()
    window = {**WINDOW, "margin": 8}  # the receptive field of a frame's clip statistics: +-4 frames, then 3 convolutions
    wrapped = VideoWindowNet(ConvVideoNet(norm=True), **window, norm_frames=8).eval()
    wrapped.net.load_state_dict(state)  # checkpoints of networks built before load unchanged
    assert set(wrapped.net.state_dict()) == set(state)
    assert any(isinstance(m, ClipInstanceNorm3d) for m in wrapped.modules())
    with torch.no_grad():
        for n in (30, 64, 65, 300):  # a constant video gives constant masks across every window boundary
            y = wrapped(torch.full((1, 1, n, 16, 16), 0.7))
            interior = y[:, :, 12:n - 12]  # the video's ends reach 4 + 4 + 3 frames in (convolution, clip, convolutions)
            assert torch.allclose(interior, interior[:, :, :1].expand_as(interior), atol=1e-5), n
        # a long video's frames are normalised as in a training clip wherever its window lies: windows and one
        # pass agree beyond the cross-fades' reach
        x = torch.randn(1, 1, 300, 8, 8) + torch.sin(torch.arange(300) / 4.0)[:, None, None]
        one_pass = VideoWindowNet(wrapped.net, 300, window["overlap"], window["margin"]).eval()(x)
        assert torch.allclose(wrapped(x), one_pass, atol=1e-4)
    def norm_frames(settings):
        net = video_window_net(ConvVideoNet(norm=True), settings)
        return [m.frames if isinstance(m, ClipInstanceNorm3d) else 0 for m in net.modules() if isinstance(m, nn.InstanceNorm3d)]

    assert norm_frames({"frames": 8, "inference": WINDOW}) == [8]  # plans without the key: the clip length
    assert norm_frames({"frames": 8, "inference": {**WINDOW, "norm_frames": 0}}) == [0]
    with pytest.raises(ValueError, match="norm_frames"):
        VideoWindowNet(ConvVideoNet(), **WINDOW, norm_frames=-1)
