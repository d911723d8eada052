"""LongTailEvalHook's features: the classifier's input reaches the predicted
data samples during evaluation, the same for a plain head and SARHead, with
padding and flips undone; nothing is left installed afterwards."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from conftest import REPO_ROOT

from sar_plugin.engine import LongTailEvalHook, find_classifier
from sar_plugin.engine.feature_export import (_crop_and_unflip,
                                              slide_windows, stitch_windows)

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
SUFFIX = 'fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py'


def build(prefix=''):
    cfg = Config.fromfile(osp.join(DEMO, prefix + SUFFIX))
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def batch(n=2, side=64):
    inputs = torch.randn(n, 3, side, side)
    samples = [SegDataSample(metainfo=dict(
        img_shape=(side, side), ori_shape=(side, side),
        batch_input_shape=(side, side), padding_size=[0, 0, 0, 0]))
        for _ in range(n)]
    return inputs, samples


def export(model, inputs, samples, hook=None):
    hook = hook or LongTailEvalHook()
    runner = SimpleNamespace(model=model)
    hook.before_val_epoch(runner)
    try:
        with torch.no_grad():
            out = model(inputs, samples, mode='predict')
    finally:
        hook.after_val_epoch(runner)
    return out, hook


def test_plain_and_sar_heads_export_the_classifier_input():
    plain, sar = build(), build('sar_')
    # same weights: the SAR model's state dict is the plain one plus
    # `anchor_losses.*`, so the plain checkpoint loads as it is
    result = sar.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(
        k.startswith('decode_head.anchor_losses.')
        for k in result.missing_keys)
    inputs, samples = batch()
    with torch.no_grad():
        ref = plain.decode_head._forward_feature(plain.extract_feat(inputs))
    out_plain, _ = export(plain, inputs, samples)
    out_sar, _ = export(sar, inputs, batch()[1])
    assert ref.shape[1] == plain.decode_head.channels
    for i in range(len(samples)):
        assert torch.equal(out_plain[i].seg_features, ref[i])
        assert torch.allclose(out_sar[i].seg_features, ref[i], atol=1e-6)
        # the exported feature does not change the prediction
        assert out_plain[i].pred_sem_seg.data.shape == (1, 64, 64)
    # ...and the hook leaves nothing behind
    with torch.no_grad():
        again = plain(inputs, batch()[1], mode='predict')
    assert 'seg_features' not in again[0]
    assert not plain._forward_hooks and not plain._forward_pre_hooks
    assert not plain.decode_head.conv_seg._forward_pre_hooks


def test_padding_and_flip_are_undone_like_the_logits():
    feat = torch.arange(2 * 8 * 8, dtype=torch.float).reshape(2, 8, 8)
    meta = dict(batch_input_shape=(64, 64), padding_size=[0, 16, 8, 0])
    out = _crop_and_unflip(feat, meta)  # 1/8 scale: 2 columns, 1 row
    assert torch.equal(out, feat[:, 1:, :6])
    flipped = _crop_and_unflip(feat, dict(meta, flip=True,
                                          flip_direction='horizontal'))
    assert torch.equal(flipped, feat[:, 1:, :6].flip(-1))
    vertical = _crop_and_unflip(feat, dict(flip=True,
                                           flip_direction='vertical'))
    assert torch.equal(vertical, feat.flip(1))
    assert torch.equal(_crop_and_unflip(feat, {}), feat)


def window_reference(model, inputs, crop, stride):
    """Slow and plain: run every window through the model by hand, put its
    feature where the window lies (1/8 scale, exact positions) and average
    where windows overlap."""
    size = inputs.shape[-1]
    starts = list(range(0, size - crop + 1, stride))
    canvas, count = None, torch.zeros(size // 8, size // 8)
    with torch.no_grad():
        for y in starts:
            for x in starts:
                crop_in = inputs[..., y:y + crop, x:x + crop]
                feat = model.decode_head._forward_feature(
                    model.extract_feat(crop_in))
                if canvas is None:
                    canvas = torch.zeros(feat.shape[:2] + count.shape)
                canvas[..., y // 8:(y + crop) // 8,
                       x // 8:(x + crop) // 8] += feat
                count[y // 8:(y + crop) // 8, x // 8:(x + crop) // 8] += 1
    return canvas / count


@pytest.mark.parametrize('prefix', ['', 'sar_'])
def test_sliding_window_features_are_stitched_like_the_logits(prefix):
    model = build(prefix)
    model.test_cfg = ConfigDict(mode='slide', crop_size=(32, 32),
                                stride=(16, 16))
    inputs, samples = batch()
    out, hook = export(model, inputs, samples)
    ref = window_reference(model, inputs, 32, 16)
    assert not hook.features._warned
    for i in range(len(samples)):
        assert out[i].seg_features.shape == (ref.shape[1], 8, 8)
        assert torch.allclose(out[i].seg_features, ref[i], atol=1e-5)
    # the exported feature does not change the prediction
    model.test_cfg = ConfigDict(mode='slide', crop_size=(32, 32),
                                stride=(16, 16))
    with torch.no_grad():
        plain = model(inputs, batch()[1], mode='predict')
    for a, b in zip(out, plain):
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)


def test_slide_windows_follow_mmseg_and_stitching_rounds_positions():
    # MMSeg's grid: the last window is moved back inside the image
    assert slide_windows((64, 80), (32, 32), (20, 20)) == [
        (y1, y1 + 32, x1, x1 + 32) for y1 in (0, 20, 32)
        for x1 in (0, 20, 40, 48)]
    assert slide_windows((16, 16), (32, 32), (20, 20)) == [(0, 16, 0, 16)]
    windows = slide_windows((64, 64), (32, 32), (20, 20))
    feats = [torch.full((1, 2, 4, 4), float(k)) for k in range(9)]
    out = stitch_windows(feats, windows, (64, 64))
    assert out.shape == (1, 2, 8, 8)
    # rows 0-1 only see the first row of windows (k = 0, 1, 2 at columns
    # 0-3, 2-5 (round(2.5) = 2), 4-7)
    assert torch.equal(out[0, 0, 0], torch.tensor(
        [0., 0., .5, .5, 1.5, 1.5, 2., 2.]))
    # a stride larger than the crop leaves gaps: nothing is made up
    gaps = slide_windows((64, 64), (16, 16), (32, 32))
    assert stitch_windows([torch.ones(1, 2, 2, 2)] * len(gaps), gaps,
                          (64, 64)) is None


def test_other_repeated_classifier_calls_are_skipped_with_a_warning():
    model = build()  # whole-image inference, yet two classifier calls
    hook = LongTailEvalHook()
    records = [torch.zeros(2, 4, 8, 8)] * 2
    assert hook.features._features(model, records, 2) is None and \
        hook.features._warned


def test_find_classifier_paths():
    sar = build('sar_')
    # the SAR head is the head itself: its own conv_seg, no `.head`
    assert find_classifier(sar) is sar.decode_head.conv_seg
    assert find_classifier(sar, 'decode_head.conv_seg') is \
        sar.decode_head.conv_seg
    with pytest.raises(AttributeError, match="failed at 'head'"):
        find_classifier(sar, 'decode_head.head.conv_seg')
    with pytest.raises(AttributeError, match="failed at 'nope'"):
        find_classifier(sar, 'decode_head.nope.conv_seg')

    cascade = nn.Module()
    cascade.decode_head = nn.ModuleList([nn.Module(), nn.Module()])
    cascade.decode_head[1].conv_seg = nn.Conv2d(4, 3, 1)
    assert find_classifier(cascade) is cascade.decode_head[1].conv_seg
    assert find_classifier(cascade, 'decode_head.1.conv_seg') is \
        cascade.decode_head[1].conv_seg

    classifier = nn.Module()
    classifier.head = nn.Module()
    classifier.head.fc = nn.Linear(4, 3)
    assert find_classifier(classifier) is classifier.head.fc
    with pytest.raises(AttributeError, match='set `classifier`'):
        find_classifier(nn.Linear(2, 2))


def test_classification_vectors_are_attached_per_sample():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Module()
            self.head.fc = nn.Linear(4, 3)

        def forward(self, x, samples, mode='predict'):
            logits = self.head.fc(x)
            for s, l in zip(samples, logits):
                s.set_field(l, 'pred_score')
            return samples

    from mmengine.structures import BaseDataElement
    model = Tiny()
    x = torch.randn(3, 4)
    samples = [BaseDataElement() for _ in range(3)]
    hook = LongTailEvalHook(field='anchor_feat')
    runner = SimpleNamespace(model=model)
    hook.before_test_epoch(runner)
    model(x, samples)
    hook.after_test_epoch(runner)
    for s, row in zip(samples, x):
        assert torch.equal(s.anchor_feat, row)
