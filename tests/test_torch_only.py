"""The losses and anchors work with torch alone (issue: losses without
MMSeg): in a process where importing mmseg, mmcv or mmengine raises, the
plain-PyTorch example trains and every loss class builds and runs."""
import os.path as osp
import subprocess
import sys
import textwrap

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

BLOCK = textwrap.dedent('''
    import importlib.abc
    import sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('mmseg', 'mmcv', 'mmengine'):
                raise ModuleNotFoundError(f'blocked for this test: {name}')
            return None

    sys.meta_path.insert(0, Block())
    for blocked in ('mmseg', 'mmcv', 'mmengine'):
        try:
            __import__(blocked)
        except ImportError:
            pass
        else:
            raise SystemExit(f'{blocked} imported although blocked')
''')


def run_blocked(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, '-c', BLOCK + textwrap.dedent(code)], cwd=REPO,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_plain_pytorch_example_trains_without_mmseg():
    out = run_blocked('''
        import math, runpy
        example = runpy.run_path('examples/plain_pytorch.py',
                                 run_name='example')
        history = example['main'](steps=20)
        assert len(history) == 20 and all(map(math.isfinite, history))
        first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
        assert last < 0.8 * first, (first, last)
        assert not any(m.split('.')[0] in ('mmseg', 'mmcv', 'mmengine')
                       for m in sys.modules)
        print('ok', first, last)
    ''')
    assert out.strip().splitlines()[-1].startswith('ok')


def test_every_loss_builds_and_runs_without_mmseg():
    out = run_blocked('''
        import torch
        import sar_plugin
        from sar_plugin import build_anchors, losses
        assert not hasattr(losses, 'build_anchor_losses')  # MMSeg side
        k, c = 4, 8
        clf = torch.nn.Conv2d(c, k, 1)
        feat = torch.randn(2, c, 5, 6, requires_grad=True)
        label = torch.randint(0, k, (2, 5, 6))
        label[0, 0] = 255
        names = []
        for cls in losses.FEATURE_LOSSES:
            loss = cls(num_classes=k, channels=c)
            out = loss(feat, label, classifier=clf)
            terms = out.values() if isinstance(out, dict) else [out]
            total = sum(terms)
            total.backward()
            assert torch.isfinite(total), cls.__name__
            names.append(cls.__name__)
        ce = losses.ClsCrossEntropyLoss()
        ce(torch.randn(3, k), torch.tensor([0, 1, 2]))
        for norm in ('BN', 'SyncBN', 'GN', 'LN'):
            cfg = dict(type=norm, num_groups=2) if norm == 'GN' \\
                else dict(type=norm)
            sar = losses.SARLoss(num_classes=k, channels=c, norm_cfg=cfg)
            sar(feat, label, classifier=clf)
        assert build_anchors('simplex', k, c, 0).shape == (k, c)
        assert not any(m.split('.')[0] in ('mmseg', 'mmcv', 'mmengine')
                       for m in sys.modules)
        print(' '.join(names))
    ''')
    assert out.split() == ['SARLoss', 'ANCMLoss', 'HALLoss', 'LDMATLoss',
                           'LargeMarginLoss', 'CenterLoss']


def test_loss_benchmark_runs_without_mmseg(tmp_path):
    out = tmp_path / 'loss.json'
    run_blocked(f'''
        import runpy
        sys.argv = ['benchmarks/run.py', '--out', {str(out)!r}, 'loss',
                    '--shape', '1', '8', '4', '4', '--classes', '4',
                    '--dtypes', 'float32', '--rounds', '1',
                    '--nca-samples', '0']
        sys.path.insert(0, 'benchmarks')  # as when run as a script
        runpy.run_path('benchmarks/run.py', run_name='__main__')
        assert not any(m.split('.')[0] in ('mmseg', 'mmcv', 'mmengine')
                       for m in sys.modules)
    ''')
    assert out.exists()
