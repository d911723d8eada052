"""Every command-line tool explains itself: ``--help`` works, the
description is the module docstring (never a sentence cut at a line end)
and every option has a help text."""
import ast
import glob
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

TOOLS = sorted(p for folder in ('tools', 'benchmarks')
               for p in glob.glob(osp.join(REPO_ROOT, folder, '**', '*.py'),
                                  recursive=True)
               if 'ArgumentParser(' in open(p).read())


def test_tools_are_found():
    names = {osp.relpath(p, REPO_ROOT) for p in TOOLS}
    assert {'tools/train.py', 'tools/test.py', 'tools/sweep.py',
            'tools/longtail_eval.py', 'tools/longtail_report.py',
            'tools/demo.py', 'tools/analysis/class_frequency.py',
            'tools/dataset_converters/camvid.py',
            'tools/device_check.py', 'benchmarks/run.py'} <= names


@pytest.mark.parametrize('tool', TOOLS,
                         ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_every_option_has_help_and_the_description_is_whole(tool):
    tree = ast.parse(open(tool).read())
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, 'attr', '')
        keywords = {k.arg: k.value for k in node.keywords}
        if name == 'add_argument':
            flags = [a.value for a in node.args if isinstance(a, ast.Constant)]
            assert 'help' in keywords, f'{flags} of {tool} has no help'
        if name == 'ArgumentParser' and 'description' in keywords:
            text = ast.unparse(keywords['description'])
            # `__doc__.split('\n')[0]` cuts the docstring's first sentence
            assert '.split(' not in text, f'{tool}: description {text}'


@pytest.mark.parametrize('tool', ['tools/longtail_eval.py',
                                  'tools/longtail_report.py',
                                  'tools/demo.py', 'tools/sweep.py',
                                  'tools/device_check.py',
                                  'benchmarks/run.py',
                                  'tools/analysis/class_frequency.py'])
def test_help_runs(tool, tmp_path):
    # from another directory: the tools need the installed package, never
    # the working directory or a sys.path edit
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, tool),
                           '--help'], capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith('usage: ')
    assert '--' in proc.stdout
