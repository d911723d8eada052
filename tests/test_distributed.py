"""tools/dist_train.sh and tools/dist_test.sh with two CPU processes (gloo):
SyncBN configs run, the SAR buffers stay identical on both ranks."""
import os
import os.path as osp
import re
import subprocess
import sys

import torch

from conftest import REPO_ROOT, free_port
from test_tools import cli_options, tiny_options

SAR_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo',
                      'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')


def run_script(args, tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash'] + args, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


def test_dist_train_two_cpu_ranks_keep_sar_state_identical(tmp_path):
    state_dir = tmp_path / 'state'
    config = tmp_path / 'cfg.py'
    config.write_text(
        f"_base_ = {SAR_CONFIG!r}\n"
        # sar_runtime.py's hooks, and the check
        "custom_hooks = [dict(type='RunCheckHook', evaluation=False), "
        "dict(type='ExactResumeHook'), "
        "dict(type='AnchorStateHook', check_interval=1, "
        f"dump_dir={str(state_dir)!r}), "
        "dict(type='LongTailEvalHook')]\n")
    opts = tiny_options(str(tmp_path / 'data'))
    opts.update({'train_cfg.max_iters': 6, 'train_cfg.val_interval': 6,
                 'default_hooks.logger.interval': 1,
                 'default_hooks.checkpoint.interval': 6,
                 # a perfect-ish gate is not needed: the EMA and the gate
                 # decision must agree whatever they are
                 'train_dataloader.batch_size': 2})
    work = tmp_path / 'work'
    out = run_script([osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
                      str(config), '2', '--work-dir', str(work),
                      '--cfg-options'] + cli_options(opts), tmp_path)
    assert 'Distributed training: True' in out
    assert 'using the gloo backend' in out
    assert 'converted' in out and 'SyncBN' in out
    # SAR's buffers: anchors, semantic_anchors, gate_open, num_updates and
    # the projector's three norms' (running statistics, batch count)
    assert 'anchor state: 13 buffers identical on 2 rank(s)' in out
    r0 = torch.load(state_dir / 'anchor_state_rank0.pth')
    r1 = torch.load(state_dir / 'anchor_state_rank1.pth')
    prefix = 'decode_head.anchor_losses.0.'
    assert set(r0) == set(r1) >= {prefix + k for k in (
        'anchors', 'semantic_anchors', 'gate_open', 'num_updates')}
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    from sar_plugin import safe_loading  # the runner's message hub state
    with safe_loading():
        ckpt = torch.load(work / 'iter_6.pth', weights_only=True)
    assert torch.equal(ckpt['state_dict'][prefix + 'anchors'],
                       r0[prefix + 'anchors'])

    test_out = run_script([osp.join(REPO_ROOT, 'tools', 'dist_test.sh'),
                           SAR_CONFIG, str(work / 'iter_6.pth'), '2',
                           '--work-dir', str(tmp_path / 'test'),
                           '--cfg-options'] + cli_options(opts), tmp_path)
    assert 'mIoU' in test_out
    # distributed evaluation (per-rank areas and feature reservoirs merged on
    # rank 0) gives what one process gives: the tiny set's 2 images split
    # evenly, and every feature fits in the reservoirs, so nothing differs
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), SAR_CONFIG,
         str(work / 'iter_6.pth'), '--work-dir', str(tmp_path / 'single'),
         '--cfg-options'] + cli_options(opts), cwd=tmp_path,
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    single_out = proc.stdout + proc.stderr
    assert proc.returncode == 0, single_out[-5000:]

    def final_metrics(text):
        line = [ln for ln in text.splitlines() if 'Iter(test)' in ln and
                'mIoU:' in ln][-1]
        return dict(re.findall(r'(\S+): (-?[\d.]+|nan)', line))

    dist, single = final_metrics(test_out), final_metrics(single_out)
    for key in ('mIoU', 'aAcc', 'mIoU.tail', 'feat/fisher',
                'feat/silhouette', 'feat/intra_mean'):
        assert dist[key] == single[key], (key, dist[key], single[key])
