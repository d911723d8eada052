"""Shared test set-up: MMSeg's modules and the plug-in registered once, on
the CPU, with a fixed seed per test; the tests listed in ``slow_tests.txt``
marked ``slow`` (left out of ``make test-fast``)."""
import os
import socket
import warnings

import pytest
import torch

# tiny tensors: one thread is as fast as two on an idle machine and far
# faster on a shared one (measured); subprocesses inherit the setting
os.environ.setdefault('OMP_NUM_THREADS', '1')

from mmseg.utils import register_all_modules  # noqa: E402

import sar_plugin  # noqa: E402,F401

register_all_modules(init_default_scope=True)
torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'slow_tests.txt')


def slow_test_ids() -> set:
    """The node ids in ``slow_tests.txt`` (``tests/<file>::<test>``, one a
    line, ``#`` comments); a test without ``[...]`` names all its
    parametrisations."""
    with open(SLOW_TESTS) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return {line for line in lines if line}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    slow = slow_test_ids()
    modules = {}
    for item in items:
        path = os.path.relpath(str(item.path), REPO_ROOT).replace(os.sep, '/')
        node = path + '::' + item.nodeid.partition('::')[2]
        if node in slow or node.split('[', 1)[0] in slow:
            item.add_marker(pytest.mark.slow)
        if getattr(item, 'module', None) is not None:
            modules[path] = item.module
    for node in sorted(slow):  # a renamed test would silently turn fast
        path, _, name = node.partition('::')
        name = name.split('::', 1)[0].split('[', 1)[0]
        if path in modules and not hasattr(modules[path], name):
            warnings.warn(pytest.PytestWarning(
                f'tests/slow_tests.txt lists {node}, which {path} does '
                'not define'))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def free_port() -> int:
    """A free TCP port on the loopback interface (for gloo rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
