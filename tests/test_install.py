"""Installing sar_plugin beside an existing MMSegmentation stack.

The package must never pull or build torch or mmcv: a fresh venv that
already has the stack (here: this venv's site-packages through a ``.pth``
file) installs it with ``pip install -e . --no-build-isolation`` and with
``pip install . --no-deps``, and imports it. Without mmcv's compiled ops,
``import sar_plugin`` names the problem and the command that fixes it.
"""
import os
import re
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from sar_plugin import _stack

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE_FILES = ('pyproject.toml', 'setup.py', 'README.md', 'LICENSE',
                 'NOTICE', 'model-index.yml')


# ------------------------------------------------------------ check_stack


def importer(fail=None, versions=None):
    """An ``import_module`` that fails on ``fail`` and gives fake modules
    with ``__version__`` from ``versions``."""
    versions = versions or {}

    def import_module(name):
        if name == fail:
            raise ModuleNotFoundError(f"No module named '{name}'")
        module = type(sys)(name)
        module.__version__ = versions.get(name, '2.1.0')
        return module
    return import_module


def test_check_stack_accepts_the_supported_range():
    for version in ('2.0.0rc4', '2.0.1', '2.1.0', '2.1.0+cu118'):
        _stack.check_stack(importer(versions={'mmcv': version}))


@pytest.mark.parametrize('fail, expected', [
    ('torch', 'https://pytorch.org/get-started/locally/'),
    ('mmcv', 'mim install "mmcv>=2.0.0,<2.2.0"'),
    ('mmcv.ops', 'without its compiled ops'),
])
def test_check_stack_names_what_is_missing_and_the_fix(fail, expected):
    with pytest.raises(ImportError) as err:
        _stack.check_stack(importer(fail=fail))
    assert expected in str(err.value)
    assert f"No module named '{fail}'" in str(err.value)


@pytest.mark.parametrize('version', ['1.7.2', '2.0.0rc3', '2.2.0', '2.3.1'])
def test_check_stack_refuses_mmcv_outside_mmseg_range(version):
    with pytest.raises(ImportError, match=f'mmcv {version} is installed but '
                       r'MMSegmentation 1.2 needs mmcv>=2.0.0rc4,<2.2.0'):
        _stack.check_stack(importer(versions={'mmcv': version}))


def test_import_without_mmcv_ops_names_mmcv_lite_and_the_command():
    """The real import chain, with mmcv's compiled extension hidden as in
    mmcv-lite (``mmcv.ops`` loads ``mmcv._ext``)."""
    code = textwrap.dedent('''
        import importlib.abc, sys
        class NoOps(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == 'mmcv._ext':
                    raise ModuleNotFoundError("No module named 'mmcv._ext'")
        sys.meta_path.insert(0, NoOps())
        import sar_plugin
    ''')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('ImportError: mmcv 2.1.0 is installed without '
                           "its compiled ops (No module named 'mmcv._ext')")
    assert 'mmcv-lite' in last and 'mim install' in last


# ------------------------------------------------------------ installs


def stack_venv(tmp_path, name):
    """A fresh venv (own pip and setuptools) that sees this venv's stack
    through a ``.pth`` file, as a user's MMSeg environment would have it."""
    venv = tmp_path / name
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True,
                   timeout=300)
    python = str(venv / 'bin' / 'python')
    site = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
         '["purelib"])'], check=True, capture_output=True, text=True
    ).stdout.strip()
    # the stack without this venv's own sar_plugin install, so that pip in
    # the new venv neither finds nor uninstalls it
    stack = tmp_path / f'{name}-stack'
    stack.mkdir()
    purelib = sysconfig.get_paths()['purelib']
    for entry in os.listdir(purelib):
        if 'sar_plugin' not in entry.replace('-', '_').lower():
            os.symlink(osp.join(purelib, entry), stack / entry)
    with open(osp.join(site, 'zz_mmseg_stack.pth'), 'w') as f:
        f.write(f'{stack}\n')
    return python


def package_copy(tmp_path):
    """The files a source distribution of sar_plugin holds."""
    src = tmp_path / 'src'
    src.mkdir()
    for name in PACKAGE_FILES:
        shutil.copy(osp.join(REPO, name), src / name)
    # .mim links to configs/ and tools/
    for folder in ('sar_plugin', 'configs', 'tools'):
        shutil.copytree(osp.join(REPO, folder), src / folder, symlinks=True,
                        ignore=shutil.ignore_patterns('__pycache__'))
    return src


def pip(python, *args, cwd):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1')
    proc = subprocess.run([python, '-m', 'pip', 'install', *args],
                          capture_output=True, text=True, timeout=900,
                          cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # never a torch, mmcv or CUDA download, whatever the resolver does
    for word in ('torch-', 'mmcv-', 'nvidia'):
        assert f'Downloading {word}' not in proc.stdout, proc.stdout
    return proc.stdout


def imported_from(python, tmp_path):
    code = ('import sar_plugin, os.path as osp; from mmseg.registry import '
            'MODELS; assert MODELS.get("SARHead") and MODELS.get("SARLoss");'
            ' print(osp.dirname(sar_plugin.__file__), sar_plugin.__version__,'
            ' osp.isfile(osp.join(osp.dirname(sar_plugin.__file__), '
            '"py.typed")))')
    proc = subprocess.run([python, '-c', code], capture_output=True,
                          text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, version, typed = proc.stdout.split()
    return where, version, typed == 'True'


def test_editable_install_without_build_isolation(tmp_path):
    python = stack_venv(tmp_path, 'venv')
    src = package_copy(tmp_path)
    out = pip(python, '--no-build-isolation', '-e', str(src), cwd=tmp_path)
    assert 'uninstall' not in out.lower()
    assert re.search(r'Successfully installed sar[-_]plugin-', out), out
    where, version, typed = imported_from(python, tmp_path)
    assert where == str(src / 'sar_plugin')
    assert version == _stack_version() and typed


def test_plain_install_without_dependencies(tmp_path):
    python = stack_venv(tmp_path, 'venv')
    src = package_copy(tmp_path)
    out = pip(python, '--no-deps', str(src), cwd=tmp_path)
    assert re.search(r'Successfully installed sar[-_]plugin-', out), out
    where, version, typed = imported_from(python, tmp_path)
    assert where.startswith(str(tmp_path / 'venv'))
    assert version == _stack_version() and typed
    meta = subprocess.run(
        [python, '-c', 'import importlib.metadata as m; d = m.metadata('
         '"sar_plugin"); print(d["License"]); print(sorted(m.requires('
         '"sar_plugin")))'], capture_output=True, text=True, check=True)
    assert meta.stdout.splitlines()[0] == 'Apache-2.0'
    requires = meta.stdout.splitlines()[1]
    assert "'mmsegmentation" in requires
    assert "'torch" not in requires and "'mmcv" not in requires
    # what mim reads: the model index and the configs it names, inside the
    # installed package
    mim = osp.join(where, '.mim')
    assert not osp.islink(osp.join(mim, 'configs'))  # copied, not linked
    with open(osp.join(mim, 'model-index.yml')) as f:
        imports = [line.split('- ')[1].strip() for line in f
                   if line.strip().startswith('- configs/')]
    assert imports and all(osp.isfile(osp.join(mim, i)) for i in imports)
    assert osp.isfile(osp.join(
        mim, 'configs', 'cityscapes',
        'sar_deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'))
    assert osp.isfile(osp.join(mim, 'configs', '_base_', 'longtail_eval.py'))


def _stack_version():
    import sar_plugin
    return sar_plugin.__version__


# ------------------------------------------------------------ openmim
OFFLINE = ('No matching distribution found', 'Could not find a version',
           'NewConnectionError', 'Temporary failure in name resolution',
           'Network is unreachable', 'ConnectTimeout', 'ReadTimeout')
DEMO_SAR = 'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py'


def run(args, cwd, timeout=900):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1',
               OMP_NUM_THREADS='1', COLUMNS='250')
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def test_documented_installs_and_mim_after_installing_openmim(tmp_path):
    """A user's environment: `pip install -U openmim` first (from the
    package index; its dependencies pin setuptools 60.2, without
    ``wheel``), then the documented commands (docs/install.md)."""
    from test_tools import cli_options, tiny_options

    python = stack_venv(tmp_path, 'venv')
    proc = run([python, '-m', 'pip', 'install', '-U', 'openmim'], tmp_path)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        if any(word in text for word in OFFLINE):
            pytest.skip('openmim cannot be installed: no package index')
        raise AssertionError(text[-3000:])
    mim = osp.join(osp.dirname(python), 'mim')
    src = package_copy(tmp_path)
    old = run([python, '-c', 'import setuptools; print(setuptools.'
               '__version__)'], tmp_path).stdout.strip()

    # 1. without build isolation, an old setuptools is refused by name
    # (setuptools < 61 would install a package called UNKNOWN, exit 0)
    proc = run([python, '-m', 'pip', 'install', '--no-deps',
                '--no-build-isolation', str(src)], tmp_path)
    if tuple(int(p) for p in old.split('.')[:1]) < (64, ):
        assert proc.returncode != 0
        text = proc.stdout + proc.stderr
        assert 'sar_plugin needs setuptools >= 64' in text, text[-3000:]
        assert 'pip install -U "setuptools>=64,<82" wheel' in text
        assert 'UNKNOWN' not in text

    # 2. the regular install (isolated build): mim finds the model index,
    # the configs and the tools in the package
    pip(python, '--no-deps', str(src), cwd=tmp_path)
    proc = run([mim, 'search', 'sar_plugin'], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128' in proc.stdout
    opts = cli_options(tiny_options(str(tmp_path / 'data'))) + [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2']
    work = tmp_path / 'work'
    proc = run([mim, 'train', 'sar_plugin', DEMO_SAR, '--work-dir',
                str(work), '--cfg-options', *opts], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert osp.join('sar_plugin', '.mim', 'tools', 'train.py') in out
    assert (work / 'iter_2.pth').is_file()
    assert 'decode.loss_sar_anchor' in out and 'sar_gate_open' in out
    proc = run([mim, 'test', 'sar_plugin', DEMO_SAR, '--checkpoint',
                str(work / 'iter_2.pth'), '--work-dir', str(tmp_path / 'test'),
                '--cfg-options', *opts], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert osp.join('sar_plugin', '.mim', 'tools', 'test.py') in out
    assert 'mIoU' in out

    # 3. the documented fix, then the editable install without isolation
    pip(python, '-U', 'setuptools>=64,<82', 'wheel', cwd=tmp_path)
    pip(python, '--no-deps', '--no-build-isolation', '-e', str(src),
        cwd=tmp_path)
    where, version, typed = imported_from(python, tmp_path)
    assert where == str(src / 'sar_plugin') and typed
