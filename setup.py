"""Shim for tools and habits that still call ``setup.py``
(``python setup.py develop``, ``pip install -e .`` with an old pip).

Everything is declared in ``pyproject.toml``; this file adds nothing.
"""
from setuptools import setup

setup()
