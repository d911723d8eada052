"""Check the compiled part of the stack before anything imports it.

``pip install sar_plugin`` never installs torch or mmcv (a wrong torch build
is several GB, mmcv compiles for ~25 minutes): the user brings the builds
for their machine. Without this check a missing or ops-less mmcv surfaces
deep inside ``import mmseg`` as ``No module named 'mmcv._ext'``; here it is
an :class:`ImportError` naming what is wrong and the command that fixes it.
"""
import importlib
import importlib.util
from typing import Callable, Tuple


#: mmcv versions MMSegmentation 1.2.x accepts (its own assert in
#: ``mmseg/__init__.py``).
MMCV_RANGE: Tuple[str, str] = ('2.0.0rc4', '2.2.0')
MMCV_INSTALL = ('pip install -U openmim && mim install "mmcv>=2.0.0,<2.2.0"  '
                '(or build it: MMCV_WITH_OPS=1 pip install '
                '--no-build-isolation mmcv==2.1.0)')
TORCH_INSTALL = ('install the PyTorch build for your machine first, see '
                 'https://pytorch.org/get-started/locally/ '
                 '(CPU: pip install torch --index-url '
                 'https://download.pytorch.org/whl/cpu)')


def mmseg_available() -> bool:
    """Is MMSegmentation installed? (Not: does it import.) Without it
    ``import sar_plugin`` gives the torch-only core, the losses and the
    anchors; with it, a broken stack raises :func:`check_stack`'s error."""
    try:
        return importlib.util.find_spec('mmseg') is not None
    except (ImportError, ValueError):
        return False


def check_stack(import_module: Callable = importlib.import_module) -> None:
    """Raise :class:`ImportError` with the fix when torch, mmcv or mmcv's
    compiled ops are missing, or mmcv is outside :data:`MMCV_RANGE`.

    Args:
        import_module: The importer (tests pass one that fails on purpose).
    """
    try:
        import_module('torch')
    except ImportError as err:
        raise ImportError(f'sar_plugin needs PyTorch ({err}); '
                          f'{TORCH_INSTALL}') from err
    try:
        mmcv = import_module('mmcv')
    except ImportError as err:
        raise ImportError(f'sar_plugin needs mmcv with its compiled ops '
                          f'({err}); install it with: {MMCV_INSTALL}') from err
    from packaging.version import Version
    version = getattr(mmcv, '__version__', '0')
    low, high = MMCV_RANGE
    if not Version(low) <= Version(version) < Version(high):
        raise ImportError(f'mmcv {version} is installed but MMSegmentation '
                          f'1.2 needs mmcv>={low},<{high}; install it with: '
                          f'{MMCV_INSTALL}')
    try:
        import_module('mmcv.ops')
    except (ImportError, OSError) as err:
        raise ImportError(
            f'mmcv {version} is installed without its compiled ops ({err}): '
            'this is mmcv-lite or a build without MMCV_WITH_OPS=1, and '
            'MMSegmentation 1.x imports mmcv.ops. Replace it (pip uninstall '
            f'-y mmcv-lite mmcv) with: {MMCV_INSTALL}') from err
