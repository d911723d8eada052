"""Shared test set-up: MMSeg's modules and the plug-in registered once, on
the CPU, with a fixed seed per test."""
import os
import socket

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


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def free_port() -> int:
    """A free TCP port on the loopback interface (for gloo rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
