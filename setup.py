"""Shim for tools and habits that still call ``setup.py``
(``python setup.py develop``, ``pip install -e .`` with an old pip).

Everything is declared in ``pyproject.toml``; this file only refuses a
setuptools too old to read it. Before 61, setuptools ignores the
``[project]`` table and installs a package named ``UNKNOWN`` with exit code
0 (what ``pip install --no-build-isolation`` does after ``pip install -U
openmim``, which pins setuptools 60.2); before 64 it cannot make an
editable install.
"""
import setuptools
from setuptools import setup

_NEEDED = (64, 0)


def _version(text: str) -> tuple:
    parts = []
    for part in text.split('.')[:2]:
        digits = ''.join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


if _version(setuptools.__version__) < _NEEDED:
    raise SystemExit(
        f'sar_plugin needs setuptools >= 64 to build, found '
        f'{setuptools.__version__} (openmim pins 60.2). Run\n'
        '    python -m pip install -U "setuptools>=64,<82" wheel\n'
        'and install again, or drop --no-build-isolation.')

setup()
