"""The README's performance tables, from the JSON files of
``benchmarks/run.py --out`` (so the README quotes recorded numbers)."""
import json
import os.path as osp
from typing import Dict, List

from mmengine.config import Config

from .losses import FLOOR


def load(directory: str, names: List[str]) -> Dict[str, dict]:
    """``{name: result}`` of ``<directory>/<name>.json``."""
    out = {}
    for name in names:
        with open(osp.join(directory, f'{name}.json')) as f:
            out[name] = json.load(f)
    return out


def train_markdown(results: Dict[str, dict], labels: Dict[str, str],
                   root: str = '.') -> str:
    """One row per training benchmark: the plain step and the ratios (image
    size and batch from the config where the run used the config's).

    Args:
        results (dict): ``{name: train result}``.
        labels (dict): ``{name: row label}``, in row order.
        root (str): What the results' relative config paths start from.
    """
    lines = ['| config | image × batch | plain s/iter | with the anchor '
             'losses | same, no label checks | peak memory |',
             '|---|---|---|---|---|---|']
    for name, label in labels.items():
        r = results[name]
        rows = {row['variant']: row for row in r['rows']}
        size, batch = r['size'], r['batch_size']
        if size is None or batch is None:  # the config's own
            cfg = Config.fromfile(osp.join(root, r['config']))
            size = size or cfg.crop_size
            batch = batch or cfg.train_dataloader.batch_size
        size = '×'.join(map(str, size))
        anchors, no_checks = rows['anchors'], rows['anchors, no label checks']
        lines.append(
            f'| {label} | {size} × {batch} | '
            f'{rows["plain"]["s_per_iter"]:.3f} | '
            f'{anchors["x_plain"]:.3f}× | {no_checks["x_plain"]:.3f}× | '
            f'{anchors["mem_x_plain"]:.3f}× |')
    return '\n'.join(lines)


def loss_markdown(result: dict) -> str:
    """Every loss's time over the floor for each (K, dtype) table, the
    floor's own time and the peak memory of the first table."""
    tables = result['tables']
    heads = [f'K={t["classes"]} {t["dtype"]}' for t in tables]
    lines = ['| loss | ' + ' | '.join(heads) +
             f' | peak memory ({heads[0]}) |',
             '|---|' + '---|' * (len(heads) + 1)]
    names = [row['loss'] for row in tables[0]['rows']]
    by_name = [{row['loss']: row for row in t['rows']} for t in tables]
    for name in names:
        if name == FLOOR:
            cells = [f'{rows[name]["ms"]:.1f} ms' for rows in by_name]
        else:
            cells = [f'{rows[name]["x_floor"]:.2f}×' for rows in by_name]
        memory = by_name[0][name]['mem_x_floor']
        label = f'`{name}`' if name == FLOOR else name
        lines.append(f'| {label} | ' + ' | '.join(cells) +
                     f' | {memory:.2f}× |')
    sar = [rows['SAR'] for rows in by_name]
    lines.append('| **SAR faster than the reference style** | ' +
                 ' | '.join(f'**{row["x_reference"]:.2f}×**' for row in sar)
                 + f' | {sar[0]["mem_x_reference"]:.2f}× less |')
    return '\n'.join(lines)
