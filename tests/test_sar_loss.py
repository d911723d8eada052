"""SARLoss against a slow, loop-based reference written from the paper and
the reference code (geyanqi/SAR), plus its own invariants and error
messages. The invariants every feature loss shares (ignored pixels, absent
classes, all-ignored batches, per-pixel = per-image, reduced precision, bad
labels and shapes, no host sync) run on SAR, with its gate open, in
``test_anchor_losses.py``."""
import pytest
import torch
import torch.multiprocessing as mp
from mmseg.registry import MODELS
from torch import nn

from conftest import free_port

import sar_plugin  # noqa: F401  (registers SARLoss, also in spawned workers)


K, C = 4, 6


def make_loss(**kwargs):
    cfg = dict(type='SARLoss', num_classes=K, channels=C, anchor_seed=3)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def perfect_classifier(loss, scale=8.0):
    """A 1x1 conv mapping the current embedded anchors to scale * I."""
    with torch.no_grad():
        emb = loss.projector(loss.anchors).detach()
    weight = scale * torch.linalg.pinv(emb).t()  # K x C, emb @ W^T = scale I
    conv = nn.Conv2d(C, K, 1).to(emb.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight[:, :, None, None])
        conv.bias.zero_()
    return conv


def random_classifier(dtype, seed=0):
    torch.manual_seed(seed)
    return nn.Conv2d(C, K, 1).to(dtype)


# --------------------------------------------------------------- reference
def reference_step(emb, classifier, feat, label, state, cfg):
    """One SAR step with explicit loops. Returns (anchor, pull, new_state)."""
    k = emb.shape[0]
    logits = torch.stack([
        torch.stack([(classifier.weight[j, :, 0, 0] * emb[i]).sum() +
                     classifier.bias[j] for j in range(k)]) for i in range(k)
    ])
    probs, log_probs = [], []
    for i in range(k):
        denom = sum(torch.exp(logits[i, j]) for j in range(k))
        probs.append(torch.exp(logits[i, i]) / denom)
        log_probs.append(logits[i, i] - torch.log(denom))
    kept = [lp if p.item() <= cfg['filter_conf'] else lp * 0
            for p, lp in zip(probs, log_probs)]
    total = sum(kept)
    anchor = 0
    for i in range(k):
        w = kept[i] / total if total.item() != 0 else kept[i] * 0
        if cfg.get('detach_weights'):
            w = w.detach()
        anchor = anchor + w * (-log_probs[i])

    passed = all(
        int(torch.argmax(logits[i])) == i and probs[i].item() > cfg['update_conf']
        for i in range(k))
    sem = state['sem'].clone()
    updates = state['updates']
    if passed:
        new = emb.detach()
        sem = new.clone() if updates == 0 else \
            cfg['momentum'] * sem + (1 - cfg['momentum']) * new
        updates += 1
    gate = passed if cfg['gate'] == 'step' else (state['gate'] or passed)

    pull, count = 0, 0
    n, c, h, w_ = feat.shape
    for b in range(n):
        for y in range(h):
            for x in range(w_):
                lab = int(label[b, y, x])
                if lab == 255:
                    continue
                f = feat[b, :, y, x]
                if cfg['pull'] == 'mse':
                    pull = pull + sum((f[ch] - sem[lab, ch])**2
                                      for ch in range(c)) / c
                else:
                    cos = (f * sem[lab]).sum() / (
                        f.norm().clamp(min=1e-8) * sem[lab].norm().clamp(min=1e-8))
                    pull = pull + 1 - cos
                count += 1
    if not gate or count == 0:
        pull = feat.sum() * 0
    else:
        pull = pull / count
    return anchor, pull, dict(sem=sem, updates=updates, gate=gate), passed


def make_batch(dtype, seed, n=2, h=3, w=4, ignore_frac=0.25):
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, C, h, w, generator=g, dtype=dtype)
    label = torch.randint(0, K, (n, h, w), generator=g)
    label[torch.rand(n, h, w, generator=g) < ignore_frac] = 255
    return feat.requires_grad_(True), label


@pytest.mark.parametrize('gate', ['step', 'latched'])
@pytest.mark.parametrize('pull', ['mse', 'cosine'])
@pytest.mark.parametrize('detach_weights', [False, True])
def test_matches_loop_reference_over_steps(gate, pull, detach_weights):
    dtype = torch.float64
    cfg = dict(filter_conf=0.9, update_conf=0.8, momentum=0.7, gate=gate,
               pull=pull, pull_weight=0.3, anchor_weight=1.5,
               detach_weights=detach_weights)
    loss = make_loss(**cfg).to(dtype)
    state = dict(sem=torch.zeros(K, C, dtype=dtype), updates=0, gate=False)
    # fail, pass (first init), fail, pass (EMA), pass (EMA)
    plan = ['random', 'perfect', 'random', 'perfect', 'perfect']
    seen = []
    for step, kind in enumerate(plan):
        classifier = (perfect_classifier(loss, scale=8.0 + step)
                      if kind == 'perfect' else random_classifier(dtype, step))
        feat, label = make_batch(dtype, seed=step)
        out = loss(feat, label, classifier=classifier)
        total = out['loss_sar_anchor'] + out['loss_sar_pull']
        params = [feat, classifier.weight] + list(loss.projector.parameters())
        grads = torch.autograd.grad(total, params, allow_unused=True)

        emb = loss.projector(loss.anchors)
        ref_anchor, ref_pull, state, passed = reference_step(
            emb, classifier, feat, label, state, cfg)
        seen.append(passed)
        ref_total = 1.5 * ref_anchor + 0.3 * ref_pull
        ref_grads = torch.autograd.grad(ref_total, params, allow_unused=True)

        torch.testing.assert_close(out['loss_sar_anchor'], 1.5 * ref_anchor,
                                   rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(out['loss_sar_pull'],
                                   0.3 * torch.as_tensor(ref_pull, dtype=dtype),
                                   rtol=1e-10, atol=1e-12)
        for got, want in zip(grads, ref_grads):
            if want is None:
                assert got is None or torch.count_nonzero(got) == 0
            else:
                torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(loss.semantic_anchors, state['sem'],
                                   rtol=1e-12, atol=1e-12)
        assert int(loss.num_updates) == state['updates']
        assert bool(loss.gate_open) == state['gate']
    assert seen == [False, True, False, True, True]


def test_filter_conf_zeroes_confident_anchor_weights():
    loss = make_loss(filter_conf=0.5).double()
    clf = perfect_classifier(loss, scale=20.0)  # every p_i ~ 1 > 0.5
    feat, label = make_batch(torch.float64, 0)
    out = loss(feat, label, classifier=clf)
    assert out['loss_sar_anchor'].item() == 0.0
    # with filtering off the same anchors still have a (tiny) positive CE
    loss2 = make_loss(filter_conf=1.0).double()
    loss2.load_state_dict(loss.state_dict())
    assert loss2(feat, label, classifier=clf)['loss_sar_anchor'].item() > 0


def test_projector_structure_matches_manual_computation():
    loss = make_loss().double()
    p = loss.projector
    a = loss.anchors

    def bn(x, mod):
        mean = x.mean(0, keepdim=True)
        var = x.var(0, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + mod.eps) * mod.weight + mod.bias

    x = torch.relu(bn(a @ p.fc1.weight.t() + p.fc1.bias, p.norm1))
    x = torch.relu(bn(x @ p.fc2.weight.t() + p.fc2.bias, p.norm2))
    x = x @ p.conv.conv.weight[:, :, 0, 0].t()
    assert p.conv.conv.bias is None  # a conv followed by a norm has no bias
    x = torch.relu(bn(x, p.conv.bn))
    torch.testing.assert_close(p(a), x, rtol=1e-10, atol=1e-12)


def test_closed_gate_gives_zero_pull_with_graph():
    loss = make_loss()
    feat, label = make_batch(torch.float32, 0)
    out = loss(feat, label, classifier=random_classifier(torch.float32))
    assert not bool(loss.gate_open)
    assert out['loss_sar_pull'].item() == 0.0
    assert out['loss_sar_pull'].requires_grad


def test_eval_mode_does_not_touch_state():
    loss = make_loss()
    clf = perfect_classifier(loss)
    loss.eval()
    feat, label = make_batch(torch.float32, 0)
    loss(feat, label, classifier=clf)
    assert int(loss.num_updates) == 0 and not bool(loss.gate_open)
    assert torch.count_nonzero(loss.semantic_anchors) == 0


def test_anchors_are_seeded_and_fixed():
    a, b, c = make_loss(), make_loss(), make_loss(anchor_seed=4)
    assert torch.equal(a.anchors, b.anchors)
    assert not torch.equal(a.anchors, c.anchors)
    assert not any(n == 'anchors' for n, _ in a.named_parameters())
    for kind in ('gaussian', 'orthogonal', 'simplex', 'onehot', 'hypersphere'):
        assert make_loss(anchor_init=kind).anchors.shape == (K, C)


def test_errors_name_the_field():
    feat, label = make_batch(torch.float32, 0)
    loss = make_loss()
    with pytest.raises(ValueError, match='classifier'):
        loss(feat, label)
    with pytest.raises(ValueError, match='num_classes=4'):
        loss(feat, label, classifier=nn.Conv2d(C, K + 1, 1))
    for field, value in [('gate', 'sometimes'), ('pull', 'l1'),
                         ('anchor_init', 'uniform'), ('momentum', 1.0),
                         ('update_conf', 0.0)]:
        with pytest.raises(ValueError, match=field):
            make_loss(**{field: value})
    with pytest.raises(ValueError, match="needs channels >= num_classes"):
        make_loss(anchor_init='onehot', channels=2)


# ----------------------------------------------------------- distributed
def _ddp_worker(rank, world, port, scenario, out_path):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world)
    try:
        loss = make_loss(gate='latched')
        # every rank: the same anchors and projector (same seed / init)
        torch.manual_seed(123)
        loss.projector.apply(lambda m: m.reset_parameters()
                             if hasattr(m, 'reset_parameters') else None)
        clf = perfect_classifier(loss)
        if scenario == 'one_rank_fails' and rank == 0:
            clf = random_classifier(torch.float32, 5)
        # ranks see different projector outputs through different BN noise
        if scenario == 'different_embeddings':
            with torch.no_grad():
                loss.projector.fc2.bias.add_(0.01 * rank)
        feat, label = make_batch(torch.float32, seed=rank)
        loss(feat, label, classifier=clf)
        torch.save(dict(sem=loss.semantic_anchors, gate=loss.gate_open,
                        updates=loss.num_updates, anchors=loss.anchors,
                        emb=loss.projector(loss.anchors).detach()),
                   f'{out_path}.{rank}')
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('scenario', ['one_rank_fails', 'different_embeddings'])
def test_state_identical_on_two_gloo_ranks(tmp_path, scenario):
    out = str(tmp_path / 'state')
    mp.spawn(_ddp_worker, args=(2, free_port(), scenario, out), nprocs=2)
    s0, s1 = (torch.load(f'{out}.{r}') for r in range(2))
    for key in ('sem', 'gate', 'updates', 'anchors'):
        assert torch.equal(s0[key], s1[key]), key
    if scenario == 'one_rank_fails':
        # rank 1 alone would have opened the gate: the decision is AND-ed
        assert not bool(s0['gate']) and int(s0['updates']) == 0
    else:
        assert bool(s0['gate']) and int(s0['updates']) == 1
        assert not torch.equal(s0['emb'], s1['emb'])
        torch.testing.assert_close(s0['sem'], (s0['emb'] + s1['emb']) / 2,
                                   rtol=1e-5, atol=1e-6)


def test_state_is_logged_as_scalars_not_losses():
    from mmengine.model import BaseModel

    loss = make_loss()
    assert loss.log_vars() == {
        'sar_gate_open': torch.tensor(0.0), 'sar_updates': torch.tensor(0.0)}
    clf = perfect_classifier(loss)
    feat, label = make_batch(torch.float32, 0)
    out = loss(feat, label, classifier=clf)
    logs = loss.log_vars()
    assert set(logs) == {'sar_gate_open', 'sar_updates', 'sar_anchor_conf'}
    assert float(logs['sar_gate_open']) == float(loss.gate_open) == 1.0
    assert float(logs['sar_updates']) == float(loss.num_updates) == 1.0
    with torch.no_grad():
        probs = clf(loss.projector(loss.anchors)[..., None, None]).flatten(
            1).softmax(1)
    torch.testing.assert_close(logs['sar_anchor_conf'],
                               probs.diagonal().min())
    # MMEngine adds only the entries named *loss* to the total
    total, log_vars = BaseModel.parse_losses(None, {**out, **logs})
    torch.testing.assert_close(total, sum(out.values()))
    assert log_vars['sar_gate_open'] == 1.0


def test_a_loss_name_that_would_make_the_scalars_losses_is_refused():
    """The logged scalars are named after ``loss_name``; one with ``loss``
    after the prefix would make MMEngine add them to the total."""
    with pytest.raises(ValueError, match='loss_name.*loss_sarloss'):
        make_loss(loss_name='loss_sarloss')
    assert set(make_loss(loss_name='loss_sar2').log_vars()) == {
        'sar2_gate_open', 'sar2_updates'}
