"""Long-tail evaluation: class-frequency tool, buckets, bucket mIoU and its
JSON tables, feature-compactness statistics and the class-balanced
reservoir."""
import glob
import json
import math
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from conftest import REPO_ROOT
from test_tools import cli_options, run_tool, tiny_options

from sar_plugin.evaluation import (ClassBalancedReservoir, bucket_indices,
                                   compactness_stats, make_buckets,
                                   silhouette_samples)

FCN = osp.join(REPO_ROOT, 'configs', 'demo',
               'fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')


def sample(pred, gt, **fields):
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.tensor(gt)[None])
    for key, value in fields.items():
        s.set_field(value, key)
    return s.to_dict()


# ------------------------------------------------------------------ buckets
def test_cumulative_buckets_on_known_table():
    freq = dict(a=0.40, b=0.25, c=0.15, d=0.10, e=0.06, f=0.04)
    # sorted: a .40 | a+b .65 >= .5 -> head {a, b}; tail from the end:
    # f .04, e+f .10 <= .1, d+e+f .20 > .1 -> tail {e, f}
    assert make_buckets(freq) == dict(head=['a', 'b'], body=['c', 'd'],
                                      tail=['e', 'f'])
    # the order of the input does not matter, counts work as frequencies
    counts = [4, 6, 15, 10, 40, 25]
    names = ['f', 'e', 'c', 'd', 'a', 'b']
    assert make_buckets(counts, names) == make_buckets(freq)
    # configurable shares
    assert make_buckets(freq, head_share=0.3, tail_share=0.2) == dict(
        head=['a'], body=['b', 'c'], tail=['d', 'e', 'f'])
    assert bucket_indices([0.4, 0.25, 0.15, 0.1, 0.06, 0.04]) == dict(
        head=[0, 1], body=[2, 3], tail=[4, 5])


def test_cumulative_edge_cases():
    # one dominant class: the tail (3 classes <= 10%) is cut to leave a body
    assert make_buckets([0.9, 0.05, 0.03, 0.02], list('abcd')) == dict(
        head=['a'], body=['b'], tail=['c', 'd'])
    # uniform: ties would put everything in the head; every bucket non-empty
    assert make_buckets([1, 1, 1, 1, 1], list('abcde')) == dict(
        head=['a', 'b', 'c'], body=['d'], tail=['e'])
    # a tie at the head boundary joins the head
    assert make_buckets([30, 20, 20, 20, 5, 5], list('abcdef'))['head'] == \
        ['a', 'b', 'c', 'd']
    # a tie at the tail boundary is not split ...
    out = make_buckets([40, 30, 20, 5, 5, 5], list('abcdef'),
                       tail_share=0.07)
    assert out['tail'] == ['f'] or out['tail'] == ['d', 'e', 'f']
    # ... (here the tie d=e=f is larger than 7%, so the forced single
    # class is the least frequent, last index)
    assert out == dict(head=['a', 'b'], body=['c', 'd', 'e'], tail=['f'])
    # absent classes (0 pixels) are tail
    assert make_buckets([70, 20, 10, 0], list('abcd'))['tail'] == ['c', 'd']
    # K = 3 always 1/1/1, K = 2 head + tail, K = 1 head only
    assert make_buckets([98, 1, 1], list('abc')) == dict(
        head=['a'], body=['b'], tail=['c'])
    assert make_buckets([1, 3], list('ab')) == dict(head=['b'], body=[],
                                                   tail=['a'])
    assert make_buckets([5], ['a']) == dict(head=['a'], body=[], tail=[])
    with pytest.raises(ValueError):
        make_buckets([0, 0, 0])
    with pytest.raises(ValueError):
        make_buckets([1, 2], rule='quartiles')


def test_thirds_and_counts_rules():
    freq = [10, 60, 5, 1, 20, 4]  # order: 1, 4, 0, 2, 5, 3
    assert bucket_indices(freq, rule='thirds') == dict(
        head=[1, 4], body=[0, 2], tail=[5, 3])
    assert bucket_indices(freq[:4], rule='thirds') == dict(
        head=[1], body=[0, 2], tail=[3])
    assert bucket_indices(freq[:5], rule='thirds') == dict(
        head=[1], body=[4, 0, 2], tail=[3])
    counts = dict(a=500, b=101, c=100, d=20, e=19, f=0)
    assert make_buckets(counts, rule='counts') == dict(
        many=['a', 'b'], medium=['c', 'd'], few=['e', 'f'])
    assert make_buckets(counts, rule='counts', many_thr=50, few_thr=5) == \
        dict(many=['a', 'b', 'c'], medium=['d', 'e'], few=['f'])
    with pytest.raises(ValueError, match='counts'):
        make_buckets(dict(classes=['a'], frequency=[1.0]), rule='counts')


def test_buckets_from_class_frequency_json(tmp_path):
    path = tmp_path / 'freq.json'
    path.write_text(json.dumps(dict(classes=['x', 'y', 'z'],
                                    counts=[1, 80, 19],
                                    frequency=[0.01, 0.8, 0.19])))
    assert make_buckets(str(path)) == dict(head=['y'], body=['z'],
                                           tail=['x'])
    # reordered to the dataset's classes
    assert bucket_indices(str(path), classes=['z', 'y', 'x']) == dict(
        head=[1], body=[0], tail=[2])
    with pytest.raises(ValueError, match='no entry'):
        bucket_indices(str(path), classes=['x', 'y', 'w'])


# ------------------------------------------------------------ IoU metric
def test_bucket_miou_against_hand_computed_confusion(tmp_path):
    metric = METRICS.build(dict(
        type='LongTailIoUMetric', ignore_index=255,
        class_frequency=dict(classes=['a', 'b', 'c', 'd', 'e'],
                             counts=[600, 250, 100, 30, 20]),
        record_dir=str(tmp_path / 'tables')))
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd', 'e'))
    # buckets (cumulative): head {a} (60%), tail {d, e} (5%), body {b, c}
    gt1 = [[0, 0, 1, 1], [2, 2, 255, 0]]
    pred1 = [[0, 1, 1, 1], [2, 0, 3, 0]]
    gt2 = [[4, 4, 0, 255]]
    pred2 = [[4, 0, 0, 4]]
    metric.process({}, [sample(pred1, gt1)])
    metric.process({}, [sample(pred2, gt2)])
    out = metric.evaluate(2)
    # confusion (rows gt, cols pred), ignored pixels dropped:
    # a: gt 4 px (0,0),(0,1),(1,3),(2,2)-> pred a,b,a,a ; pred a also at
    #    (1,1) and img2 (0,1): I=3, U=4+2=6
    # b: gt (0,2),(0,3) pred b,b; pred b also at (0,1): I=2, U=3
    # c: gt (1,0),(1,1) -> c, a: I=1, U=2
    # d: no gt, pred d only at the ignored pixel -> nan
    # e: gt img2 (0,0),(0,1) -> e, a: I=1; pred e elsewhere only at ignored
    #    -> U=2
    iou = dict(a=3 / 6, b=2 / 3, c=1 / 2, d=math.nan, e=1 / 2)
    for name, value in iou.items():
        if math.isnan(value):
            assert f'IoU.{name}' not in out  # absent: not logged
        else:
            assert out[f'IoU.{name}'] == round(value * 100, 2)
    assert out['mIoU.head'] == 50.0
    assert out['mIoU.body'] == round((2 / 3 + 1 / 2) / 2 * 100, 2)
    assert out['mIoU.tail'] == 50.0  # d is nan, left out
    assert float(out['mIoU']) == pytest.approx(
        round(np.mean([.5, 2 / 3, .5, .5]) * 100, 2), abs=1e-4)
    assert float(out['aAcc']) == pytest.approx(round(7 / 10 * 100, 2),
                                               abs=1e-4)
    table = json.load(open(tmp_path / 'tables' / 'latest.json'))
    assert table['classes'] == ['a', 'b', 'c', 'd', 'e']
    assert table['counts'] == [4, 2, 2, 0, 2]
    assert table['IoU'][3] is None and table['IoU'][0] == 50.0
    assert table['Acc'][0] == 75.0
    assert table['buckets'] == dict(head=['a'], body=['b', 'c'],
                                    tail=['d', 'e'])
    assert table['bucket_scores'] == dict(head=50.0, body=out['mIoU.body'],
                                        tail=50.0)
    assert table['frequency'] == pytest.approx([.6, .25, .1, .03, .02])
    assert table['summary']['mIoU'] == pytest.approx(float(out['mIoU']))
    assert len(glob.glob(str(tmp_path / 'tables' / '*.json'))) == 2


def test_bucket_with_only_absent_classes_is_nan_and_no_freq_keeps_old_keys(
        tmp_path):
    metric = METRICS.build(dict(type='LongTailIoUMetric',
                                class_frequency=[50, 30, 15, 5],
                                bucket_rule='thirds', save_records=False))
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd'))
    metric.process({}, [sample([[0, 1, 2]], [[0, 1, 2]])])
    out = metric.evaluate(1)
    assert out['mIoU.head'] == 100.0 and out['mIoU.body'] == 100.0
    assert 'mIoU.tail' not in out  # no evaluated class: not logged
    plain = METRICS.build(dict(type='LongTailIoUMetric',
                               record_dir=str(tmp_path)))
    plain.dataset_meta = dict(classes=('a', 'b', 'c', 'd'))
    plain.process({}, [sample([[0, 1, 2]], [[0, 1, 2]])])
    out = plain.evaluate(1)
    assert not any(k.startswith('mIoU.') for k in out)
    table = json.load(open(tmp_path / 'latest.json'))
    assert table['buckets'] is None and table['frequency'] is None


# --------------------------------------------------------- class frequency
def test_class_frequency_tool_matches_label_pngs(tmp_path):
    data = str(tmp_path / 'data')
    out = tmp_path / 'freq.json'
    opts = tiny_options(data)
    log = run_tool([osp.join(REPO_ROOT, 'tools', 'analysis',
                             'class_frequency.py'), FCN, '--out', str(out),
                    '--cfg-options'] + cli_options(opts), tmp_path)
    assert 'written to' in log
    record = json.load(open(out))
    pngs = sorted(glob.glob(osp.join(data, 'ann_dir', 'train', '*.png')))
    assert len(pngs) == 4 and record['num_samples'] == 4
    ref = np.zeros(8, np.int64)
    for p in pngs:
        ref += np.bincount(cv2.imread(p, cv2.IMREAD_UNCHANGED).ravel(),
                           minlength=8)
    assert record['classes'] == [f'c{k}' for k in range(8)]
    assert record['counts'] == ref.tolist()
    assert sum(record['counts']) == 4 * 64 * 64  # no crop/resize happened
    assert record['frequency'] == pytest.approx((ref / ref.sum()).tolist())
    manifest = json.load(open(osp.join(data, 'manifest.json')))
    assert record['counts'] == manifest['train_pixel_counts']

    # val split, with reduce_zero_label: 0 -> 255 (ignored), k -> k - 1
    out_val = tmp_path / 'val.json'
    run_tool([osp.join(REPO_ROOT, 'tools', 'analysis', 'class_frequency.py'),
              FCN, '--split', 'val', '--out', str(out_val), '--cfg-options'] +
             cli_options({**opts,
                          'val_dataloader.dataset.reduce_zero_label': True}),
             tmp_path)
    val = json.load(open(out_val))
    ref = np.zeros(8, np.int64)
    for p in sorted(glob.glob(osp.join(data, 'ann_dir', 'val', '*.png'))):
        ref += np.bincount(cv2.imread(p, cv2.IMREAD_UNCHANGED).ravel(),
                           minlength=8)
    assert val['counts'] == ref[1:].tolist() + [0]
    assert make_buckets(record)['head'] == ['c0']


def test_metric_json_through_runner_matches_logged_numbers(tmp_path):
    data = str(tmp_path / 'data')
    freq = tmp_path / 'freq.json'
    counts = [7000, 2000, 500, 200, 150, 80, 50, 20]
    freq.write_text(json.dumps(dict(classes=[f'c{k}' for k in range(8)],
                                    counts=counts)))
    cfg = Config.fromfile(FCN)
    cfg.merge_from_dict(tiny_options(data))
    cfg.val_evaluator[0]['class_frequency'] = str(freq)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 100
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    from sar_plugin.utils import prepare_config
    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    tables = glob.glob(osp.join(cfg.work_dir, '*', 'longtail_eval',
                                'iter_1.json'))
    assert len(tables) == 1
    table = json.load(open(tables[0]))
    latest = json.load(open(osp.join(osp.dirname(tables[0]), 'latest.json')))
    assert latest == table and table['iter'] == 1
    # what the runner logged (its message hub feeds the log and the scalar
    # files; the visualizer's files are not used: MMSeg gives the visualizer
    # a fixed name, so in one process a later runner reuses an earlier one's)
    logged = {k[len('val/'):]: v.current()
              for k, v in runner.message_hub.log_scalars.items()
              if k.startswith('val/')}
    assert table['summary']['mIoU'] == pytest.approx(logged['mIoU'])
    assert table['summary']['aAcc'] == pytest.approx(logged['aAcc'])
    for key in ('head', 'body', 'tail'):
        value = table['bucket_scores'][key]
        if value is None:
            assert math.isnan(logged[f'mIoU.{key}'])
        else:
            assert value == pytest.approx(logged[f'mIoU.{key}'])
    for name, iou in zip(table['classes'], table['IoU']):
        if iou is not None:
            assert iou == pytest.approx(logged[f'IoU.{name}'])
    assert table['buckets'] == make_buckets(str(freq))
    # the feature record of the same evaluation holds the logged values
    feat = json.load(open(osp.join(osp.dirname(osp.dirname(tables[0])),
                                   'feature_eval', 'iter_1.json')))
    assert feat['classes'] == table['classes']
    for key in ('fisher', 'silhouette', 'intra_mean'):
        assert feat['summary'][key] == pytest.approx(logged[f'feat/{key}'],
                                                     abs=1e-4)
    with np.load(osp.join(osp.dirname(osp.dirname(tables[0])),
                          'feature_eval', 'iter_1.npz')) as sample:
        assert sample['features'].shape[0] == sample['labels'].shape[0] > 0
        assert sample['features'].shape[1] == \
            cfg.model.decode_head.channels
        per_class = np.bincount(sample['labels'], minlength=8)
        assert per_class.max() <= 64  # save_per_class
        assert (per_class[:len(feat['num_samples'])] ==
                np.minimum(feat['num_samples'], 64)).all()
    assert sum(table['counts']) == 2 * 64 * 64


def test_metric_buckets_from_dataset_train_counts_by_default():
    metric = METRICS.build(dict(type='LongTailIoUMetric', save_records=False))
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd', 'e'),
                               train_class_counts=[600, 250, 100, 30, 20])
    metric.process({}, [sample([[0, 1, 2, 3, 4]], [[0, 1, 2, 3, 4]])])
    out = metric.evaluate(1)
    assert out['mIoU.head'] == out['mIoU.body'] == out['mIoU.tail'] == 100
    explicit = METRICS.build(dict(type='LongTailIoUMetric',
                                  save_records=False,
                                  class_frequency=[1, 1, 1, 1, 100],
                                  bucket_rule='thirds'))
    explicit.dataset_meta = metric.dataset_meta
    explicit.process({}, [sample([[0, 1, 2, 3, 4]], [[0, 1, 2, 3, 3]])])
    out = explicit.evaluate(1)
    assert out['mIoU.head'] == 0.0  # class e (the given frequency wins)


# ------------------------------------------------------ feature statistics
def clusters(spread, k=4, n=60, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(k, dim) * 10
    x = torch.cat([centers[c] + spread * torch.randn(n, dim, generator=g)
                   for c in range(k)])
    y = torch.arange(k).repeat_interleave(n)
    return x, y


def numpy_reference(x, y, k):
    x, y = x.double().numpy(), y.numpy()
    means = np.stack([x[y == c].mean(0) for c in range(k)])
    intra = np.array([((x[y == c] - means[c])**2).sum(1).mean()
                      for c in range(k)])
    mu = x.mean(0)
    n = np.bincount(y, minlength=k)
    fisher = (n * ((means - mu)**2).sum(1)).sum() / \
        ((x - means[y])**2).sum()
    d = np.sqrt(((x[:, None] - x[None])**2).sum(-1))
    sil = []
    for i in range(len(x)):
        own = y == y[i]
        a = d[i, own].sum() / (own.sum() - 1)
        b = min(d[i, y == c].mean() for c in range(k) if c != y[i])
        sil.append((b - a) / max(a, b))
    md = np.sqrt(((means[:, None] - means[None])**2).sum(-1))
    np.fill_diagonal(md, np.inf)
    return dict(intra=intra, fisher=fisher, silhouette=np.mean(sil),
                sil=np.array(sil), nearest=md.min(1))


@pytest.mark.parametrize('spread', [0.2, 8.0])
def test_compactness_stats_against_numpy(spread):
    x, y = clusters(spread)
    ref = numpy_reference(x, y, 4)
    out = compactness_stats(x, y, 4, silhouette_per_class=None,
                            chunk_size=50)
    assert out['intra'] == pytest.approx(ref['intra'].tolist(), rel=1e-6)
    assert out['fisher'] == pytest.approx(ref['fisher'], rel=1e-6)
    assert out['silhouette'] == pytest.approx(ref['silhouette'], rel=1e-6)
    assert out['nearest_mean_dist'] == pytest.approx(ref['nearest'].tolist())
    assert silhouette_samples(x, y, 4, chunk_size=7).numpy() == \
        pytest.approx(ref['sil'])
    if spread < 1:  # well separated
        assert out['fisher'] > 20 and out['silhouette'] > 0.9  # ~234
    else:  # overlapping
        assert out['fisher'] < 1 and out['silhouette'] < 0.1


def test_compactness_absent_classes_ignore_and_buckets():
    x, y = clusters(0.2, k=3)
    y = y.clone()
    y[:5] = 255  # ignored
    out = compactness_stats(x, y, 5, buckets=dict(head=[0], body=[1],
                                                  tail=[2, 3, 4]),
                            silhouette_per_class=20)
    assert out['num_samples'] == [55, 60, 60, 0, 0]
    assert math.isnan(out['intra'][3])
    assert math.isnan(out['silhouette_per_class'][4])
    assert out['buckets']['tail']['intra'] == pytest.approx(out['intra'][2])
    assert out['buckets']['head']['silhouette_per_class'] == pytest.approx(
        out['silhouette_per_class'][0])
    assert out['silhouette'] > 0.9


def test_reservoir_bounded_and_uniform():
    res = ClassBalancedReservoir(3, per_class=10, seed=1)
    for i in range(5):
        feats = torch.randn(2, 4, 6, 6)
        labels = torch.randint(0, 3, (2, 6, 6))
        labels[0, 0] = 255
        res.update(feats, labels)
    x, y = res.sample()
    assert x.shape == (30, 4) and torch.bincount(y).tolist() == [10, 10, 10]
    assert res.seen.sum() == 5 * 72 - 5 * 6
    # each of 20 stream items kept with probability 5/20, batches of 1..7
    hits = np.zeros(20)
    runs = 1500
    for seed in range(runs):
        res = ClassBalancedReservoir(1, per_class=5, seed=seed)
        stream = torch.arange(20, dtype=torch.float32)[:, None]
        for part in torch.split(stream, [3, 7, 1, 4, 5]):
            res.update(part, torch.zeros(len(part)))
        x, _ = res.sample()
        assert len(x) == 5 and len(set(x[:, 0].tolist())) == 5
        hits[x[:, 0].long().numpy()] += 1
    assert np.abs(hits / runs - 0.25).max() < 0.05


def test_feature_compactness_metric_from_data_samples():
    metric = METRICS.build(dict(type='FeatureCompactnessMetric',
                                per_class=50,
                                class_frequency=[60, 30, 10]))
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(3, 6) * 10
    for _ in range(4):
        gt = torch.randint(0, 3, (16, 16), generator=g)
        small = gt[::2, ::2]  # the feature map is 8x8: nearest-resized gt
        feat = centers[small].permute(2, 0, 1) + \
            0.3 * torch.randn(6, 8, 8, generator=g)
        metric.process({}, [sample(gt.tolist(), gt.tolist(),
                                   seg_features=PixelData(data=feat))])
    out = metric.evaluate(4)
    assert out['feat/fisher'] > 50 and out['feat/silhouette'] > 0.9
    assert out['feat/silhouette.head'] == pytest.approx(
        out['feat/silhouette.a'])
    assert 'feat/intra.tail' in out and 'feat/intra.c' in out
    assert out['feat/intra.a'] == pytest.approx(6 * 0.09, rel=0.3)
    # a sample without features is skipped
    metric.process({}, [sample([[0]], [[0]])])
    metric.process({}, [sample([[0, 1], [2, 2]], [[0, 1], [2, 2]],
                               seg_features=torch.randn(6, 2, 2))])
    assert set(metric.evaluate(2)) >= {'feat/fisher', 'feat/silhouette'}


def test_record_dir_hook_hands_the_run_log_dir_to_record_writers(tmp_path):
    from types import SimpleNamespace

    from mmseg.evaluation import IoUMetric

    from sar_plugin.engine import LongTailEvalHook
    metric = METRICS.build(dict(type='LongTailIoUMetric'))
    metric.dataset_meta = dict(classes=('a', 'b'))
    loop = SimpleNamespace(evaluator=SimpleNamespace(
        metrics=[IoUMetric(), metric]))
    runner = SimpleNamespace(log_dir=str(tmp_path), val_loop=loop,
                             test_loop=None)
    metric.process({}, [sample([[0, 1]], [[0, 1]])])
    metric.evaluate(1)  # no run log dir yet: nothing written
    assert not (tmp_path / 'longtail_eval').exists()
    LongTailEvalHook().before_val(runner)
    LongTailEvalHook().before_test(runner)  # no test loop: nothing to hand
    metric.process({}, [sample([[0, 1]], [[0, 1]])])
    metric.evaluate(1)
    record = json.load(open(tmp_path / 'longtail_eval' / 'latest.json'))
    assert record['IoU'] == [100.0, 100.0]


def test_auto_class_frequency_without_the_hook_raises_naming_it():
    for kind in ('LongTailIoUMetric', 'FeatureCompactnessMetric'):
        metric = METRICS.build(dict(type=kind, class_frequency='auto',
                                    save_records=False))
        metric.dataset_meta = dict(classes=('a', 'b'))
        with pytest.raises(RuntimeError, match="class_frequency='auto' "
                           r"needs custom_hooks=\[dict\(type="
                           "'LongTailEvalHook'"):
            metric.class_buckets(['a', 'b'])


def test_class_frequency_hook_counts_once_and_hands_the_file(tmp_path):
    """The hook counts the training split of the config (annotations only)
    into the work dir, hands that file to the 'auto' metrics only, and a
    second hook (a rerun) reuses the file."""
    from types import SimpleNamespace

    from sar_plugin.engine import LongTailEvalHook
    root = tmp_path / 'data'
    labels = [np.array([[0, 0, 1], [255, 2, 2]], np.uint8),
              np.array([[1, 1, 1], [0, 255, 255]], np.uint8)]
    for i, label in enumerate(labels):
        (root / 'img').mkdir(parents=True, exist_ok=True)
        (root / 'ann').mkdir(exist_ok=True)
        cv2.imwrite(str(root / 'img' / f'{i}.png'),
                    np.zeros((2, 3, 3), np.uint8))
        cv2.imwrite(str(root / 'ann' / f'{i}.png'), label)
    cfg = Config(dict(default_scope='mmseg', train_dataloader=dict(
        dataset=dict(type='BaseSegDataset', data_root=str(root),
                     metainfo=dict(classes=('a', 'b', 'c')),
                     data_prefix=dict(img_path='img', seg_map_path='ann'),
                     img_suffix='.png', seg_map_suffix='.png',
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='LoadAnnotations'),
                               dict(type='RandomFlip', prob=1.0)]))))
    cfg.filename = 'tiny.py'
    auto = METRICS.build(dict(type='LongTailIoUMetric',
                              class_frequency='auto', save_records=False))
    given = METRICS.build(dict(type='LongTailIoUMetric',
                               class_frequency=[1, 2, 3],
                               save_records=False))
    loop = SimpleNamespace(evaluator=SimpleNamespace(metrics=[auto, given]))
    runner = SimpleNamespace(cfg=cfg, work_dir=str(tmp_path / 'work'),
                             log_dir=str(tmp_path / 'work' / 'log'),
                             val_loop=loop, test_loop=loop)
    LongTailEvalHook().before_val(runner)
    path = auto.class_frequency
    assert osp.dirname(path) == str(tmp_path / 'work')
    assert osp.basename(path).startswith('class_frequency_train_')
    assert given.class_frequency == [1, 2, 3]
    record = json.load(open(path))
    assert record['counts'] == [3, 4, 2] and record['num_samples'] == 2
    assert record['classes'] == ['a', 'b', 'c']
    # a new run in the same work dir reuses the count
    stamp = os.stat(path).st_mtime_ns
    again = METRICS.build(dict(type='LongTailIoUMetric',
                               class_frequency='auto', save_records=False))
    loop.evaluator.metrics = [again]
    LongTailEvalHook().before_test(runner)
    assert again.class_frequency == path
    assert os.stat(path).st_mtime_ns == stamp
    # another data set is another count; no train split is an error
    cfg.train_dataloader.dataset.metainfo = dict(classes=('a', 'b', 'c',
                                                          'd'))
    other = METRICS.build(dict(type='LongTailIoUMetric',
                               class_frequency='auto', save_records=False))
    loop.evaluator.metrics = [other]
    LongTailEvalHook().before_val(runner)
    assert other.class_frequency != path
    assert json.load(open(other.class_frequency))['counts'] == [3, 4, 2, 0]
    cfg.train_dataloader = None
    loop.evaluator.metrics = [METRICS.build(dict(
        type='LongTailIoUMetric', class_frequency='auto'))]
    with pytest.raises(KeyError, match='counts the train_dataloader of the '
                       'config, which has none'):
        LongTailEvalHook().before_val(runner)
