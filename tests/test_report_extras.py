"""The long-tail report explains itself: a missing optional dependency is
named with its install command in the document and drawn in the figure; a
palette whose neighbouring classes are told apart, one colour per class in
every figure; the run table shows the iteration / epoch evaluated, from the
record or the checkpoint's meta."""
import html
import json
import os
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from test_report import record_run

from sar_plugin.report import load_run, make_report
from sar_plugin.report.palette import colour_of, min_distance, palette, to_lab
from sar_plugin.report.plots import (INSTALL_REPORT, TSNE_MIN_FEATURES,
                                     projection_figure)
from sar_plugin.report.runs import RunRecord

GT = [[0, 0, 0, 0, 1, 1, 2, 3, 255]]
CAMVID = ('Sky', 'Building', 'Pole', 'Road', 'Sidewalk', 'Tree',
          'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist')


@pytest.fixture(scope='module')
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('extras')
    record_run(str(root / 'baseline'), [[[0, 0, 0, 0, 0, 1, 2, 2, 3]]], [GT],
               spread=3.0)
    record_run(str(root / 'sar'), [[[0, 0, 0, 3, 1, 1, 2, 3, 0]]], [GT],
               spread=0.3)
    return root


@pytest.fixture
def no_sklearn(monkeypatch):
    """scikit-learn made unavailable: ``import sklearn`` (and its
    submodules) raises ImportError, as in an environment without the
    ``report`` extra."""
    for name in [m for m in sys.modules if m.split('.')[0] == 'sklearn']:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'sklearn', None)
    monkeypatch.setitem(sys.modules, 'sklearn.manifold', None)
    with pytest.raises(ImportError):
        import sklearn.manifold  # noqa: F401


def figure_texts(fig):
    return [t.get_text() for t in fig.texts] + [
        t.get_text() for ax in fig.axes for t in ax.texts]


def run_with(classes, features, labels, name='run'):
    k = len(classes)
    return RunRecord(
        name=name, source='', task='segmentation', score_name='IoU',
        classes=list(classes), scores=np.zeros(k), frequency=None,
        eval_counts=np.ones(k), buckets=None, bucket_scores={}, summary={},
        feature_sample=(np.asarray(features, np.float32),
                        np.asarray(labels, np.int64)))


def test_install_command_is_the_one_pyproject_declares():
    text = open(osp.join(REPO_ROOT, 'pyproject.toml')).read()
    name = re.search(r'^name = "([^"]+)"', text, re.M).group(1)
    extras = re.search(r'^report = \[([^\]]*)\]', text, re.M).group(1)
    assert 'scikit-learn' in extras
    assert INSTALL_REPORT == f'pip install "{name}[report]"'


def test_report_without_sklearn_names_the_extra_in_document_and_figure(
        two_runs, tmp_path, no_sklearn, capsys):
    out = tmp_path / 'report'
    files = make_report([str(two_runs / 'baseline'), str(two_runs / 'sar')],
                        str(out))
    printed = capsys.readouterr().out
    assert f'scikit-learn is not installed (the "report" extra): ' \
        f'{INSTALL_REPORT}' in printed
    md = open(files['markdown']).read()
    # said once, under the plots, with the extra and the command
    assert md.count('t-SNE not drawn: scikit-learn is not installed') == 1
    assert f'`report` extra: `{INSTALL_REPORT}`' in md
    assert 'pip install -e ".[report]"' in md
    plots_at = md.index('## Plots')
    assert plots_at < md.index('scikit-learn is not installed') < \
        md.index('](features_0_baseline.png)')
    # every feature figure's caption says it is PCA only, and why
    assert md.count('PCA only: scikit-learn, which t-SNE needs, is not '
                    'installed (see above)') == 2 * 2  # alt text, caption
    page = html.unescape(open(files['html']).read())
    assert 'scikit-learn is not installed' in page
    assert INSTALL_REPORT in page
    assert 'fewer than 5' not in md and 'missing or' not in md

    # the empty panel says it: drawn text, not a blank half
    run = load_run(str(two_runs / 'sar'))
    fig, skipped = projection_figure(run)
    assert skipped.reason == 'missing'
    texts = '\n'.join(figure_texts(fig))
    assert 'scikit-learn is not installed' in texts
    assert INSTALL_REPORT in texts and '"report" extra' in texts
    img = cv2.imread(files['projection_1'], cv2.IMREAD_GRAYSCALE)
    right = img[:, img.shape[1] // 2 + 20:]
    assert (right < 100).sum() > 200, 'the t-SNE half is empty'


def test_few_features_is_its_own_message():
    pytest.importorskip('sklearn')
    run = run_with(('a', 'b'), np.eye(4, 3), [0, 0, 1, 1], name='tiny')
    fig, skipped = projection_figure(run)
    assert skipped.reason == 'few'
    texts = '\n'.join(figure_texts(fig))
    assert 'only 4 sampled features' in texts
    assert f'at least {TSNE_MIN_FEATURES}' in texts
    assert 'scikit-learn' not in texts and 'pip install' not in texts
    assert 'tiny' in skipped.document and 'only 4' in skipped.document


def test_no_tsne_says_turned_off_not_missing(two_runs, tmp_path):
    files = make_report([str(two_runs / 'sar')], str(tmp_path / 'r'),
                        use_tsne=False)
    md = open(files['markdown']).read()
    assert 't-SNE turned off (`--no-tsne`)' in md
    assert 'pip install' not in md
    fig, skipped = projection_figure(load_run(str(two_runs / 'sar')),
                                     use_tsne=False)
    assert skipped.reason == 'off'
    assert any('--no-tsne' in t for t in figure_texts(fig))


def lab_distance(a, b):
    return float(np.linalg.norm(to_lab(np.array(a)) - to_lab(np.array(b))))


def test_palette_tells_neighbouring_classes_apart():
    from matplotlib import colormaps
    tab20 = colormaps['tab20']
    for n, far in ((len(CAMVID), 40), (19, 30), (150, 15)):
        colours = palette(n)
        assert len(set(colours)) == n
        near = min(lab_distance(colours[i], colours[i + 1])
                   for i in range(n - 1))
        assert near > far, (n, near)
    # CamVid's Sky/Building and Pole/Road: a light/dark pair of one hue
    # under tab20, well apart now
    for i in (0, 2):
        old = lab_distance(tab20(i)[:3], tab20(i + 1)[:3])
        new = lab_distance(colour_of(i), colour_of(i + 1))
        assert new > old + 15, (CAMVID[i], CAMVID[i + 1], old, new)
    # every colour of a 20-class report differs from every other one
    assert min_distance(palette(20)) > 20
    assert min_distance(palette(20)) > min_distance(
        [tab20(i)[:3] for i in range(20)])
    # an index keeps its colour whatever the number of classes
    assert palette(11) == palette(150)[:11]
    assert palette(10) == [tuple(colormaps['tab10'](i)[:3])
                           for i in range(10)]


def test_same_class_same_colour_in_every_figure():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(60, 4))
    # the second run has no feature of class 1: class 2 must not shift
    # to class 1's colour
    labels = np.arange(60) % 11
    a = run_with(CAMVID, feats, labels, 'a')
    b = run_with(CAMVID, feats, np.where(labels == 1, 3, labels), 'b')

    def colours(run):
        fig, _ = projection_figure(run, use_tsne=False)
        pca = fig.axes[0]
        return {c.get_label(): tuple(np.round(c.get_facecolor()[0][:3], 6))
                for c in pca.collections}

    ca, cb = colours(a), colours(b)
    assert 'Building' in ca and 'Building' not in cb
    shared = set(ca) & set(cb)
    assert len(shared) == 10
    for cls in shared:
        assert ca[cls] == cb[cls], cls
        assert ca[cls] == tuple(np.round(colour_of(CAMVID.index(cls)), 6))
    assert len(set(ca.values())) == 11


def test_record_iteration_is_shown(tmp_path):
    log = tmp_path / 'trained' / '20261124_000000' / 'longtail_eval'
    log.mkdir(parents=True)
    (log / 'latest.json').write_text(json.dumps(dict(
        classes=['x', 'y'], score='IoU', IoU=[10.0, 20.0], iter=7)))
    files = make_report([str(tmp_path / 'trained')], str(tmp_path / 'out'),
                        use_tsne=False)
    md = open(files['markdown']).read()
    assert '| trained | iter 7 | record |' in md
    numbers = json.load(open(files['json']))
    assert numbers['evaluated']['trained']['iter'] == 7


def checkpoint_test_run(root, name, load_from=None, where='vis_data'):
    """A run dir as ``tools/test.py CONFIG CHECKPOINT`` leaves it: records
    without an iteration (``eval_1``) and the config MMEngine dumped, whose
    ``load_from`` is the checkpoint."""
    run_dir = osp.join(root, name)
    record_run(run_dir, [[[0, 0, 0, 0, 1, 1, 2, 3, 0]]], [GT], spread=0.5)
    log_dir = osp.join(run_dir, '20261124_120000')
    for sub in ('longtail_eval', 'feature_eval'):
        path = osp.join(log_dir, sub, 'latest.json')
        record = json.load(open(path))
        record['iter'] = None  # no training iteration: a checkpoint's test
        json.dump(record, open(path, 'w'))
    if load_from is not None and where == 'vis_data':
        # LocalVisBackend's dump of the config
        os.makedirs(osp.join(log_dir, 'vis_data'))
        with open(osp.join(log_dir, 'vis_data', 'config.py'), 'w') as f:
            f.write("default_scope = 'mmseg'\n"
                    f"load_from = '{load_from}'\nresume = False\n")
    elif load_from is not None:  # the config the runner logs
        with open(osp.join(log_dir, '20261124_120000.log'), 'w') as f:
            f.write("2026/11/24 12:00:00 - mmengine - INFO - Config:\n"
                    f"default_scope = 'mmseg'\nload_from = '{load_from}'\n"
                    "resume = False\n\n2026/11/24 12:00:01 - mmengine - "
                    "INFO - Distributed training is not used\n")
    return run_dir


def save_checkpoint(path, **meta):
    torch.save(dict(meta=dict(meta, seed=0, mmengine_version='0.10.7'),
                    state_dict=dict(w=torch.zeros(3))), str(path))
    return str(path)


def test_run_table_reads_the_checkpoint_meta(tmp_path):
    root = str(tmp_path)
    # iteration-based: the meta says 1234, the file name nothing
    best = save_checkpoint(tmp_path / 'best_model.pth', iter=1234, epoch=0)
    # epoch-based: epoch 12 after 3000 iterations
    ep = save_checkpoint(tmp_path / 'epoch_12.pth', iter=3000, epoch=12)
    # a checkpoint that was deleted: its name still tells
    gone = str(tmp_path / 'iter_500.pth')
    runs = [checkpoint_test_run(root, 'meta', best),
            checkpoint_test_run(root, 'epochs', ep, where='log'),
            checkpoint_test_run(root, 'gone', gone),
            checkpoint_test_run(root, 'unknown'),
            checkpoint_test_run(root, 'given')]
    given = save_checkpoint(tmp_path / 'given.pth', iter=80, epoch=0)
    files = make_report(runs, str(tmp_path / 'out'), use_tsne=False,
                        checkpoints=['-', None, '-', '-', given])
    md = open(files['markdown']).read()
    table = md[md.index('| run | evaluated at | from | record |'):
               md.index('## Summary')]
    assert f'| meta | iter 1234 | checkpoint meta of `{best}` |' in table
    assert f'| epochs | epoch 12 (iter 3000) | checkpoint meta of `{ep}` |' \
        in table
    assert f'| gone | iter 500 | checkpoint name of `{gone}` (the ' \
        'checkpoint file is not there any more) |' in table
    assert '| unknown | n/a | unknown (the record has no iteration' in table
    assert 'give it with tools/longtail_report.py --checkpoints) |' in table
    assert f'| given | iter 80 | checkpoint meta of `{given}` |' in table
    assert 'iteration n/a' not in md
    numbers = json.load(open(files['json']))['evaluated']
    assert numbers['epochs'] == dict(iter=3000, epoch=12,
                                     source='checkpoint meta',
                                     checkpoint=ep, note=None)
    assert numbers['unknown']['iter'] is None


def test_tool_checkpoints_option(tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'longtail_report_tool', osp.join(REPO_ROOT, 'tools',
                                         'longtail_report.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    run = checkpoint_test_run(str(tmp_path), 'tested')
    ckpt = save_checkpoint(tmp_path / 'iter_40.pth', iter=40, epoch=0)
    tool.main([run, '--out', str(tmp_path / 'out'), '--no-tsne',
               '--checkpoints', ckpt])
    md = open(tmp_path / 'out' / 'report.md').read()
    assert f'| tested | iter 40 | checkpoint meta of `{ckpt}` |' in md
    with pytest.raises(ValueError, match='--checkpoints: 2 checkpoints'):
        tool.main([run, '--out', str(tmp_path / 'out'),
                   '--checkpoints', ckpt, ckpt])
