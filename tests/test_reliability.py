"""Issue 10: no silent wrong results, no corrupted state.

Checkpoints in both directions (a SAR model's state dict is the plain
model's plus ``anchor_losses.*``) and the refusal of a checkpoint that
does not fill the model; label checks that name the file; argument checks at
build time; state updates only from finite, checked inputs (also across an
AMP step that the grad scaler skips)."""
import copy
import glob
import os
import os.path as osp
import warnings

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from amp_helpers import ScaledOptimWrapper
from conftest import REPO_ROOT
from sar_plugin.losses import NonFiniteInputWarning

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
PLAIN_CFG = osp.join(DEMO, 'fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
SAR_CFG = osp.join(DEMO, 'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')


def build_model(path):
    model = MODELS.build(Config.fromfile(path).model)
    model.init_weights()
    return model


def samples(labels, paths=None):
    out = []
    for i, label in enumerate(labels):
        meta = dict(img_shape=label.shape[-2:], ori_shape=label.shape[-2:],
                    pad_shape=label.shape[-2:])
        if paths:
            meta.update(img_path=paths[i][0], seg_map_path=paths[i][1])
        s = SegDataSample(metainfo=meta)
        s.gt_sem_seg = PixelData(data=label[None].long())
        out.append(s)
    return out


def predict(model, x):
    model.eval()
    with torch.no_grad():
        return model(x, mode='tensor')


# --------------------------------------------------------------- layouts
def test_plain_head_loads_sar_checkpoint_and_predicts_the_same():
    torch.manual_seed(1)
    sar = build_model(SAR_CFG)
    plain = build_model(PLAIN_CFG)
    x = torch.randn(2, 3, 64, 64)
    state = copy.deepcopy(sar.state_dict())
    assert any(k.startswith('decode_head.anchor_losses.') for k in state)
    result = plain.load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys and all(
        k.startswith('decode_head.anchor_losses.')
        for k in result.unexpected_keys)
    assert torch.equal(predict(plain, x), predict(sar, x))


def test_sar_head_still_loads_plain_checkpoint():
    torch.manual_seed(2)
    plain = build_model(PLAIN_CFG)
    sar = build_model(SAR_CFG)
    result = sar.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert all('.anchor_losses.' in k for k in result.missing_keys)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(predict(plain, x), predict(sar, x))


def test_sar_state_dict_is_plain_plus_anchor_losses():
    plain = build_model(PLAIN_CFG).state_dict()
    sar = build_model(SAR_CFG).state_dict()
    extra = [k for k in sar if k not in plain]
    assert extra and all(k.startswith('decode_head.anchor_losses.')
                         for k in extra)
    assert [k for k in sar if k in plain] == list(plain)  # same order
    for key, value in plain.items():
        assert sar[key].shape == value.shape, key


def test_test_time_loading_refuses_unfilled_model(tmp_path):
    from mmengine.runner import Runner, save_checkpoint

    from sar_plugin.utils.loading import load_checkpoint_checked
    from test_tools import tiny_options
    cfg = Config.fromfile(PLAIN_CFG)
    cfg.merge_from_dict(tiny_options(str(tmp_path / 'data')))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    sar = build_model(SAR_CFG)
    good = str(tmp_path / 'sar.pth')
    save_checkpoint({'state_dict': sar.state_dict()}, good)
    load_checkpoint_checked(runner, good)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(predict(runner.model, x), predict(sar, x))

    partial = {k: v for k, v in sar.state_dict().items()
               if not k.startswith('decode_head.')}
    bad = str(tmp_path / 'backbone_only.pth')
    save_checkpoint({'state_dict': partial}, bad)
    runner._has_loaded = False
    with pytest.raises(RuntimeError, match=r'backbone_only\.pth does not fill'
                       r'.*decode_head\.conv_seg\.weight'):
        load_checkpoint_checked(runner, bad)
    missing = load_checkpoint_checked(runner, bad, allow_missing=True)
    assert 'decode_head.conv_seg.weight' in missing


# ------------------------------------------------------------ label checks
def test_sar_head_names_the_file_of_a_bad_label():
    model = build_model(SAR_CFG)
    model.train()
    label = torch.zeros(2, 64, 64, dtype=torch.long)
    label[1, 5, 5] = 20
    data = samples(label, [('a.png', 'a_ann.png'), ('b.png', 'b_ann.png')])
    x = torch.randn(2, 3, 64, 64)
    before = {k: v.clone() for k, v in model.decode_head.anchor_losses[0]
              .named_buffers()}
    with pytest.raises(ValueError, match=r'20 out of range in '
                       r'seg_map_path=b_ann\.png, img_path=b\.png'):
        model(x, data, mode='loss')
    for k, v in model.decode_head.anchor_losses[0].named_buffers():
        assert torch.equal(v, before[k]), k
    # the ignore index is not a bad label
    label[1, 5, 5] = 255
    model(x, samples(label), mode='loss')


# ------------------------------------------------------- build-time checks
@pytest.mark.parametrize('field,value', [
    ('pull_weight', float('nan')), ('anchor_weight', -1.0),
    ('loss_weight', -0.5), ('loss_weight', float('inf')),
    ('anchor_scale', 0.0)])
def test_sar_loss_refuses_bad_weights(field, value):
    with pytest.raises(ValueError, match=f'`{field}`'):
        MODELS.build(dict(type='SARLoss', num_classes=3, channels=4,
                          **{field: value}))


@pytest.mark.parametrize('cfg', [
    dict(type='CenterLoss', loss_weight=float('nan')),
    dict(type='LargeMarginLoss', lambda_c=float('nan')),
    dict(type='HALLoss', temperature=float('inf')),
    dict(type='LDMATLoss', class_weight=[1.0, -1.0, 1.0]),
    dict(type='ANCMLoss', scale=float('nan'))])
def test_family_refuses_non_finite_arguments(cfg):
    with pytest.raises(ValueError):
        MODELS.build(dict(cfg, num_classes=3, channels=4))


@pytest.mark.parametrize('field', ['channels', 'num_classes'])
def test_loss_disagreeing_with_head_is_refused_at_build(field):
    cfg = Config.fromfile(SAR_CFG).model
    head = cfg.decode_head
    value = head.head.channels + 1 if field == 'channels' else \
        head.head.num_classes + 1
    head.anchor_losses = [dict(type='SARLoss', **{field: value})]
    with pytest.raises(ValueError, match=f'sets `{field}`={value} but the '
                       'head'):
        MODELS.build(cfg)


# ------------------------------------------------------ state protection
STATEFUL = [
    dict(type='SARLoss', update_conf=0.01, filter_conf=1.0),
    dict(type='LargeMarginLoss'),
    dict(type='CenterLoss', center_mode='ema'),
]


def _stateful(cfg, k=3, c=4):
    loss = MODELS.build(dict(cfg, num_classes=k, channels=c))
    loss.train()
    return loss, nn.Conv2d(c, k, 1)


@pytest.mark.parametrize('cfg', STATEFUL, ids=lambda c: c['type'])
def test_bad_label_changes_no_state(cfg):
    loss, clf = _stateful(cfg)
    feat = torch.randn(2, 4, 3, 3)
    label = torch.randint(0, 3, (2, 3, 3))
    loss(feat, label, classifier=clf)  # warm up: state set
    before = {k: v.clone() for k, v in loss.named_buffers()}
    label[0, 0, 0] = 7
    with pytest.raises(ValueError, match='found label 7'):
        loss(feat * 2, label, classifier=clf)
    for k, v in loss.named_buffers():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize('cfg', STATEFUL, ids=lambda c: c['type'])
@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_feature_changes_no_state_and_warns_once(cfg, bad):
    loss, clf = _stateful(cfg)
    feat = torch.randn(2, 4, 3, 3)
    label = torch.randint(0, 3, (2, 3, 3))
    loss(feat, label, classifier=clf)
    before = {k: v.clone() for k, v in loss.named_buffers()}
    feat = feat * 3
    feat[1, 2, 1, 1] = bad
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with torch.no_grad():
            loss(feat, label, classifier=clf)
    ours = [w for w in caught if issubclass(w.category, NonFiniteInputWarning)]
    assert len(ours) == 1 and cfg['type'] in str(ours[0].message)
    for k, v in loss.named_buffers():
        assert torch.equal(v, before[k]), k


def test_nan_at_ignored_pixel_is_harmless():
    loss, clf = _stateful(dict(type='LargeMarginLoss'))
    feat = torch.randn(2, 4, 3, 3)
    label = torch.randint(0, 3, (2, 3, 3))
    label[0, 0, 0] = 255
    feat[0, :, 0, 0] = float('nan')
    feat.requires_grad_(True)
    out = loss(feat, label, classifier=clf)
    total = sum(out.values())
    total.backward()
    assert torch.isfinite(total)
    assert torch.isfinite(feat.grad).all()
    assert (feat.grad[0, :, 0, 0] == 0).all()
    assert torch.isfinite(loss.centers).all()
    assert torch.isfinite(clf.weight.grad).all()


# ------------------------------------------------------------ exact resume
def _demo_runner(tmp_path, work, max_iters, resume_from=None, hooks=True,
                 config=SAR_CFG, name=''):
    from mmengine.runner import Runner

    from sar_plugin.utils.runtime import prepare_config
    from test_tools import tiny_options
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(tiny_options(str(tmp_path / 'data')))
    cfg.work_dir = str(work)
    cfg.experiment_name = f'{osp.basename(str(work))}_{max_iters}_{name}'
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 2  # validation at the checkpoint's iteration
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0, deterministic=True)
    prepare_config(cfg)
    if not hooks:  # the control: the config without sar_runtime.py's hooks
        cfg.custom_hooks = [
            h for h in cfg.custom_hooks if h['type'] not in
            ('RunCheckHook', 'ExactResumeHook', 'AnchorStateHook')]
    if resume_from:
        cfg.resume, cfg.load_from = True, str(resume_from)
    return Runner.from_cfg(cfg)


def _final_state(runner):
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.parametrize('hooks', [True, False], ids=['with_hook', 'without'])
def test_kill_and_resume_is_bitwise_identical(tmp_path, hooks):
    full = _demo_runner(tmp_path, tmp_path / 'full', 4, hooks=hooks)
    assert full.model.decode_head.dropout.p > 0  # dropout is on
    full.train()
    expected = _final_state(full)
    _demo_runner(tmp_path, tmp_path / 'cut', 2, hooks=hooks).train()
    resumed = _demo_runner(tmp_path, tmp_path / 'cut', 4, hooks=hooks,
                           resume_from=tmp_path / 'cut' / 'iter_2.pth',
                           name='resumed')
    resumed.train()
    got = _final_state(resumed)
    assert got.keys() == expected.keys()
    same = all(torch.equal(got[k], expected[k]) for k in expected)
    if hooks:
        for key in expected:
            assert torch.equal(got[key], expected[key]), key
    else:  # the control: MMEngine alone does not restore the generators
        assert not same


# ------------------------------------------------------ resume robustness
def test_truncated_last_checkpoint_falls_back_with_warning(tmp_path):
    from sar_plugin.utils.resume import (check_checkpoint_file,
                                         find_resume_checkpoint)
    work = tmp_path / 'work'
    work.mkdir()
    good = work / 'iter_2.pth'
    torch.save({'state_dict': {'w': torch.ones(3)}}, good)
    data = good.read_bytes()
    (work / 'iter_4.pth').write_bytes(data[:len(data) // 2])  # truncated
    (work / 'iter_6.pth').write_bytes(b'')  # 0 bytes
    (work / 'last_checkpoint').write_text(str(work / 'iter_6.pth'))
    assert find_resume_checkpoint(str(work)) == str(good)
    with pytest.raises(RuntimeError, match=r'iter_6\.pth is empty .*newest '
                       r'intact checkpoint beside it is .*iter_2\.pth'):
        check_checkpoint_file(str(work / 'iter_6.pth'))
    with pytest.raises(RuntimeError, match=r'iter_4\.pth is'):
        check_checkpoint_file(str(work / 'iter_4.pth'))
    with pytest.raises(FileNotFoundError, match=r'the work dir .*typo does '
                       'not exist'):
        find_resume_checkpoint(str(tmp_path / 'typo'))
    assert find_resume_checkpoint(str(tmp_path / 'typo'),
                                  missing_ok=True) is None


def test_stale_last_checkpoint_entry_is_not_a_checkpoint(tmp_path):
    """last_checkpoint naming a deleted file: --auto-resume starts from
    scratch (or from the checkpoints there are) instead of failing."""
    from sar_plugin.utils.resume import find_resume_checkpoint
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    assert find_resume_checkpoint(str(work), missing_ok=True) is None
    with pytest.raises(FileNotFoundError, match='has no checkpoint'):
        find_resume_checkpoint(str(work))
    torch.save({'state_dict': {'w': torch.ones(1)}}, work / 'iter_2.pth')
    assert find_resume_checkpoint(str(work)) == str(work / 'iter_2.pth')


def test_train_tool_refuses_mistyped_resume_dir(tmp_path):
    from test_tools import cli_options, tiny_options
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), SAR_CFG,
         '--work-dir', str(tmp_path / 'no_such_run'), '--resume',
         '--cfg-options'] + cli_options(tiny_options(str(tmp_path / 'd'))),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'no_such_run does not exist' in proc.stderr
    assert not osp.exists(tmp_path / 'no_such_run' / 'iter_1.pth')


def test_resume_of_another_model_is_refused(tmp_path):
    plain = _demo_runner(tmp_path, tmp_path / 'plain', 2, config=PLAIN_CFG)
    plain.train()
    ckpt = tmp_path / 'plain' / 'iter_2.pth'
    sar = _demo_runner(tmp_path, tmp_path / 'sar', 3, resume_from=ckpt,
                       name='sar')
    with pytest.raises(RuntimeError) as err:
        sar.train()
    text = str(err.value)
    assert f'Cannot resume from {ckpt}' in text
    assert 'entries of this model are not in the checkpoint: ' \
        'decode_head.anchor_losses.0.' in text
    assert f'load_from={ckpt}' in text and 'without --resume' in text
    assert sar.iter == 0
    assert not osp.exists(tmp_path / 'sar' / 'iter_3.pth')


def test_load_from_another_model_starts_a_new_run(tmp_path):
    plain = _demo_runner(tmp_path, tmp_path / 'plain', 2, config=PLAIN_CFG)
    plain.train()
    from sar_plugin.utils.checkpoint import load_checkpoint_file
    expected = load_checkpoint_file(tmp_path / 'plain' /
                                    'iter_2.pth')['state_dict']
    sar = _demo_runner(tmp_path, tmp_path / 'sar', 1, name='sar')
    sar.cfg.load_from = sar._load_from = str(tmp_path / 'plain' /
                                             'iter_2.pth')
    sar.train()
    assert sar.iter == 1  # a new run: iteration 0 -> 1, not 2 -> 3
    assert sar.model.decode_head.conv_seg.weight.shape == \
        expected['decode_head.conv_seg.weight'].shape


# ------------------------------------------------------ AMP skipped steps
def test_skipped_amp_step_restores_anchor_state():
    from types import SimpleNamespace

    from sar_plugin.engine import AnchorStateHook

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 4, 1)
            self.clf = nn.Conv2d(4, 3, 1)
            self.loss = MODELS.build(dict(type='LargeMarginLoss',
                                          num_classes=3, channels=4))

        def forward(self, x, label):
            out = self.loss(self.body(x), label, classifier=self.clf)
            return sum(out.values())

    model = Toy().train()
    wrapper = ScaledOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                                 'cpu')
    runner = SimpleNamespace(model=model, optim_wrapper=wrapper, iter=0)
    hook = AnchorStateHook()
    hook.before_train(runner)
    x, label = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))

    def step(poison):
        hook.before_train_iter(runner, 0)
        loss = model(x, label)
        handle = model.body.weight.register_hook(
            lambda g: torch.full_like(g, float('inf')) if poison else g)
        # poison: an overflowing gradient, the scaler skips the step
        wrapper.update_params(loss)
        hook.after_train_iter(runner, 0)
        handle.remove()

    step(poison=False)
    centers = model.loss.centers.clone()
    weight = model.body.weight.detach().clone()
    step(poison=True)
    assert torch.equal(model.body.weight, weight)  # the step was skipped
    assert torch.equal(model.loss.centers, centers)  # and so was the update
    step(poison=False)
    assert not torch.equal(model.loss.centers, centers)  # normal steps move
    hook.after_train(runner)


# --------------------------------------------- evaluation labels (item 2)
def _eval_sample(pred, gt, path='frame_7.png'):
    from mmengine.structures import PixelData
    s = SegDataSample(metainfo=dict(img_path=path))
    s.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.tensor(gt)[None])
    return s.to_dict()


def test_longtail_iou_refuses_out_of_range_label_naming_the_image():
    from mmseg.registry import METRICS
    metric = METRICS.build(dict(type='LongTailIoUMetric', save_records=False))
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    with pytest.raises(ValueError, match=r'label value\(s\) 20 in '
                       r'frame_7\.png \(1 pixel\(s\)\)'):
        metric.process({}, [_eval_sample([[0, 1], [2, 1]], [[0, 1], [2, 20]])])


def test_lenient_labels_are_excluded_from_predictions_too(capsys):
    from mmseg.registry import METRICS
    metric = METRICS.build(dict(type='LongTailIoUMetric', save_records=False,
                                strict_labels=False))
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    pred = [[0, 1], [2, 1]]
    metric.process({}, [_eval_sample(pred, [[0, 1], [2, 20]])])
    out = metric.evaluate(1)
    # the pixel labelled 20 counts nowhere: the rest is predicted exactly
    assert float(out['mIoU']) == 100.0
    reference = METRICS.build(dict(type='LongTailIoUMetric',
                                    save_records=False))
    reference.dataset_meta = dict(classes=('a', 'b', 'c'))
    reference.process({}, [_eval_sample(pred, [[0, 1], [2, 255]])])
    assert reference.evaluate(1)['mIoU'] == out['mIoU']


@pytest.mark.parametrize('strict', [True, False])
def test_label_check_hook_for_mmseg_iou_metric(strict):
    from types import SimpleNamespace

    from mmengine.structures import PixelData
    from mmseg.registry import HOOKS, METRICS
    hook = HOOKS.build(dict(type='RunCheckHook', strict=strict))
    loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=SimpleNamespace(
        metainfo=dict(classes=('a', 'b', 'c')))))
    runner = SimpleNamespace(val_loop=loop, test_loop=loop)
    s = SegDataSample(metainfo=dict(img_path='x.png'))
    s.gt_sem_seg = PixelData(data=torch.tensor([[[0, 1], [2, 20]]]))
    batch = dict(data_samples=[s])
    if strict:
        with pytest.raises(ValueError, match=r'20 in x\.png'):
            hook.before_val_iter(runner, 0, batch)
        return
    hook.before_test_iter(runner, 0, batch)
    s.pred_sem_seg = PixelData(data=torch.tensor([[[0, 1], [2, 1]]]))
    metric = METRICS.build(dict(type='IoUMetric'))  # MMSeg's own
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    metric.process({}, [s.to_dict()])
    assert float(metric.evaluate(1)['mIoU']) == 100.0


def test_resume_path_with_auto_resume_is_an_error(tmp_path):
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), SAR_CFG,
         '--work-dir', str(tmp_path / 'w'), '--resume',
         str(tmp_path / 'iter_2.pth'), '--auto-resume'],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert 'contradict each other' in proc.stderr
    assert not osp.exists(tmp_path / 'w')


def _with_config_payload(src, dst, marker):
    """A copy of checkpoint ``src`` whose ``meta['config']`` would create
    ``marker`` if executed (MMEngine's resume parses it as Python)."""
    from sar_plugin.utils.checkpoint import load_checkpoint_file
    ckpt = load_checkpoint_file(src)
    ckpt['meta']['config'] = (f"_x = __import__('os').system("
                              f"'touch {marker}')\n")
    torch.save(ckpt, dst)


def test_checkpoint_config_text_never_runs(tmp_path):
    """Issue 21, case 1: resume (in the runner, with --resume PATH and
    --auto-resume) and the deploy tool never execute meta['config']."""
    import subprocess
    import sys

    from test_tools import cli_options, tiny_options
    _demo_runner(tmp_path, tmp_path / 'run', 2).train()
    marker = tmp_path / 'PWNED'
    for name in ('iter_2.pth', 'iter_3.pth'):
        _with_config_payload(tmp_path / 'run' / 'iter_2.pth',
                             tmp_path / name, marker)
    resumed = _demo_runner(tmp_path, tmp_path / 'resumed', 3,
                           resume_from=tmp_path / 'iter_2.pth',
                           name='resumed')
    resumed.train()
    assert resumed.iter == 3 and not marker.exists()
    # the tool: --auto-resume finds the payload checkpoint in the work dir
    work = tmp_path / 'auto'
    work.mkdir()
    (work / 'iter_3.pth').write_bytes((tmp_path / 'iter_3.pth').read_bytes())
    opts = tiny_options(str(tmp_path / 'data'))
    opts.update({'train_cfg.max_iters': 4, 'train_cfg.val_interval': 100})
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), SAR_CFG,
         '--work-dir', str(work), '--auto-resume', '--cfg-options'] +
        cli_options(opts), capture_output=True, text=True, timeout=600,
        env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Resumed from' in proc.stdout + proc.stderr or \
        osp.exists(work / 'iter_4.pth')
    assert not marker.exists()
    # --resume PATH, and tools/test.py on the same file
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), SAR_CFG,
         '--work-dir', str(tmp_path / 'explicit'), '--resume',
         str(tmp_path / 'iter_3.pth'), '--cfg-options'] + cli_options(opts),
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), SAR_CFG,
         str(tmp_path / 'iter_3.pth'), '--work-dir', str(tmp_path / 'test'),
         '--cfg-options'] + cli_options(tiny_options(str(tmp_path / 'data'))),
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists()
    # the deploy tool leaves the text out
    out = tmp_path / 'deploy.pth'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'model_converters',
                                  'sar2mmseg.py'),
         str(tmp_path / 'iter_2.pth'), str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'meta.config (config text)' in proc.stdout
    assert 'config' not in torch.load(out, weights_only=True)['meta']
    assert not marker.exists()


def test_copied_work_dir_resumes_its_own_checkpoint(tmp_path):
    """Issue 21, case 9: last_checkpoint of a copied work dir names the
    original run's file; the copy resumes its own, saying so."""
    import shutil

    from mmengine.logging import MMLogger

    from sar_plugin.utils.resume import find_resume_checkpoint
    original = tmp_path / 'original'
    original.mkdir()
    torch.save({'state_dict': {'w': torch.ones(1)}}, original / 'iter_2.pth')
    (original / 'last_checkpoint').write_text(str(original / 'iter_2.pth'))
    copy_dir = tmp_path / 'copy'
    shutil.copytree(original, copy_dir)
    logger = MMLogger.get_instance('copied_work_dir', log_level='WARNING')
    messages = []
    handler = __import__('logging').Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        found = find_resume_checkpoint(str(copy_dir))
    finally:
        logger.removeHandler(handler)
    assert found == str(copy_dir / 'iter_2.pth')
    assert any('outside this work dir' in m for m in messages), messages
    # the original itself is unchanged
    assert find_resume_checkpoint(str(original)) == \
        str(original / 'iter_2.pth')


def test_test_tool_names_an_empty_checkpoint(tmp_path):
    """Issue 21, case 9: tools/test.py on a 0-byte file names it."""
    import subprocess
    import sys
    empty = tmp_path / 'iter_4.pth'
    empty.write_bytes(b'')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), SAR_CFG,
         str(empty), '--work-dir', str(tmp_path / 'w')],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f'CHECKPOINT {empty} is empty (0 bytes)' in proc.stderr


def test_second_run_in_a_work_dir_is_refused(tmp_path):
    """Issue 21, case 8: a live holder's lock refuses the run (naming it);
    a dead holder's lock on this host is taken over; the lock goes after
    the run."""
    import json
    import socket
    import subprocess
    import sys
    work = tmp_path / 'run'
    work.mkdir()
    lock = work / '.sar_plugin.lock'
    holder = subprocess.Popen([sys.executable, '-c',
                               'import time; time.sleep(60)'])
    try:
        lock.write_text(json.dumps(dict(pid=holder.pid,
                                        host=socket.gethostname(),
                                        started='earlier')))
        runner = _demo_runner(tmp_path, work, 1, name='second')
        with pytest.raises(RuntimeError, match=rf'in use by another run '
                           rf'\(pid {holder.pid} on'):
            runner.train()
        assert not osp.exists(work / 'iter_1.pth')
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is taken over, and released after
    _demo_runner(tmp_path, work, 1, name='third').train()
    assert osp.exists(work / 'iter_1.pth') and not lock.exists()
    # another host's lock cannot be checked from here: refused
    lock.write_text(json.dumps(dict(pid=1, host='elsewhere', started='x')))
    with pytest.raises(RuntimeError, match='delete .*sar_plugin.lock'):
        _demo_runner(tmp_path, work, 1, name='fourth').train()


def test_plain_config_training_label_names_the_file():
    """Issue 21, case 10: RunCheckHook (in sar_runtime.py, so in every
    shipped config) names the file of an out-of-range training label, for
    plain heads too."""
    from types import SimpleNamespace

    from sar_plugin.engine import RunCheckHook
    cfg = Config.fromfile(PLAIN_CFG)
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'RunCheckHook']
    assert hooks == [dict(type='RunCheckHook', evaluation=False)]
    hook = RunCheckHook(evaluation=False)
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(
        dataset=SimpleNamespace(metainfo=dict(classes=('a', 'b', 'c')))))
    good = torch.tensor([[0, 2], [255, 1]])
    bad = torch.tensor([[0, 20], [255, 1]])
    batch = dict(data_samples=samples(
        [good, bad], [('a.png', 'a_label.png'), ('b.png', 'b_label.png')]))
    with pytest.raises(ValueError, match=r'20.*b_label\.png'):
        hook.before_train_iter(runner, 0, batch)
    hook.before_train_iter(runner, 0, dict(data_samples=samples([good])))


# ------------------------- overflow from finite inputs (issue 21, case 13)
OVERFLOWING = [
    pytest.param(dict(type='CenterLoss', center_mode='ema'), True,
                 id='center-ema'),
    pytest.param(dict(type='CenterLoss', center_mode='learned'), True,
                 id='center-learned'),
    pytest.param(dict(type='LargeMarginLoss'), True, id='large-margin'),
    # the pull's squared distances overflow too (returned as 0 while the
    # gate is closed): the step is vetoed all the same
    pytest.param(dict(type='SARLoss', update_conf=0.01, filter_conf=1.0),
                 False, id='sar'),
]


@pytest.mark.parametrize('layout', ['pixels', 'images'])
@pytest.mark.parametrize('cfg,inf_out', OVERFLOWING)
def test_overflow_from_finite_features_warns_and_keeps_state(
        cfg, inf_out, layout):
    """Features of magnitude ~1e20 are finite in float32, and so are their
    per-class sums (the centres), but their squared distances are not: the
    step warns (NonFiniteInputWarning naming the loss) and leaves every
    buffer as it was; the next finite step updates again."""
    loss, clf = _stateful(cfg)
    feat = torch.randn(2, 4, 3, 3)
    label = torch.randint(0, 3, (2, 3, 3))
    if layout == 'images':
        feat, label, clf = feat[:, :, 0, 0], label[:, 0, 0], nn.Linear(4, 3)
    loss(feat, label, classifier=clf)  # warm-up: state set
    before = {k: v.clone() for k, v in loss.named_buffers()}
    huge = feat * 1e20
    assert torch.isfinite(huge).all()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = loss(huge, label, classifier=clf)
    terms = list(out.values()) if isinstance(out, dict) else [out]
    if inf_out:  # the overflow this is about
        assert not all(bool(torch.isfinite(t)) for t in terms)
    ours = [w for w in caught if issubclass(w.category, NonFiniteInputWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    text = str(ours[0].message)
    assert cfg['type'] in text and loss.loss_name in text, text
    for k, v in loss.named_buffers():
        assert torch.equal(v, before[k]), k
    if 'centers' in dict(loss.named_buffers()):
        assert 'from finite inputs' in text, text
        loss(feat * 2, label, classifier=clf)  # not stuck
        assert not torch.equal(loss.centers, before['centers'])

