"""The README's training table and docs/performance.md's loss table are
the recorded benchmark results in
docs/results/benchmark/ (written by ``make benchmark
BENCH_OUT=docs/results/benchmark``), rendered by
:mod:`sar_bench.report` (benchmarks/sar_bench/), and those results are complete."""
import os.path as osp

from sar_bench.losses import FLOOR, REFERENCE, build_losses
from sar_bench.report import load, loss_markdown, train_markdown

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULTS = osp.join(REPO, 'docs', 'results', 'benchmark')
TRAIN_ROWS = {
    'train_demo': 'demo: FCN ResNet-18-D8 (slim), synthetic',
    'train_camvid': 'CamVid: FCN MobileNetV2-D8',
    'train_cityscapes': 'Cityscapes: DeepLabV3+ R-50-D8',
}


def readme() -> str:
    with open(osp.join(REPO, 'README.md')) as f:
        return f.read()


def test_train_table_is_the_recorded_one():
    results = load(RESULTS, list(TRAIN_ROWS))
    assert train_markdown(results, TRAIN_ROWS, REPO) in readme()
    for name, result in results.items():
        assert result['mode'] == 'train' and result['device'] == 'cpu'
        assert [row['variant'] for row in result['rows']] == [
            'plain', 'anchors', 'anchors, no label checks']
        assert result['config'].startswith('configs/') and \
            osp.basename(result['config']).startswith('sar_')


def test_loss_table_is_the_recorded_one():
    """docs/performance.md carries the loss table (the README links it)."""
    result = load(RESULTS, ['loss'])['loss']
    with open(osp.join(REPO, 'docs', 'performance.md')) as f:
        assert loss_markdown(result) in f.read()
    assert [(t['classes'], t['dtype']) for t in result['tables']] == [
        (19, 'float32'), (19, 'bfloat16'), (150, 'float32'),
        (150, 'bfloat16')]
    assert result['shape'] == [8, 256, 64, 128]
    expected = [FLOOR, REFERENCE] + list(build_losses(3, 4))
    for table in result['tables']:
        assert [row['loss'] for row in table['rows']] == expected
