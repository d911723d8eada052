"""Property tests of every feature loss (issue 10).

Every loss registered in ``mmseg.registry.MODELS`` that derives from
:class:`~sar_plugin.losses.FeatureLoss` (the rule of
``test_anchor_losses.registered_feature_losses``) is built through the
registry (plus variants) and checked with hypothesis over random shapes
(per-pixel ``N x C x H x W`` and per-image ``N x C``), K, an ignore ratio
from 0 % to 100 %, absent classes, feature magnitudes from 1e-6 to 1e6
(log scale) and float32 / bfloat16 features:

1. every returned term is finite;
2. the gradients w.r.t. the features, the loss' and the classifier's
   parameters are finite;
3. ignored positions get exactly zero gradient, also when the features at
   ignored positions are NaN / +-inf (the loss and every gradient then stay
   finite);
4. training mode: a NaN / inf at a valid position leaves every buffer (and
   parameter) bit-identical and emits exactly one ``NonFiniteInputWarning``
   naming the loss class; for SAR also a non-finite classifier output;
5. eval mode: no buffer ever changes.

Tensors are drawn from a torch generator seeded by hypothesis, so a
falsifying example is a small dict of plain parameters (``p``) that
:func:`make_batch` turns back into the tensors.
"""
import copy
import math
import os
import tempfile
import warnings

import pytest
import torch
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from mmseg.registry import MODELS
from torch import nn

import sar_plugin.losses as losses
from sar_plugin.losses import NonFiniteInputWarning
from test_anchor_losses import registered_feature_losses  # the same rule

IGNORE = 255

# hypothesis caches (e.g. its 'constants' cache) go to the temporary
# directory, not into a `.hypothesis` folder of the shared checkout
if not os.getenv('HYPOTHESIS_STORAGE_DIRECTORY'):
    set_hypothesis_home_dir(
        os.path.join(tempfile.gettempdir(), 'sar_plugin-hypothesis'))

# ------------------------------------------------------------------ cases
# every FeatureLoss subclass registered in MODELS
LOSS_NAMES = sorted(registered_feature_losses())

VARIANTS = {
    'ANCMLoss': [('euclidean', dict(distance='euclidean')),
                 ('cosine', dict(distance='cosine'))],
    'CenterLoss': [('learned', dict(center_mode='learned')),
                   ('ema', dict(center_mode='ema'))],
    # the gate rarely opens with a random classifier: the 'fitted' classifier
    # of the strategies and the 'set' preparation open it; the latched,
    # easy-gate variant keeps it open once opened
    'SARLoss': [('mse', dict(pull='mse')),
                ('cosine', dict(pull='cosine')),
                ('mse-easygate', dict(pull='mse', gate='latched',
                                      update_conf=0.01, filter_conf=1.0))],
}

CASES = [(f'{name}-{variant}', dict(type=name, **kwargs))
         for name in LOSS_NAMES
         for variant, kwargs in VARIANTS.get(name, [('default', {})])]
CASE_IDS = [c[0] for c in CASES]
SAR_CASES = [c for c in CASES if c[1]['type'] == 'SARLoss']

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    database=None,  # nothing written into the shared checkout
    derandomize=True,  # the same examples on every run and machine
    # no 'explain' phase: it re-runs a failing test many times (minutes on
    # a shared 2-core machine) for a comment in the report
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target,
            Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow,
                           HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])


def test_cases_cover_every_registered_loss():
    assert set(LOSS_NAMES) >= {'SARLoss', 'ANCMLoss', 'HALLoss', 'LDMATLoss',
                               'LargeMarginLoss', 'CenterLoss'}
    for name in LOSS_NAMES:
        assert MODELS.get(name) is getattr(losses, name), name
    assert {c[1]['type'] for c in CASES} == set(LOSS_NAMES)


# -------------------------------------------------------------- strategies
@st.composite
def batch_params(draw, train=st.booleans(),
                 clf=st.sampled_from(['random', 'fitted']), need_valid=False):
    """Plain parameters of one batch (see :func:`make_batch`).

    ``need_valid``: at least one position is not ignored.
    """
    layout = draw(st.sampled_from(['pixel', 'image']))
    if layout == 'pixel':
        n = draw(st.integers(1, 3))
        h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    else:  # per-image: N rows only, a few more of them is still tiny
        n, h, w = draw(st.integers(1, 6)), 1, 1
    m = n * h * w
    k = draw(st.integers(2, 6))
    classes = sorted(draw(st.sets(st.integers(0, k - 1), min_size=1)))
    return dict(
        layout=layout, n=n, h=h, w=w, k=k,
        c=draw(st.integers(1, 8)),  # raised to what the loss needs, below
        classes=classes,
        n_ignored=draw(st.integers(0, m - 1 if need_valid else m)),
        log_mag=draw(st.floats(-6.0, 6.0)),
        dtype=draw(st.sampled_from(['float32', 'bfloat16'])),
        seed=draw(st.integers(0, 2**16)),
        # 'warm': one finite training step first; 'set': state buffers set
        # directly (SAR: semantic anchors + open gate; centres: initialised)
        prep=draw(st.sampled_from(['none', 'warm', 'set'])),
        train=draw(train),
        # SAR only: 'fitted' maps the embedded anchors to 8 * I (gate opens)
        clf=draw(clf),
    )


poison_params = st.fixed_dictionaries(dict(
    kind=st.sampled_from(['nan', 'inf', '-inf', 'mixed']),
    channel=st.one_of(st.none(), st.integers(0, 7)),  # None: whole vector
))

maybe_poison = st.one_of(st.none(), poison_params)

# a NaN / inf at one valid position (index taken modulo the valid count)
valid_poison_params = st.fixed_dictionaries(dict(
    kind=st.sampled_from(['nan', 'inf', '-inf']),
    channel=st.one_of(st.none(), st.integers(0, 7)),
    position=st.integers(0, 1000),
))

BASE = dict(layout='pixel', n=2, h=3, w=3, k=3, c=4, classes=[0, 1, 2],
            n_ignored=4, log_mag=0.0, dtype='float32', seed=0, prep='none',
            train=True, clf='random')
ALL_IGNORED = dict(BASE, n_ignored=18)
ONE_CLASS = dict(BASE, classes=[1])
BIG_BF16 = dict(BASE, log_mag=6.0, dtype='bfloat16', prep='set')
TINY_BF16 = dict(BASE, log_mag=-6.0, dtype='bfloat16', prep='warm',
                 clf='fitted')
NAN_ALL = dict(kind='nan', channel=None)
# C >= K: the fitted classifier opens SAR's gate in the warm-up step
GATE_OPEN = dict(BASE, k=3, c=6, clf='fitted', prep='warm')


# ----------------------------------------------------------------- helpers
_MIN_C = {}


def min_channels(cfg, k):
    """The smallest C the loss accepts for K classes (ANCM's simplex needs
    C >= K - 1)."""
    key = (repr(sorted(cfg.items())), k)
    if key not in _MIN_C:
        for c in range(1, 64):
            try:
                MODELS.build(dict(cfg, num_classes=k, channels=c))
            except ValueError as err:
                if 'channels' not in str(err):
                    raise
                continue
            _MIN_C[key] = c
            break
    return _MIN_C[key]


def build(cfg, p):
    """The loss for the example, its C, in the drawn mode."""
    c = max(p['c'], min_channels(cfg, p['k']))
    loss = MODELS.build(dict(cfg, num_classes=p['k'], channels=c))
    loss.train(p['train'])
    return loss, c


def make_batch(p, c, seed_offset=0):
    """Features (leaf, not yet requiring grad) and labels of ``p``."""
    gen = torch.Generator().manual_seed(p['seed'] + seed_offset)
    n, h, w = p['n'], p['h'], p['w']
    if p['layout'] == 'pixel':
        fshape, lshape = (n, c, h, w), (n, h, w)
    else:
        fshape, lshape = (n, c), (n,)
    feat = torch.randn(fshape, generator=gen, dtype=torch.float64)
    feat = (feat * 10.0**p['log_mag']).to(getattr(torch, p['dtype']))
    classes = torch.tensor(p['classes'])
    label = classes[torch.randint(len(classes), lshape, generator=gen)]
    m = label.numel()
    ignored = torch.randperm(m, generator=gen)[:p['n_ignored']]
    label.view(-1)[ignored] = IGNORE
    return feat, label


def set_row(feat, m, channel, value):
    """Write ``value`` at flat position ``m`` (``channel`` or all)."""
    ch = slice(None) if channel is None else channel % feat.shape[1]
    if feat.dim() == 4:
        _, _, h, w = feat.shape
        b, rest = divmod(m, h * w)
        y, x = divmod(rest, w)
        feat[b, ch, y, x] = value
    else:
        feat[m, ch] = value


def rows(t):
    """``M x C`` copy of a per-pixel or per-image tensor."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]) if t.dim() == 4 \
        else t


def poison(feat, positions, spec, seed):
    """Non-finite values at ``positions`` (flat indices) of ``feat``."""
    gen = torch.Generator().manual_seed(seed)
    pool = [math.nan, math.inf, -math.inf]
    for m in positions:
        if spec['kind'] == 'mixed':
            value = pool[int(torch.randint(3, (), generator=gen))]
        else:
            value = float(spec['kind'])
        set_row(feat, int(m), spec['channel'], value)


def make_classifier(loss, p, c):
    """1x1 conv (per-pixel) or linear (per-image) classifier, float32."""
    k = p['k']
    gen = torch.Generator().manual_seed(p['seed'] + 7)
    weight = torch.randn(k, c, generator=gen) / math.sqrt(c)
    bias = 0.1 * torch.randn(k, generator=gen)
    if p['clf'] == 'fitted' and hasattr(loss, 'projector'):
        # W with emb @ W^T = 8 I (exact when C >= K and emb has full rank);
        # on a copy so that the projector's BN statistics are not touched
        with torch.no_grad():
            emb = copy.deepcopy(loss.projector)(loss.anchors).double()
            weight = (8.0 * torch.linalg.pinv(emb).t()).float()
            bias = torch.zeros(k)
    clf = nn.Conv2d(c, k, 1) if p['layout'] == 'pixel' else nn.Linear(c, k)
    with torch.no_grad():
        clf.weight.copy_(weight.view_as(clf.weight))
        clf.bias.copy_(bias)
    return clf


def prepare(loss, clf, p, c, force_warm=False):
    """Put the loss in the drawn state (``p['prep']``)."""
    gen = torch.Generator().manual_seed(p['seed'] + 3)
    if p['prep'] == 'set':
        with torch.no_grad():
            for name, buf in loss.named_buffers():
                leaf = name.rsplit('.', 1)[-1]
                if leaf in ('semantic_anchors', 'centers'):
                    buf.copy_(torch.randn(buf.shape, generator=gen))
                elif leaf in ('gate_open', 'initialized'):
                    buf.fill_(True)
                elif leaf == 'num_updates':
                    buf.fill_(1)
    if p['prep'] == 'warm' or force_warm:
        mode = loss.training
        loss.train()
        feat, label = make_batch(p, c, seed_offset=1)
        loss(feat, label, classifier=clf)
        loss.train(mode)


def terms_of(loss, out):
    return out if isinstance(out, dict) else {loss.loss_name: out}


def grad_inputs(loss, clf):
    params = [(f'loss.{n}', t) for n, t in loss.named_parameters()]
    params += [(f'classifier.{n}', t) for n, t in clf.named_parameters()]
    return [(n, t) for n, t in params if t.requires_grad]


def gradients(loss, clf, feat, terms):
    """``{name: grad}`` of the sum of the terms (unused inputs: zeros)."""
    named = [('feat', feat)] + grad_inputs(loss, clf)
    total = sum(terms.values())
    grads = torch.autograd.grad(total, [t for _, t in named],
                                allow_unused=True)
    return {n: torch.zeros_like(t) if g is None else g
            for (n, t), g in zip(named, grads)}


def snapshot(module):
    return {n: t.detach().clone() for n, t in module.named_buffers()}


def same_bits(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        width = {2: torch.int16, 4: torch.int32, 8: torch.int64}
        kind = width[a.element_size()]
        return torch.equal(a.contiguous().view(kind), b.contiguous().view(kind))
    return torch.equal(a, b)


def changed(before, module):
    after = dict(module.named_buffers())
    return [n for n in before if not same_bits(before[n], after[n].detach())]


def nonfinite_warnings(record):
    return [w for w in record if issubclass(w.category, NonFiniteInputWarning)]


def describe(p, c):
    return f'(effective channels C={c})'


def note_gate(loss):
    """Coverage of SAR's pull (``--hypothesis-show-statistics``)."""
    if hasattr(loss, 'gate_open'):
        event(f'SAR gate_open={bool(loss.gate_open)}')


def instance(cfg, p):
    """The loss, its classifier (prepared as ``p`` says) and a batch."""
    loss, c = build(cfg, p)
    clf = make_classifier(loss, p, c)
    prepare(loss, clf, p, c)
    feat, label = make_batch(p, c)
    return loss, clf, feat, label, c


def every_loss_on_any_batch(test):
    """Run ``test(case, cfg, p)`` for every loss on drawn batches and on the
    edge cases (all ignored, one class, large and tiny bf16 values)."""
    for edge in (TINY_BF16, BIG_BF16, ONE_CLASS, ALL_IGNORED):
        test = example(p=edge)(test)
    test = SETTINGS(given(p=batch_params())(test))
    return pytest.mark.parametrize('case,cfg', CASES, ids=CASE_IDS)(test)


# ------------------------------------------------------- 1. finite terms
@every_loss_on_any_batch
def test_terms_are_finite(case, cfg, p):
    loss, clf, feat, label, c = instance(cfg, p)
    terms = terms_of(loss, loss(feat, label, classifier=clf))
    bad = {k: float(v) for k, v in terms.items()
           if not bool(torch.isfinite(v).all())}
    assert not bad, f'non-finite terms {bad} {describe(p, c)}'


# ---------------------------------------------------- 2. finite gradients
@every_loss_on_any_batch
def test_gradients_are_finite(case, cfg, p):
    loss, clf, feat, label, c = instance(cfg, p)
    feat.requires_grad_(True)
    terms = terms_of(loss, loss(feat, label, classifier=clf))
    grads = gradients(loss, clf, feat, terms)
    note_gate(loss)
    bad = [n for n, g in grads.items() if not bool(torch.isfinite(g).all())]
    assert not bad, f'non-finite gradients w.r.t. {bad} {describe(p, c)}'


# ------------------------------------ 3. ignored positions: zero gradient
@pytest.mark.parametrize('case,cfg', CASES, ids=CASE_IDS)
@SETTINGS
@given(p=batch_params(), bad=maybe_poison)
@example(p=BASE, bad=NAN_ALL)
@example(p=ALL_IGNORED, bad=NAN_ALL)
@example(p=ONE_CLASS, bad=dict(kind='inf', channel=0))
def test_ignored_positions_get_zero_gradient(case, cfg, p, bad):
    loss, clf, feat, label, c = instance(cfg, p)
    ignored = label.reshape(-1) == IGNORE
    if bad is not None:  # non-finite values at ignored positions only
        poison(feat, ignored.nonzero().flatten(), bad, p['seed'])
    feat.requires_grad_(True)
    terms = terms_of(loss, loss(feat, label, classifier=clf))
    grads = gradients(loss, clf, feat, terms)
    note_gate(loss)
    problems = []
    nonfinite_terms = {k: float(v) for k, v in terms.items()
                       if not bool(torch.isfinite(v).all())}
    if nonfinite_terms:
        problems.append(f'non-finite terms {nonfinite_terms}')
    nonfinite_grads = [n for n, g in grads.items()
                       if not bool(torch.isfinite(g).all())]
    if nonfinite_grads:
        problems.append(f'non-finite gradients w.r.t. {nonfinite_grads}')
    at_ignored = rows(grads['feat'])[ignored]
    if not bool((at_ignored == 0).all()):
        problems.append('non-zero gradient at ignored positions: '
                        f'{at_ignored[(at_ignored != 0).any(1)].tolist()}')
    assert not problems, '; '.join(problems) + f' {describe(p, c)}'


# ----------------------- 4. state unchanged on non-finite input (training)
def _nonfinite_step(loss, call):
    """Snapshot, run ``call`` recording warnings; return (changed buffers,
    changed parameters, NonFiniteInputWarnings)."""
    buffers = snapshot(loss)
    params = {n: t.detach().clone() for n, t in loss.named_parameters()}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        call()
    moved = [n for n, t in loss.named_parameters()
             if not same_bits(params[n], t.detach())]
    return changed(buffers, loss), moved, nonfinite_warnings(record)


def _warning_problems(loss, found):
    name = type(loss).__name__
    problems = []
    if len(found) != 1:
        problems.append(f'{len(found)} NonFiniteInputWarning(s), expected 1')
    elif name not in str(found[0].message):
        problems.append(f'warning {str(found[0].message)!r} does not name '
                        f'{name}')
    return problems


@pytest.mark.parametrize('case,cfg', CASES, ids=CASE_IDS)
@SETTINGS
@given(p=batch_params(train=st.just(True), need_valid=True),
       bad=valid_poison_params)
@example(p=GATE_OPEN, bad=dict(kind='nan', channel=None, position=0))
@example(p=dict(GATE_OPEN, dtype='bfloat16', prep='set'),
         bad=dict(kind='inf', channel=1, position=5))
def test_nonfinite_input_leaves_state_unchanged(case, cfg, p, bad):
    loss, c = build(cfg, p)
    clf = make_classifier(loss, p, c)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        prepare(loss, clf, p, c, force_warm=True)  # one finite step
    problems = []
    if nonfinite_warnings(record):
        problems.append('NonFiniteInputWarning on the finite warm-up step')
    feat, label = make_batch(p, c)
    valid = (label.reshape(-1) != IGNORE).nonzero().flatten()
    where = int(valid[bad['position'] % len(valid)])
    set_row(feat, where, bad['channel'], float(bad['kind']))
    clf_before = {n: t.detach().clone() for n, t in clf.named_parameters()}

    buf, par, found = _nonfinite_step(
        loss, lambda: loss(feat, label, classifier=clf))
    if buf:
        problems.append(f'buffers changed: {buf}')
    par += [f'classifier.{n}' for n, t in clf.named_parameters()
            if not same_bits(clf_before[n], t.detach())]
    if par:
        problems.append(f'parameters changed: {par}')
    problems += _warning_problems(loss, found)
    assert not problems, '; '.join(problems) + f' {describe(p, c)}'


@pytest.mark.parametrize('case,cfg', SAR_CASES, ids=[c[0] for c in SAR_CASES])
@SETTINGS
@given(p=batch_params(train=st.just(True), clf=st.just('fitted')),
       kind=st.sampled_from(['nan', 'inf', '-inf']),
       entry=st.integers(0, 1000))
@example(p=GATE_OPEN, kind='nan', entry=0)
def test_sar_nonfinite_classifier_leaves_state_unchanged(case, cfg, p, kind,
                                                         entry):
    # the fitted classifier opens the gate in the warm-up (when it can)
    loss, c = build(cfg, p)
    clf = make_classifier(loss, p, c)
    prepare(loss, clf, p, c, force_warm=True)
    with torch.no_grad():
        clf.weight.view(-1)[entry % clf.weight.numel()] = float(kind)
        # on a copy of the projector: its BN statistics stay untouched
        emb = copy.deepcopy(loss.projector)(loss.anchors)
        logits = losses.classifier_logits(clf, emb)
    assert not bool(torch.isfinite(logits).all())  # the premise
    feat, label = make_batch(p, c)
    state = ('semantic_anchors', 'num_updates', 'gate_open')
    before = {n: getattr(loss, n).clone() for n in state}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        loss(feat, label, classifier=clf)
    problems = [f'{n} changed ({before[n].tolist()} -> '
                f'{getattr(loss, n).tolist()})' for n in state
                if not same_bits(before[n], getattr(loss, n))]
    problems += _warning_problems(loss, nonfinite_warnings(record))
    assert not problems, '; '.join(problems) + f' {describe(p, c)}'


# ------------------------------------------ 5. eval mode: buffers frozen
@pytest.mark.parametrize('case,cfg', CASES, ids=CASE_IDS)
@SETTINGS
@given(p=batch_params(train=st.just(False)), bad=maybe_poison,
       where=st.sampled_from(['valid', 'ignored', 'anywhere']))
def test_eval_mode_never_changes_buffers(case, cfg, p, bad, where):
    loss, c = build(cfg, p)
    clf = make_classifier(loss, p, c)
    prepare(loss, clf, p, c)  # 'warm' runs in training mode, then eval
    loss.eval()
    feat, label = make_batch(p, c)
    if bad is not None:
        flat = label.reshape(-1)
        mask = {'valid': flat != IGNORE, 'ignored': flat == IGNORE,
                'anywhere': torch.ones_like(flat, dtype=torch.bool)}[where]
        poison(feat, mask.nonzero().flatten(), bad, p['seed'])
    before = snapshot(loss)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        loss(feat.requires_grad_(True), label, classifier=clf)
    moved = changed(before, loss)
    assert not moved, f'buffers changed in eval mode: {moved} ' \
        f'{describe(p, c)}'
