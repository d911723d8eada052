"""LongTailIoUMetric against a hand-computed confusion matrix."""

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample


def sample(pred, gt):
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.tensor(gt)[None])
    return s.to_dict()


def test_per_class_iou_with_ignore_and_absent_class():
    metric = METRICS.build(dict(type='LongTailIoUMetric', ignore_index=255))
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd'))
    gt = [[0, 0, 1, 1], [2, 2, 255, 0]]
    pred = [[0, 1, 1, 1], [2, 0, 3, 0]]
    metric.process({}, [sample(pred, gt)])
    out = metric.evaluate(1)
    # by hand (ignored pixel dropped):
    # a: gt {(0,0),(0,1),(1,3)} pred {(0,0),(1,1),(1,3)} -> I=2, U=4
    # b: gt {(0,2),(0,3)} pred {(0,1),(0,2),(0,3)} -> I=2, U=3
    # c: gt {(1,0),(1,1)} pred {(1,0)} -> I=1, U=2
    # d: absent from gt and (after ignoring) from pred -> no value, not logged
    assert out['IoU.a'] == 50.0
    assert out['IoU.b'] == round(200 / 3, 2)
    assert out['IoU.c'] == 50.0
    assert 'IoU.d' not in out  # absent: not logged
    assert out['Acc.a'] == round(200 / 3, 2) and out['Acc.c'] == 50.0
    assert float(out['mIoU']) == pytest.approx(
        round(np.nanmean([0.5, 2 / 3, 0.5]) * 100, 2), abs=1e-4)
    assert float(out['aAcc']) == pytest.approx(round(5 / 7 * 100, 2), abs=1e-4)


def test_bad_class_frequency_files_name_the_file_and_the_metric(tmp_path):
    """Issue 21, case 11: truncated or wrong class-frequency files."""
    import json as _json

    from mmseg.registry import METRICS
    truncated = tmp_path / 'freq_truncated.json'
    truncated.write_text('{"classes": ["a", "b"], "counts": [3, ')
    with pytest.raises(ValueError) as err:
        METRICS.build(dict(type='LongTailIoUMetric',
                           class_frequency=str(truncated)))
    assert 'LongTailIoUMetric: class_frequency' in str(err.value)
    assert str(truncated) in str(err.value) and 'not valid JSON' in \
        str(err.value)
    short = tmp_path / 'freq_short.json'
    short.write_text(_json.dumps(dict(counts=[5, 3, 1])))
    metric = METRICS.build(dict(type='LongTailIoUMetric',
                                class_frequency=str(short)))
    with pytest.raises(ValueError) as err:
        metric.class_buckets(['a', 'b', 'c', 'd'])
    assert 'LongTailIoUMetric: class_frequency' in str(err.value)
    assert str(short) in str(err.value)
    assert 'has no entry for classes' in str(err.value)
