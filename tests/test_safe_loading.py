"""Safe loading (issue 10, items 6 and 7): CIFAR archives are read with a
restricted unpickler, and MMEngine checkpoints load under torch's
``weights_only=True`` without letting a crafted ``HistoryBuffer`` state
touch process-wide state; importing the plug-in changes neither torch's
allow-list nor MMEngine's classes, and ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
cannot turn the plug-in's loader into a full unpickler."""
import builtins
import copyreg
import fractions
import inspect
import io
import os
import os.path as osp
import pickle
import pickletools
import re
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from sar_plugin.datasets import CIFAR10, CIFAR100, generate_cifar_archive
from sar_plugin.utils import checkpoint
from sar_plugin.utils.checkpoint import (FORCE_NO_WEIGHTS_ONLY,
                                         CheckedHistoryBuffer,
                                         CheckpointLoadError,
                                         UnsafeCheckpointError,
                                         enable_safe_loading,
                                         history_buffer_statistic,
                                         load_checkpoint_file,
                                         safe_checkpoint_globals,
                                         safe_loading)
from sar_plugin.utils.loading import (CheckpointReadError,
                                      load_checkpoint_weights_only,
                                      read_checkpoint_file)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


# ------------------------------------------------------------- helpers
class Payload:
    """Unpickles as ``func(*args)``: what a crafted file smuggles in."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker: str):
    """Two classic code-execution payloads; each would create ``marker``."""
    return {
        'os.system': Payload(os.system, (f'touch {marker}',)),
        'builtins.exec': Payload(builtins.exec,
                                 (f'open({marker!r}, "w").close()',)),
    }


class Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` and ASCII ``str`` as Python 2 ``str``
    (SHORT_BINSTRING / BINSTRING), as the official CIFAR archives (Python 2
    cPickle, protocol 2; numpy's dtype codes included) are written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode('ascii')
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(data)) + data)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_dumps(obj) -> bytes:
    """``obj`` pickled like a Python 2 / numpy 1.x file."""
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x (and the official archives) name the module numpy.core
    return buf.getvalue().replace(b'cnumpy._core.multiarray\n',
                                  b'cnumpy.core.multiarray\n')


def pickle_globals(data: bytes) -> set:
    """``'module name'`` of every GLOBAL opcode (protocol <= 3 pickles)."""
    return {arg for op, arg, _ in pickletools.genops(data)
            if op.name == 'GLOBAL'}


def tiny_archive(root, kind='cifar10') -> str:
    return generate_cifar_archive(str(root), kind, num_train_per_class=3,
                                  num_test_per_class=2, seed=1)


def trusted_load(path):
    with open(path, 'rb') as f:
        return pickle.load(f, encoding='bytes')


# -------------------------------------------------- item 6: CIFAR archives
@pytest.mark.parametrize('kind', ['os.system', 'builtins.exec'])
def test_crafted_data_batch_is_refused_before_it_runs(tmp_path, kind):
    archive = tiny_archive(tmp_path / 'data')
    marker = str(tmp_path / 'pwned')
    batch_path = osp.join(archive, 'data_batch_1')
    batch = trusted_load(batch_path)
    batch[b'data'] = payloads(marker)[kind]
    with open(batch_path, 'wb') as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError) as info:
        CIFAR10(data_root=str(tmp_path / 'data'), split='train')
    assert not osp.exists(marker), 'the payload ran'
    message = str(info.value)
    assert batch_path in message
    expected = ('posix.system' if kind == 'os.system' and os.name == 'posix'
                else kind)
    assert expected in message


def test_crafted_meta_file_is_refused(tmp_path):
    from sar_plugin.utils.safe_pickle import UnsafePickleError
    archive = tiny_archive(tmp_path / 'data', 'cifar100')
    marker = str(tmp_path / 'pwned')
    meta_path = osp.join(archive, 'meta')
    meta = trusted_load(meta_path)
    meta[b'fine_label_names'] = payloads(marker)['builtins.exec']
    with open(meta_path, 'wb') as f:
        pickle.dump(meta, f)  # default protocol: STACK_GLOBAL
    with pytest.raises(UnsafePickleError, match='builtins.exec') as info:
        CIFAR100(data_root=str(tmp_path / 'data'), split='test')
    assert not osp.exists(marker)
    assert info.value.source == meta_path
    assert info.value.global_name == 'builtins.exec'


@pytest.mark.parametrize('kind', ['cifar10', 'cifar100'])
def test_synthetic_archive_still_loads(tmp_path, kind):
    archive = tiny_archive(tmp_path / 'data', kind)
    cls = CIFAR10 if kind == 'cifar10' else CIFAR100
    ds = cls(data_root=str(tmp_path / 'data'), split='train')
    names = (['data_batch_1', 'data_batch_2', 'data_batch_3',
              'data_batch_4', 'data_batch_5'] if kind == 'cifar10' else
             ['train'])
    label_key = b'labels' if kind == 'cifar10' else b'fine_labels'
    batches = [trusted_load(osp.join(archive, n)) for n in names]
    labels = np.concatenate([b[label_key] for b in batches])
    rows = np.concatenate([b[b'data'] for b in batches])
    assert len(ds) == len(labels) > 0
    for i in (0, len(ds) - 1):
        info = ds.get_data_info(i)
        assert info['gt_label'] == labels[i]
        rgb = rows[i].reshape(3, 32, 32).transpose(1, 2, 0)
        np.testing.assert_array_equal(info['img'], rgb[..., ::-1])


def test_python2_era_pickle_with_bytes_keys_loads(tmp_path):
    """An archive written like the official ones: protocol 2, Python 2
    ``str`` keys and values, ``numpy.core.multiarray._reconstruct``."""
    root = tmp_path / 'cifar-10-batches-py'
    root.mkdir()
    rng = np.random.default_rng(0)
    data = {}
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        data[name] = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        (root / name).write_bytes(py2_dumps({
            b'batch_label': b'training batch',
            b'labels': [0, 1],
            b'data': data[name],
            b'filenames': [b'a.png', b'b.png'],
        }))
    meta = py2_dumps({b'label_names': [b'cat', b'dog'],
                      b'num_cases_per_batch': 2, b'num_vis': 3072})
    (root / 'batches.meta').write_bytes(meta)

    raw = (root / 'data_batch_1').read_bytes()
    assert raw[:2] == b'\x80\x02'
    assert pickle_globals(raw) == {'numpy.core.multiarray _reconstruct',
                                   'numpy ndarray', 'numpy dtype'}
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    assert 'SHORT_BINSTRING' in ops and 'BINSTRING' in ops

    from sar_plugin.utils.safe_pickle import safe_load
    batch = safe_load(str(root / 'data_batch_1'))
    assert set(batch) == {b'batch_label', b'labels', b'data', b'filenames'}
    np.testing.assert_array_equal(batch[b'data'], data['data_batch_1'])
    ds = CIFAR10(data_root=str(tmp_path), split='test')
    assert ds.metainfo['classes'] == ('cat', 'dog')
    rgb = data['test_batch'][1].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(ds.get_data_info(1)['img'], rgb[..., ::-1])


def test_python3_protocol2_bytes_load(tmp_path):
    """Python 3 writes ``bytes`` as ``_codecs.encode(text, 'latin1')`` with
    protocol 2 (and ``b''`` as ``bytes()``): exactly those calls pass."""
    from sar_plugin.utils.safe_pickle import safe_load
    obj = {b'data': np.arange(6, dtype=np.uint8).reshape(2, 3),
           b'empty': np.zeros((0, 3), np.uint8), b'label': b'\xff\x00x',
           b'none': b'', b'labels': [3, 4]}
    raw = pickle.dumps(obj, protocol=2)
    assert {'_codecs encode', '__builtin__ bytes'} <= pickle_globals(raw)
    got = safe_load(io.BytesIO(raw))
    assert set(got) == set(obj)
    for key, value in obj.items():
        np.testing.assert_array_equal(got[key], value)


def test_safe_load_refuses_other_codec_calls_and_names_the_file(tmp_path):
    from sar_plugin.utils.safe_pickle import UnsafePickleError, safe_load
    path = tmp_path / 'odd_batch'
    # _codecs.encode('x', 'rot13'): allowed global, refused arguments
    path.write_bytes(b'\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00'
                     b'\x00\x00rot13\x86R.')
    with pytest.raises(UnsafePickleError, match=r"odd_batch.*'rot13'"):
        safe_load(str(path))
    path.write_bytes(pickle.dumps({b'data': [1, 2, 3]}, protocol=2)[:-4])
    with pytest.raises(pickle.UnpicklingError, match='odd_batch'):
        safe_load(str(path))


# ---------------------------------------- item 7: HistoryBuffer allow-list
def _valid_fields():
    return dict(max_length=10, _log_history=np.array([1.0, 2.0]),
                _count_history=np.array([1, 1]))


CRAFTED_STATES = {
    # OrderedDict is allow-listed by torch: it passes weights_only
    'replace mean for every buffer': dict(
        _valid_fields(), statistics_methods={'mean': OrderedDict}),
    'swap mean and max': dict(
        _valid_fields(), statistics_methods={'mean': HistoryBuffer.max}),
    'register a new statistic': dict(
        _valid_fields(), statistics_methods={'evil': np.ndarray}),
    'arbitrary attribute': dict(_valid_fields(), statistics=np.ndarray),
    'shadow the class dict': dict(_valid_fields(),
                                  _statistics_methods={}),
    'max_length 0': dict(_valid_fields(), max_length=0),
    'history of objects': dict(
        _valid_fields(), _log_history=np.array([None, 1], dtype=object)),
}


@pytest.fixture
def history_buffer_class_state():
    """Snapshot of ``HistoryBuffer``'s class-level state, restored after."""
    HistoryBuffer()  # registers the default statistics
    methods = dict(HistoryBuffer._statistics_methods)
    attrs = dict(vars(HistoryBuffer))
    yield methods, attrs
    HistoryBuffer._statistics_methods.clear()
    HistoryBuffer._statistics_methods.update(methods)
    for key in set(vars(HistoryBuffer)) - set(attrs):
        delattr(HistoryBuffer, key)
    for key, value in attrs.items():
        if vars(HistoryBuffer).get(key) is not value:
            setattr(HistoryBuffer, key, value)


@pytest.fixture
def torch_allow_list(monkeypatch):
    """torch's allow-list emptied for the test (other tests of the session
    may have enabled the plug-in's process-wide), restored after."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def _assert_class_unchanged(methods, attrs):
    assert HistoryBuffer._statistics_methods.keys() == methods.keys()
    for name, method in methods.items():
        assert HistoryBuffer._statistics_methods[name] is method, name
    assert vars(HistoryBuffer).keys() == attrs.keys()
    for key, value in attrs.items():
        assert vars(HistoryBuffer)[key] is value, key


def _save_crafted(path, state, monkeypatch):
    with monkeypatch.context() as patch:  # a buffer pickling as crafted
        patch.setattr(HistoryBuffer, '__getstate__', lambda self: state)
        torch.save({'message_hub': {'log_scalars': {
            'loss': HistoryBuffer()}}}, path)


@pytest.mark.parametrize('case', sorted(CRAFTED_STATES))
def test_crafted_history_buffer_state_is_refused(tmp_path, case, monkeypatch,
                                                 history_buffer_class_state):
    methods, attrs = history_buffer_class_state
    path = str(tmp_path / 'crafted.pth')
    _save_crafted(path, CRAFTED_STATES[case], monkeypatch)
    # UnsafeCheckpointError is a ValueError, so torch passes it through
    with pytest.raises(ValueError, match='HistoryBuffer state refused'):
        with safe_loading():
            torch.load(path, weights_only=True)
    with pytest.raises(UnsafeCheckpointError,
                       match=f'{re.escape(path)}: HistoryBuffer state '
                       'refused'):
        load_checkpoint_file(path)
    _assert_class_unchanged(methods, attrs)


def test_history_buffer_calls_and_arguments_are_refused(
        tmp_path, monkeypatch, history_buffer_class_state):
    """MMEngine pickles a buffer as NEWOBJ without arguments plus BUILD: a
    call of the class, or NEWOBJ with arguments, is refused."""
    path = str(tmp_path / 'called.pth')
    torch.save({'x': Payload(HistoryBuffer, ())}, path)
    with pytest.raises(UnsafeCheckpointError,
                       match=r'called\.pth: .*calls HistoryBuffer\(\)'):
        load_checkpoint_file(path)
    torch.save({'x': Payload(HistoryBuffer, ([1.0], [1], 5))}, path)
    with pytest.raises(UnsafeCheckpointError, match='with 3 argument'):
        load_checkpoint_file(path)
    with monkeypatch.context() as patch:  # NEWOBJ with an argument
        patch.setattr(HistoryBuffer, '__reduce_ex__', lambda self, proto: (
            copyreg.__newobj__, (HistoryBuffer, 5), _valid_fields()))
        torch.save({'x': HistoryBuffer()}, path)
    with pytest.raises(UnsafeCheckpointError, match='with 1 argument'):
        load_checkpoint_file(path)
    _assert_class_unchanged(*history_buffer_class_state)


def test_getattr_stand_in_allows_only_history_buffer_statistics(tmp_path):
    """Stock checkpoints call ``getattr(HistoryBuffer, 'mean')``: other
    look-ups through the same name must still be refused."""
    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': Payload(getattr, (np.ndarray, 'tofile'))}, path)
    with pytest.raises(ValueError, match=r'getattr\(ndarray'), \
            safe_loading():
        torch.load(path, weights_only=True)
    torch.save({'x': Payload(getattr, (HistoryBuffer, '__init__'))}, path)
    with pytest.raises(UnsafeCheckpointError,
                       match=r"getattr\(HistoryBuffer, '__init__'\)"):
        load_checkpoint_file(path)
    torch.save({'x': Payload(getattr, (HistoryBuffer, 'mean'))}, path)
    assert load_checkpoint_file(path)['x'] is vars(HistoryBuffer)['mean']


def test_valid_history_buffer_round_trips(tmp_path):
    buf = HistoryBuffer([1, 2, 3], [1, 1, 2], max_length=5)
    path = str(tmp_path / 'buf.pth')
    torch.save({'buf': buf}, path)
    with safe_loading():
        in_block = torch.load(path, weights_only=True)['buf']
    for loaded in (in_block, load_checkpoint_file(path)['buf']):
        assert type(loaded) is HistoryBuffer
        assert loaded.max_length == 5
        np.testing.assert_array_equal(loaded.data[0], [1, 2, 3])
        np.testing.assert_array_equal(loaded.data[1], [1, 1, 2])
        assert loaded.mean() == buf.mean()
        assert vars(loaded).keys() == {'max_length', '_log_history',
                                       '_count_history'}


def test_safe_checkpoint_globals():
    entries = safe_checkpoint_globals()
    assert entries is not safe_checkpoint_globals()  # a new list each time
    assert (CheckedHistoryBuffer,
            'mmengine.logging.history_buffer.HistoryBuffer') in entries
    assert (history_buffer_statistic, 'builtins.getattr') in entries
    assert np.ndarray in entries and np.dtype in entries
    # neither MMEngine's class nor the real getattr
    assert HistoryBuffer not in entries and builtins.getattr not in entries
    assert CheckedHistoryBuffer not in entries  # only under MMEngine's name


# ------------------------------ item 7: import changes no global state
IMPORT_CHECK = '''\
import sys

import torch
# what the plug-in's dependencies register in torch themselves (MMEngine's
# runner imports torch.distributed.tensor, which allow-lists DTensor...)
import mmengine.runner, mmseg.apis, mmseg.models  # noqa: E401,F401
from mmengine.logging import HistoryBuffer

safe = list(torch.serialization.get_safe_globals())
attrs = dict(vars(HistoryBuffer))
methods = dict(HistoryBuffer._statistics_methods)
assert 'sar_plugin' not in sys.modules
import sar_plugin  # noqa: E402,F401
import sar_plugin.utils.checkpoint  # noqa: E402,F401
import sar_plugin.utils.loading  # noqa: E402,F401

after = torch.serialization.get_safe_globals()
assert len(after) == len(set(after)) and set(after) == set(safe), (
    [e for e in after if e not in safe], [e for e in safe if e not in after])
assert vars(HistoryBuffer).keys() == attrs.keys(), (
    set(vars(HistoryBuffer)) ^ set(attrs))
for key, value in attrs.items():
    assert vars(HistoryBuffer)[key] is value, key
assert HistoryBuffer._statistics_methods == methods
print('UNCHANGED')
'''


def test_import_changes_no_global_state(tmp_path):
    script = tmp_path / 'import_check.py'
    script.write_text(IMPORT_CHECK)
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert 'UNCHANGED' in proc.stdout


# ------------------------------ item 7: the allow-list's scope
def _allowed():
    return set(torch.serialization.get_safe_globals())


def _hub_checkpoint(path):
    hub = MessageHub('safe_loading_scope')
    hub.update_scalar('train/loss', 1.5)
    torch.save({'message_hub': hub.state_dict()}, path)


def test_safe_loading_allows_inside_only(tmp_path, torch_allow_list):
    path = str(tmp_path / 'hub.pth')
    _hub_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path, weights_only=True)
    with safe_loading():
        assert _allowed() == set(safe_checkpoint_globals())
        torch.load(path, weights_only=True)
        with safe_loading():  # nested: the outer block's entries stay
            pass
        assert _allowed() == set(safe_checkpoint_globals())
    assert _allowed() == set()
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path, weights_only=True)


def test_safe_loading_restores_the_list_exactly(torch_allow_list):
    """Entries that were there before (also one of the plug-in's) stay,
    the others go, also when the block raises."""
    before = [np.ndarray, fractions.Fraction, (print, 'x.y')]
    torch.serialization.add_safe_globals(before)
    with safe_loading():
        assert _allowed() == set(before) | set(safe_checkpoint_globals())
    assert _allowed() == set(before)
    with pytest.raises(KeyError, match='inside'), safe_loading():
        raise KeyError('inside')
    assert _allowed() == set(before)
    assert sorted(map(str, torch.serialization.get_safe_globals())) == \
        sorted(map(str, before))


def test_enable_safe_loading_inside_a_block_stays(torch_allow_list):
    with safe_loading():
        assert enable_safe_loading() is True
    assert _allowed() == set(safe_checkpoint_globals())


def test_enable_safe_loading_is_process_wide_and_idempotent(tmp_path):
    script = tmp_path / 'enable.py'
    script.write_text(f'''\
import torch
from sar_plugin.utils.checkpoint import (enable_safe_loading,
                                         safe_checkpoint_globals)
from mmengine.logging import HistoryBuffer, MessageHub

hub = MessageHub('enable')
hub.update_scalar('loss', 2.0)
torch.save({{'message_hub': hub.state_dict()}}, {str(tmp_path / 'h.pth')!r})
before = torch.serialization.get_safe_globals()
assert enable_safe_loading() is True
once = torch.serialization.get_safe_globals()
assert enable_safe_loading() is True
assert sorted(map(repr, torch.serialization.get_safe_globals())) == \\
    sorted(map(repr, once))
assert set(once) == set(before) | set(safe_checkpoint_globals())
out = torch.load({str(tmp_path / 'h.pth')!r}, weights_only=True)
buf = out['message_hub']['log_scalars']['loss']
assert type(buf) is HistoryBuffer and buf.mean() == 2.0
print('ENABLED')
''')
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert 'ENABLED' in proc.stdout


def test_conflicting_entry_is_refused(torch_allow_list, tmp_path):
    """MMEngine's own class (its unchecked ``__setstate__``) under the same
    name: which of the two torch would use is undefined."""
    torch.serialization.add_safe_globals([HistoryBuffer])
    with pytest.raises(RuntimeError, match='already maps mmengine'):
        with safe_loading():
            pass
    with pytest.raises(RuntimeError, match='already maps mmengine'):
        enable_safe_loading()
    assert _allowed() == {HistoryBuffer}


# -------------------- item 7: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot win
@pytest.mark.parametrize('kind', ['os.system', 'builtins.exec'])
def test_force_no_weights_only_does_not_run_a_payload(tmp_path, kind,
                                                      monkeypatch):
    marker = str(tmp_path / 'pwned')
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': payloads(marker)[kind]}, path)
    monkeypatch.setenv(FORCE_NO_WEIGHTS_ONLY, '1')
    # what torch does with a load that does not say weights_only: the
    # reason the plug-in always passes it
    with pytest.warns(UserWarning, match=FORCE_NO_WEIGHTS_ONLY):
        torch.load(_plain_file(tmp_path))
    # torch names builtins.exec as "exec"
    expected = {'os.system': 'posix.system' if os.name == 'posix' else
                'os.system', 'builtins.exec': 'GLOBAL exec'}[kind]
    with pytest.raises(CheckpointLoadError, match=re.escape(expected)) \
            as info:
        load_checkpoint_file(path)
    assert path in str(info.value)
    assert 'weights_only=False' not in str(info.value)
    assert 'add_safe_globals' not in str(info.value)
    with pytest.raises(CheckpointLoadError, match='evil.pth'):
        load_checkpoint_weights_only(path)
    with pytest.raises(CheckpointReadError, match=re.escape(expected)):
        read_checkpoint_file(path)
    assert not osp.exists(marker), 'the payload ran'


def _plain_file(tmp_path):
    path = str(tmp_path / 'plain.pth')
    torch.save({'w': torch.zeros(1)}, path)
    return path


def test_a_torch_that_ignores_weights_only_is_refused(tmp_path, monkeypatch):
    """Should a torch let the variable override ``weights_only=True``
    (torch 2.13 does not), the loader refuses instead of unpickling."""
    marker = str(tmp_path / 'pwned')
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': payloads(marker)['os.system']}, path)
    monkeypatch.setenv(FORCE_NO_WEIGHTS_ONLY, '1')
    assert checkpoint._explicit_weights_only_ignored() is False
    monkeypatch.setattr(checkpoint, '_explicit_weights_only_ignored',
                        lambda: True)
    with pytest.raises(CheckpointLoadError,
                       match=f'{re.escape(path)}: refusing.*'
                       f'{FORCE_NO_WEIGHTS_ONLY}'):
        load_checkpoint_file(path)
    monkeypatch.delenv(FORCE_NO_WEIGHTS_ONLY)
    with pytest.raises(CheckpointLoadError, match='posix.system|os.system'):
        load_checkpoint_file(path)  # the variable unset: no probe needed
    assert not osp.exists(marker)


def test_loader_names_the_file(tmp_path):
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(CheckpointLoadError, match=f'{re.escape(missing)}: '
                       'no such file'):
        load_checkpoint_file(missing)
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    with pytest.raises(CheckpointLoadError, match='notes.pth: torch.load'):
        load_checkpoint_file(str(text))
    for url in ('open-mmlab://resnet50_v1c', 's3://bucket/x.pth',
                'torchvision://resnet18'):
        with pytest.raises(CheckpointLoadError,
                           match=f'{re.escape(url)}: .*not loaded'):
            load_checkpoint_weights_only(url)


# --------------------------- item 7: stock MMEngine checkpoints, both ways
class ToyModel(BaseModel):
    """``nn.Linear(2, 1)`` fitted to 0.5 with a squared loss."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x, y, mode='tensor'):
        out = self.fc(x)
        if mode == 'loss':
            return dict(loss=((out - y)**2).mean())
        return out


class ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.tensor([i / 8.0, 1.0]), y=torch.tensor([0.5]))


def toy_runner_kwargs(work_dir, **kwargs):
    """A Runner training ToyModel for 2 iterations, checkpoint at 2."""
    cfg = dict(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=2, by_epoch=False)))
    cfg.update(kwargs)
    return cfg


STOCK_WRITER = '''\
"""Writes a checkpoint with plain MMEngine (sar_plugin never imported)."""
import sys

import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

{sources}

runner = Runner(**toy_runner_kwargs(sys.argv[1], default_scope='mmengine'))
runner.train()
torch.save(runner.model.state_dict(), sys.argv[2])
assert 'sar_plugin' not in sys.modules, 'the writer must be plain MMEngine'
'''


@pytest.fixture(scope='module')
def stock_checkpoint(tmp_path_factory):
    """``(work_dir, iter_2.pth, weights)`` written in a subprocess by plain
    MMEngine's Runner and CheckpointHook."""
    root = tmp_path_factory.mktemp('stock')
    script = root / 'write_stock.py'
    script.write_text(STOCK_WRITER.format(sources='\n\n'.join(
        inspect.getsource(obj)
        for obj in (ToyModel, ToyData, toy_runner_kwargs))))
    work_dir, weights = root / 'work', root / 'weights.pt'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, str(script), str(work_dir), str(weights)],
        cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    ckpt = work_dir / 'iter_2.pth'
    with zipfile.ZipFile(ckpt) as z:
        data = z.read(next(n for n in z.namelist()
                           if n.endswith('data.pkl')))
    # really stock: the statistics functions are in, as getattr() calls
    assert '__builtin__ getattr' in pickle_globals(data)
    assert b'HistoryBuffer' in data
    return str(work_dir), str(ckpt), torch.load(weights, weights_only=True)


def _assert_weights(runner, weights):
    state = runner.model.state_dict()
    assert state.keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(state[key], value), key


def test_stock_checkpoint_loads_with_load_from(tmp_path, stock_checkpoint):
    _, ckpt, weights = stock_checkpoint
    runner = Runner(**toy_runner_kwargs(
        str(tmp_path / 'work'), load_from=ckpt,
        experiment_name='safe_loading_load_from', default_scope='mmseg'))
    assert not any(torch.equal(v, runner.model.state_dict()[k])
                   for k, v in weights.items())
    with safe_loading():
        runner.load_or_resume()
    _assert_weights(runner, weights)


def test_stock_checkpoint_resumes(stock_checkpoint, monkeypatch):
    work_dir, _, weights = stock_checkpoint
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get('weights_only'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    runner = Runner(**toy_runner_kwargs(
        work_dir, resume=True, experiment_name='safe_loading_resume',
        default_scope='mmseg'))
    with safe_loading():
        runner.load_or_resume()
    assert seen and False not in seen  # never weights_only=False
    assert runner.iter == 2
    _assert_weights(runner, weights)
    loss = runner.message_hub.get_scalar('train/loss')
    assert type(loss) is HistoryBuffer
    assert len(loss.data[0]) == 2
    assert np.isfinite(loss.mean())
    momentum = runner.optim_wrapper.optimizer.state_dict()['state']
    assert momentum and all('momentum_buffer' in s for s in momentum.values())


def _buffers(obj, prefix=''):
    """``{path: HistoryBuffer}`` of every buffer in a loaded checkpoint."""
    found = {}
    if isinstance(obj, HistoryBuffer):
        found[prefix] = obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            found.update(_buffers(value, f'{prefix}/{key}'))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found.update(_buffers(value, f'{prefix}/{i}'))
    return found


STOCK_READER = '''\
"""Loads a re-saved checkpoint with plain MMEngine and torch."""
import sys

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

ckpt = torch.load(sys.argv[1])  # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
expected = torch.load(sys.argv[2], weights_only=True)
hub = ckpt['message_hub']['log_scalars']
assert set(hub) == set(expected), (set(hub), set(expected))
for name, buf in hub.items():
    assert type(buf) is HistoryBuffer, (name, type(buf))
    log, count, max_length = expected[name]
    np.testing.assert_array_equal(buf.data[0], log.numpy())
    np.testing.assert_array_equal(buf.data[1], count.numpy())
    assert buf.max_length == int(max_length)
    assert buf.mean() == buf.statistics('mean')
assert not [m for m in sys.modules if m.startswith('sar_plugin')]
print('STOCK', len(hub))
'''


def test_stock_checkpoint_buffers_are_plain_and_resave_stock(
        tmp_path, stock_checkpoint, history_buffer_class_state):
    """A Runner's checkpoint (plain MMEngine) loads with weights_only=True;
    its buffers are MMEngine's own, with the data of a trusted full-pickle
    load; saved again, it is a stock checkpoint that a process without
    sar_plugin loads."""
    _, ckpt, _ = stock_checkpoint
    trusted = torch.load(ckpt, weights_only=False)  # written by this test
    with safe_loading():
        in_block = torch.load(ckpt, weights_only=True)
    loaded = load_checkpoint_file(ckpt)
    expected = _buffers(trusted)
    assert len(expected) >= 3  # loss, lr, time, data_time...
    for got in (in_block, loaded):
        buffers = _buffers(got)
        assert buffers.keys() == expected.keys()
        for name, buf in buffers.items():
            assert type(buf) is HistoryBuffer, name
            assert vars(buf).keys() == {'max_length', '_log_history',
                                        '_count_history'}, name
            ref = expected[name]
            assert buf.max_length == ref.max_length
            for mine, theirs in zip(buf.data, ref.data):
                assert mine.dtype == theirs.dtype
                np.testing.assert_array_equal(mine, theirs)
            assert buf.mean() == ref.mean()
    _assert_class_unchanged(*history_buffer_class_state)

    resaved = str(tmp_path / 'resaved.pth')
    torch.save(loaded, resaved)
    with zipfile.ZipFile(resaved) as z:
        data = z.read(next(n for n in z.namelist()
                           if n.endswith('data.pkl')))
    names = pickle_globals(data)
    assert not [n for n in names if 'sar_plugin' in n or 'Checked' in n]
    assert 'mmengine.logging.history_buffer HistoryBuffer' in names
    scalars = loaded['message_hub']['log_scalars']
    reference = str(tmp_path / 'reference.pth')
    torch.save({name: (torch.from_numpy(buf.data[0]),
                       torch.from_numpy(buf.data[1]), buf.max_length)
                for name, buf in scalars.items()}, reference)
    script = tmp_path / 'read_stock.py'
    script.write_text(STOCK_READER)
    env = dict(os.environ, OMP_NUM_THREADS='1',
               TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')
    proc = subprocess.run([sys.executable, str(script), resaved, reference],
                          cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert f'STOCK {len(scalars)}' in proc.stdout
    # and the re-saved file loads weights-only with the plug-in again
    again = _buffers(load_checkpoint_file(resaved))
    assert again.keys() == expected.keys()
    assert all(type(b) is HistoryBuffer for b in again.values())


def test_test_time_loader_reads_a_runner_checkpoint(stock_checkpoint,
                                                    monkeypatch):
    """``load_checkpoint_weights_only`` (``tools/test.py``'s reader) loads a
    stock runner checkpoint weights-only, with the variable set too."""
    _, ckpt, weights = stock_checkpoint
    monkeypatch.setenv(FORCE_NO_WEIGHTS_ONLY, '1')
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get('weights_only'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    out = load_checkpoint_weights_only(ckpt)
    assert seen and all(flag is True for flag in seen)
    for key, value in weights.items():
        assert torch.equal(out['state_dict'][key], value), key
    assert read_checkpoint_file(ckpt)['state_dict'].keys() == weights.keys()


def test_protocol5_cifar_batch_loads(tmp_path):
    """Issue 21, case 11: a legitimate protocol-5 pickle of a CIFAR batch
    (numpy's ``_frombuffer``) loads; a payload in the same protocol does
    not."""
    import pickle

    from sar_plugin.utils.safe_pickle import UnsafePickleError, safe_load
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    batch = {b'data': data, b'labels': [0, 1], b'batch_label': b'x'}
    path = tmp_path / 'data_batch_1'
    path.write_bytes(pickle.dumps(batch, protocol=5))
    assert '_frombuffer' in str(path.read_bytes())
    loaded = safe_load(str(path))
    np.testing.assert_array_equal(loaded[b'data'], data)
    assert loaded[b'labels'] == [0, 1]

    class Payload:
        def __reduce__(self):
            return (os.system, ('true',))
    path.write_bytes(pickle.dumps({b'data': Payload()}, protocol=5))
    with pytest.raises(UnsafePickleError, match='system'):
        safe_load(str(path))
