"""Tests of the CIFAR ResNet backbone (``ResNetCifar``)."""
import pytest
import torch
import torch.nn as nn
from mmseg.registry import MODELS

from sar_plugin.classification.resnet_cifar import PadShortcut, ResNetCifar


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_params(depth: int, shortcut: str, base: int = 16,
                    in_channels: int = 3) -> int:
    """Parameter count from the architecture: bias-free convs, 2 per norm
    channel, option B adds a 1x1 conv + norm where the shape changes."""
    n = (depth - 2) // 6
    total = 9 * in_channels * base + 2 * base  # stem conv + BN
    c_in = base
    for c in (base, 2 * base, 4 * base):
        for _ in range(n):
            total += 9 * c_in * c + 9 * c * c + 2 * 2 * c
            if shortcut == 'B' and c_in != c:
                total += c_in * c + 2 * c
            c_in = c
    return total


# Totals of the reference option-A CIFAR-10 models (He et al. 2016 Table 6,
# e.g. akamaster/pytorch_resnet_cifar10) minus their 64 x 10 + 10 classifier.
REFERENCE_A = {20: 269_722 - 650, 32: 464_154 - 650, 44: 658_586 - 650,
               56: 853_018 - 650, 110: 1_727_962 - 650}


@pytest.mark.parametrize('depth', [20, 32, 44, 56, 110])
def test_param_count_matches_formula_and_reference(depth):
    model_a = ResNetCifar(depth=depth, shortcut='A')
    model_b = ResNetCifar(depth=depth, shortcut='B')
    assert n_params(model_a) == expected_params(depth, 'A')
    assert n_params(model_a) == REFERENCE_A[depth]
    assert n_params(model_b) == expected_params(depth, 'B')
    # the two projections (16->32, 32->64) with their BN
    assert n_params(model_b) - n_params(model_a) == 16 * 32 + 64 + 32 * 64 + 128


def test_param_count_paper_figures():
    assert round(n_params(ResNetCifar(depth=32, shortcut='A')) / 1e6,
                 2) == 0.46
    assert round(n_params(ResNetCifar(depth=20, shortcut='A')) / 1e6,
                 2) == 0.27
    a32 = n_params(ResNetCifar(depth=32, shortcut='A'))
    b32 = n_params(ResNetCifar(depth=32, shortcut='B'))
    assert a32 < b32 < 1.01 * a32
    # widening scales the convs quadratically
    assert n_params(ResNetCifar(depth=20, base_channels=32,
                                shortcut='A')) == expected_params(
                                    20, 'A', base=32)
    assert n_params(ResNetCifar(depth=20, in_channels=1,
                                shortcut='A')) == expected_params(
                                    20, 'A', in_channels=1)


@pytest.mark.parametrize('out_indices', [(0, ), (1, ), (2, ), (0, 1),
                                         (0, 2), (1, 2), (0, 1, 2)])
@pytest.mark.parametrize('shortcut', ['A', 'B'])
def test_output_shapes(out_indices, shortcut):
    model = ResNetCifar(depth=20, shortcut=shortcut, out_indices=out_indices)
    outs = model(torch.randn(2, 3, 32, 32))
    assert isinstance(outs, tuple) and len(outs) == len(out_indices)
    shapes = {0: (2, 16, 32, 32), 1: (2, 32, 16, 16), 2: (2, 64, 8, 8)}
    for i, out in zip(out_indices, outs):
        assert out.shape == shapes[i]
    assert model.out_channels == shapes[out_indices[-1]][1]


def test_stride_pattern_and_widening():
    model = ResNetCifar(depth=20, base_channels=32, out_indices=(0, 1, 2))
    assert model.stage_channels == (32, 64, 128)
    assert model.out_channels == 128
    strides = [getattr(model, f'layer{i}')[0].stride for i in (1, 2, 3)]
    assert strides == [1, 2, 2]
    assert all(block.stride == 1 for i in (1, 2, 3)
               for block in getattr(model, f'layer{i}')[1:])
    model.eval()
    for size, expect in [(32, (32, 16, 8)), (33, (33, 17, 9))]:
        outs = model(torch.randn(1, 3, size, size))
        assert tuple(o.shape[-1] for o in outs) == expect
        assert tuple(o.shape[1] for o in outs) == (32, 64, 128)


def test_int_out_indices_and_order():
    assert ResNetCifar(depth=20, out_indices=1).out_indices == (1, )
    model = ResNetCifar(depth=20, out_indices=(2, 0))
    assert model.out_indices == (0, 2) and model.out_channels == 64


def test_num_blocks():
    for depth in (8, 20, 32, 110):
        model = ResNetCifar(depth=depth)
        n = (depth - 2) // 6
        assert [len(getattr(model, f'layer{i}')) for i in (1, 2, 3)] == [n] * 3


def test_build_from_registry():
    model = MODELS.build(dict(type='ResNetCifar', depth=32))
    assert isinstance(model, ResNetCifar)
    assert model.depth == 32 and model.shortcut == 'B'
    assert model.out_indices == (2, ) and model.out_channels == 64
    assert n_params(model) == expected_params(32, 'B')
    out, = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64, 8, 8)


def test_syncbn_and_conv_cfg():
    model = MODELS.build(
        dict(type='ResNetCifar', depth=20, conv_cfg=dict(type='Conv2d'),
             norm_cfg=dict(type='SyncBN', requires_grad=True)))
    norms = [m for m in model.modules() if isinstance(m, nn.SyncBatchNorm)]
    assert len(norms) == 1 + 3 * 3 * 2 + 2  # stem, blocks, projections
    model.eval()  # SyncBN needs a process group only in training
    assert model(torch.randn(1, 3, 32, 32))[0].shape == (1, 64, 8, 8)


def test_option_a_shortcut_is_parameter_free_subsample_and_pad():
    model = ResNetCifar(depth=20, shortcut='A').eval()
    assert not any(
        isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
        for m in model.modules())
    for i, (c_in, c_out) in [(2, (16, 32)), (3, (32, 64))]:
        block = getattr(model, f'layer{i}')[0]
        assert isinstance(block.downsample, PadShortcut)
        assert n_params(block.downsample) == 0
        x = torch.randn(2, c_in, 16, 16)
        expect = torch.zeros(2, c_out, 8, 8)
        pad = (c_out - c_in) // 2
        expect[:, pad:pad + c_in] = x[:, :, ::2, ::2]
        assert torch.equal(block.downsample(x), expect)
        # the whole block: relu(residual + padded identity)
        with torch.no_grad():
            res = block.norm2(block.conv2(block.relu(
                block.norm1(block.conv1(x)))))
            torch.testing.assert_close(block(x), torch.relu(res + expect))
    # blocks that keep the shape use the plain identity
    assert model.layer1[0].downsample is None
    assert model.layer2[1].downsample is None


def test_option_b_shortcut_is_projection():
    model = ResNetCifar(depth=20, shortcut='B')
    down = model.layer2[0].downsample
    assert isinstance(down[0], nn.Conv2d)
    assert down[0].kernel_size == (1, 1) and down[0].stride == (2, 2)
    assert isinstance(down[1], nn.BatchNorm2d)
    assert model.layer1[0].downsample is None


def test_pad_shortcut_odd_difference():
    x = torch.randn(1, 3, 4, 4)
    out = PadShortcut(3, 6, 1)(x)
    assert out.shape == (1, 6, 4, 4)
    assert torch.equal(out[:, 1:4], x)
    assert out[:, [0, 4, 5]].abs().sum() == 0
    with pytest.raises(ValueError, match='out_channels'):
        PadShortcut(8, 4, 2)


def test_default_init():
    model = ResNetCifar(depth=20)
    model.init_weights()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    conv = model.layer3[1].conv1  # 64 -> 64, 3x3: fan_out 576
    std = (2.0 / (64 * 9))**0.5
    assert abs(conv.weight.std().item() - std) / std < 0.05
    assert conv.weight.mean().abs().item() < 0.1 * std


@pytest.mark.parametrize('shortcut', ['A', 'B'])
def test_gradients_reach_every_parameter(shortcut):
    model = ResNetCifar(depth=20, shortcut=shortcut, out_indices=(0, 1, 2))
    model.init_weights()
    model.train()
    outs = model(torch.randn(4, 3, 32, 32))
    # a non-symmetric target so BN's weight/bias gradients are non-zero
    loss = sum((o * torch.randn_like(o)).sum() for o in outs)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_frozen_stages():
    model = ResNetCifar(depth=20, frozen_stages=1, out_indices=(0, 1, 2))
    model.train()
    frozen = [model.conv1, model.norm1, model.layer1]
    for module in frozen:
        for p in module.parameters():
            assert not p.requires_grad
        for m in module.modules():
            assert not m.training
    for module in (model.layer2, model.layer3):
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())
    # running statistics of frozen norms stay put
    before = model.layer1[0].norm1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(model.layer1[0].norm1.running_mean, before)
    # eval() then train() again keeps them frozen
    model.eval().train()
    assert not model.norm1.training and model.layer2[0].norm1.training

    stem_only = ResNetCifar(depth=20, frozen_stages=0).train()
    assert not stem_only.conv1.weight.requires_grad
    assert not stem_only.norm1.training
    assert all(p.requires_grad for p in stem_only.layer1.parameters())

    everything = ResNetCifar(depth=20, frozen_stages=3)
    assert not any(p.requires_grad for p in everything.parameters())

    nothing = ResNetCifar(depth=20, frozen_stages=-1).train()
    assert all(p.requires_grad for p in nothing.parameters())
    assert all(m.training for m in nothing.modules())


def test_norm_eval():
    model = ResNetCifar(depth=20, norm_eval=True)
    model.train()
    assert model.training
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert all(p.requires_grad for p in model.parameters())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.training for m in convs)
    before = model.layer3[0].norm2.running_var.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(model.layer3[0].norm2.running_var, before)


@pytest.mark.parametrize('kwargs, match', [
    (dict(depth=30), r'depth must be 6n\+2.*got 30'),
    (dict(depth=2), r'depth must be 6n\+2.*got 2'),
    (dict(depth=32.0), r'depth must be 6n\+2'),
    (dict(shortcut='C'), r"shortcut must be 'A' or 'B', got 'C'"),
    (dict(shortcut='a'), r'shortcut'),
    (dict(out_indices=(3, )), r'out_indices must be .* 0\.\.2, got \(3,\)'),
    (dict(out_indices=(-1, )), r'out_indices'),
    (dict(out_indices=()), r'out_indices'),
    (dict(out_indices=(1, 1)), r'out_indices'),
    (dict(frozen_stages=4), r'frozen_stages must be in -1\.\.3, got 4'),
    (dict(frozen_stages=-2), r'frozen_stages'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNetCifar(**kwargs)


def test_overfits_tiny_random_set():
    torch.manual_seed(0)
    backbone = ResNetCifar(depth=20)
    backbone.init_weights()
    head = nn.Linear(backbone.out_channels, 4)
    images = torch.randn(16, 3, 32, 32)
    labels = torch.randint(0, 4, (16, ))
    params = list(backbone.parameters()) + list(head.parameters())
    optim = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)

    def logits_of(x):
        feat = backbone(x)[-1]
        return head(feat.mean(dim=(2, 3)))

    backbone.train()
    for step in range(100):
        logits = logits_of(images)
        loss = nn.functional.cross_entropy(logits, labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
        if (logits.argmax(1) == labels).all() and loss.item() < 0.05:
            break
    backbone.eval()
    with torch.no_grad():
        acc = (logits_of(images).argmax(1) == labels).float().mean().item()
    assert acc == 1.0, (step, loss.item())
