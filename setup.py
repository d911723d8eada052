"""sar_plugin: Semantic Anchor Regularization for MMSegmentation 1.x."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open(osp.join('sar_plugin', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='sar_plugin',
    version=read_version(),
    description='Semantic Anchor Regularization and anchor losses for '
    'long-tail-robust MMSegmentation 1.x models',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['sar_plugin', 'sar_plugin.*']),
    python_requires='>=3.8',
    # torch and mmcv are not pinned exactly: GPU users bring their own builds.
    install_requires=[
        'torch>=1.12',
        'mmengine>=0.10.0,<1.0',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmsegmentation>=1.2.0,<1.3',
        'numpy',
        'opencv-python',
        'ftfy',
        'regex',
    ],
    extras_require={
        'test': ['pytest', 'matplotlib', 'scipy', 'hypothesis'],
        'report': ['matplotlib', 'scikit-learn', 'scipy'],
    },
    zip_safe=False,
)
