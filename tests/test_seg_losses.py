"""The class-weighted segmentation cross-entropy (registered over MMSeg's):
equal to PyTorch's weighted mean, with ignored pixels, on every path."""
import pytest
import torch
import torch.nn.functional as F
from mmseg.models.losses import CrossEntropyLoss as MMSegCrossEntropyLoss
from mmseg.registry import MODELS

WEIGHTS = [0.5, 2.0, 1.0, 4.0]


def _batch(ignored: bool):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=gen, dtype=torch.float64)
    label = torch.randint(0, 4, (2, 5, 6), generator=gen)
    if ignored:
        label[0, :2] = 255
    return logits, label


def _loop_reference(logits, label, weights, ignore_index=255):
    """sum_x w_y(x) * nll(x) / sum_x w_y(x) over the non-ignored pixels."""
    num = den = 0.0
    logp = logits.log_softmax(dim=1)
    n, _, h, w = logits.shape
    for b in range(n):
        for i in range(h):
            for j in range(w):
                y = int(label[b, i, j])
                if y == ignore_index:
                    continue
                num += -weights[y] * float(logp[b, y, i, j])
                den += weights[y]
    return num / den


@pytest.mark.parametrize('ignored', [False, True])
@pytest.mark.parametrize('loss_weight', [1.0, 0.4])
def test_class_weighted_mean_with_ignored_pixels(ignored, loss_weight):
    loss = MODELS.build(dict(type='sar_plugin.CrossEntropyLoss',
                             class_weight=WEIGHTS,
                             loss_weight=loss_weight))
    assert isinstance(loss, MMSegCrossEntropyLoss)
    logits, label = _batch(ignored)
    logits.requires_grad_()
    value = loss(logits, label, ignore_index=255)
    expected = _loop_reference(logits.detach(), label, WEIGHTS)
    # MMSeg divides by avg_factor + float32 eps (1.2e-7): a 1e-9 difference
    assert value.item() == pytest.approx(loss_weight * expected, rel=1e-7)
    ref = F.cross_entropy(logits, label, weight=torch.tensor(
        WEIGHTS, dtype=torch.float64), ignore_index=255)
    g1, = torch.autograd.grad(value, logits)
    g2, = torch.autograd.grad(loss_weight * ref, logits)
    assert torch.allclose(g1, g2, rtol=1e-7, atol=1e-12)
    if ignored:  # MMSeg's own loss cannot take this batch
        with pytest.raises(IndexError):
            MMSegCrossEntropyLoss(class_weight=WEIGHTS)(
                logits, label, ignore_index=255)


def test_unweighted_and_other_paths_are_mmseg_unchanged():
    logits, label = _batch(ignored=True)
    for cfg in (dict(), dict(avg_non_ignore=True),
                dict(class_weight=WEIGHTS, reduction='sum')):
        ours = MODELS.build(dict(type='sar_plugin.CrossEntropyLoss', **cfg))
        stock = MMSegCrossEntropyLoss(**cfg)
        assert torch.equal(ours(logits, label, ignore_index=255),
                           stock(logits, label, ignore_index=255)), cfg
    # no ignored pixel: MMSeg's own class-weighted mean works and agrees
    logits, label = _batch(ignored=False)
    ours = MODELS.build(dict(type='sar_plugin.CrossEntropyLoss',
                             class_weight=WEIGHTS))
    stock = MMSegCrossEntropyLoss(class_weight=WEIGHTS)
    assert ours(logits, label, ignore_index=255).item() == pytest.approx(
        stock(logits, label, ignore_index=255).item(), rel=1e-12)
