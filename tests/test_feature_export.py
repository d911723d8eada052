"""FeatureExportHook: the classifier's input reaches the predicted data
samples during evaluation, the same for a plain head and SARHead, with
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

from sar_plugin.engine import FeatureExportHook, find_classifier
from sar_plugin.engine.feature_export_hook import _crop_and_unflip

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
    hook = hook or FeatureExportHook()
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
    # same weights: SARHead loads the plain checkpoint (keys remapped)
    sar.load_state_dict(plain.state_dict(), strict=False)
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


def test_sliding_window_inference_is_skipped_with_a_warning():
    model = build()
    model.test_cfg = ConfigDict(mode='slide', crop_size=(32, 32),
                                stride=(32, 32))
    out, hook = export(model, *batch())
    assert 'seg_features' not in out[0] and hook._warned


def test_find_classifier_paths():
    sar = build('sar_')
    assert find_classifier(sar) is sar.decode_head.head.conv_seg
    assert find_classifier(sar, 'decode_head.head.conv_seg') is \
        sar.decode_head.head.conv_seg
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
    hook = FeatureExportHook(field='anchor_feat')
    runner = SimpleNamespace(model=model)
    hook.before_test_epoch(runner)
    model(x, samples)
    hook.after_test_epoch(runner)
    for s, row in zip(samples, x):
        assert torch.equal(s.anchor_feat, row)
