"""ANCM, HAL, LDMAT, LargeMargin and Center losses against slow loop
references (float64, values and gradients, state updates), the invariants
every registered feature loss (SAR included) shares, error messages, anchor
constructions, LDMAT's sampling, a two-rank state check and short
optimisations on a toy problem."""
import copy
import inspect
import math

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import nn

from conftest import free_port
from sar_plugin.anchors import build_anchors
from sar_plugin.losses import FeatureLoss
from sar_plugin.losses.ancm import ANCMLoss
from sar_plugin.losses.center import CenterLoss
from sar_plugin.losses.hal import HALLoss
from sar_plugin.losses.large_margin import LargeMarginLoss
from sar_plugin.losses.ldmat import LDMATLoss, balanced_quota

K, C = 4, 5
TOL = dict(rtol=1e-10, atol=1e-10)
ALL = (ANCMLoss, HALLoss, LDMATLoss, LargeMarginLoss, CenterLoss)

# every loss, in the configurations the reference tests cover
CONFIGS = [
    ('ancm_euclid', ANCMLoss, dict(anchor_scale=2.0)),
    ('ancm_euclid_sum', ANCMLoss, dict(anchor_scale=2.0,
                                       channel_reduction='sum')),
    ('ancm_onehot', ANCMLoss, dict(anchor_init='onehot')),
    ('ancm_cosine', ANCMLoss, dict(distance='cosine', scale=4.0)),
    ('ancm_weighted', ANCMLoss, dict(class_weight=[1.0, 2.0, 0.5, 3.0])),
    ('hal', HALLoss, dict()),
    ('hal_simplex', HALLoss, dict(anchor_init='simplex', temperature=0.5)),
    ('ldmat', LDMATLoss, dict()),
    ('ldmat_relax', LDMATLoss, dict(relax=0.3, margin=math.sqrt(2))),
    ('ldmat_nohinge', LDMATLoss, dict(hinge=False, normalize=False)),
    ('ldmat_nohinge_sum', LDMATLoss, dict(hinge=False, normalize=False,
                                          channel_reduction='sum')),
    ('ldmat_weighted', LDMATLoss, dict(class_weight=[1.0, 2.0, 0.5, 3.0])),
    ('large_margin', LargeMarginLoss, dict(margin=2.0, lambda_m=0.7)),
    ('large_margin_sum', LargeMarginLoss, dict(margin=2.0, lambda_m=0.7,
                                               channel_reduction='sum')),
    ('center', CenterLoss, dict()),
    ('center_sum', CenterLoss, dict(channel_reduction='sum')),
    ('center_ema', CenterLoss, dict(center_mode='ema', momentum=0.7)),
    ('center_weighted', CenterLoss, dict(class_weight=[1.0, 2.0, 0.5, 3.0])),
]


def make(cls, **kwargs):
    return cls(num_classes=K, channels=C, **kwargs)


def make_batch(dtype=torch.float64, seed=0, classes=range(K), n=2, h=3, w=4):
    """Per-pixel features N x C x H x W and labels with some ignored pixels."""
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, C, h, w, generator=gen, dtype=dtype)
    classes = torch.as_tensor(list(classes))
    label = classes[torch.randint(len(classes), (n, h, w), generator=gen)]
    label[0, 0, :2] = 255
    label[1, 2, 3] = 255
    return feat, label


def make_classifier(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return nn.Conv2d(C, K, 1).to(dtype)


def total(out):
    return sum(out.values()) if isinstance(out, dict) else out


# --------------------------------------------------------------- references
def samples(feat, label):
    """Valid (feature, label) pairs in N, H, W order, by explicit loops."""
    out = []
    if feat.dim() == 2:
        for i in range(feat.shape[0]):
            if int(label[i]) != 255:
                out.append((feat[i], int(label[i])))
        return out
    n, _, h, w = feat.shape
    for b in range(n):
        for y in range(h):
            for x in range(w):
                if int(label[b, y, x]) != 255:
                    out.append((feat[b, :, y, x], int(label[b, y, x])))
    return out


def norm(v):
    return torch.sqrt(sum(v[c] ** 2 for c in range(len(v))))


def dot(u, v):
    return sum(u[c] * v[c] for c in range(len(u)))


def per_channel(loss):
    """The divisor of a squared distance: C in the scale-free ('mean')
    form, 1 in the paper's ('sum')."""
    return C if getattr(loss, 'channel_reduction', 'sum') == 'mean' else 1


def weighted_mean(terms, weights):
    if not terms:
        return torch.zeros((), dtype=torch.float64)
    return sum(t * w for t, w in zip(terms, weights)) / sum(weights)


def ref_softmax_nll(feat, label, anchors, score, class_weight=None):
    """mean -log softmax_k(score(f, a_k))[y], weighted by class."""
    terms, weights = [], []
    for f, y in samples(feat, label):
        s = [score(f, anchors[k]) for k in range(K)]
        log_z = torch.log(sum(torch.exp(v) for v in s))
        terms.append(log_z - s[y])
        weights.append(1.0 if class_weight is None else class_weight[y])
    return weighted_mean(terms, weights)


def ref_ancm(loss, feat, label):
    cw = loss.class_weight.tolist() if loss.class_weight is not None else None
    if loss.distance == 'euclidean':
        def score(f, a):
            return -sum((f[c] - a[c]) ** 2
                        for c in range(C)) / 2 / per_channel(loss)
    else:
        def score(f, a):
            return -loss.scale * (1 - dot(f, a) / (norm(f) * norm(a)))
    return ref_softmax_nll(feat, label, loss.anchors, score, cw)


def ref_hal(loss, feat, label):
    def score(f, a):
        fh, ah = f / norm(f), a / norm(a)
        return -sum((fh[c] - ah[c]) ** 2 for c in range(C)) / loss.temperature
    return ref_softmax_nll(feat, label, loss.anchors, score)


def ref_ldmat(loss, feat, label):
    pts = samples(feat, label)
    cw = loss.class_weight.tolist() if loss.class_weight is not None else None
    m, r = loss.margin, loss.relax
    rows, weights = [], []
    for i, (fi, yi) in enumerate(pts):
        row = 0
        for j, (fj, yj) in enumerate(pts):
            if i == j:
                continue
            u, v = (fi, fj)
            if loss.normalize:
                u, v = fi / norm(fi), fj / norm(fj)
            d = norm(u - v)
            if not loss.normalize:
                d = d / math.sqrt(per_channel(loss))
            if not loss.hinge:
                row = row + (d - (0 if yi == yj else m)) ** 2
            elif yi == yj:
                row = row + torch.clamp(d - r * m, min=0) ** 2
            else:
                row = row + torch.clamp(m - d, min=0) ** 2
        rows.append(row / max(len(pts) - 1, 1))
        weights.append(1.0 if cw is None else cw[yi])
    return weighted_mean(rows, weights)


def ref_momentum(centers, initialized, feat, label, momentum):
    """Partial momentum update with loops: returns new (centers, init)."""
    centers, initialized = centers.clone(), list(initialized)
    pts = samples(feat, label)
    for k in range(K):
        members = [f.detach() for f, y in pts if y == k]
        if not members:
            continue
        mean = sum(members) / len(members)
        if initialized[k]:
            centers[k] = momentum * centers[k] + (1 - momentum) * mean
        else:
            centers[k] = mean
            initialized[k] = True
    return centers, initialized


def ref_large_margin(loss, feat, label, classifier, state):
    """One training step. ``state`` = (centers, initialized), updated."""
    centers, init = ref_momentum(*state, feat, label, loss.momentum)
    pts = samples(feat, label)
    cw = loss.class_weight.tolist() if loss.class_weight is not None else None
    compact = weighted_mean(
        [sum((f[c] - centers[y][c]) ** 2 for c in range(C)) / per_channel(loss)
         for f, y in pts], [1.0 if cw is None else cw[y] for _, y in pts])
    w, b = classifier.weight[:, :, 0, 0], classifier.bias
    hinges = []
    for k in sorted({y for _, y in pts}):
        dists = [(dot(w[k] - w[j], centers[k]) + b[k] - b[j]) /
                 norm(w[k] - w[j]) / math.sqrt(per_channel(loss))
                 for j in range(K) if j != k]
        smallest = dists[0]
        for d in dists[1:]:
            smallest = torch.minimum(smallest, d)
        hinges.append(torch.clamp(loss.margin - smallest, min=0))
    margin = sum(hinges) / len(hinges) if hinges else compact * 0
    out = {f'{loss.loss_name}_compact': loss.lambda_c * compact,
           f'{loss.loss_name}_margin': loss.lambda_m * margin}
    return out, (centers, init)


def ref_center(loss, feat, label, state):
    centers = loss.centers
    if loss.center_mode == 'ema':
        centers, init = ref_momentum(*state, feat, label, loss.momentum)
        state = (centers, init)
    pts = samples(feat, label)
    cw = loss.class_weight.tolist() if loss.class_weight is not None else None
    value = weighted_mean(
        [sum((f[c] - centers[y][c]) ** 2 for c in range(C)) / 2 /
         per_channel(loss) for f, y in pts], [1.0 if cw is None else cw[y] for _, y in pts])
    return value, state


# ------------------------------------------------------ reference agreement
@pytest.mark.parametrize('name,cls,kwargs', CONFIGS,
                         ids=[c[0] for c in CONFIGS])
def test_matches_loop_reference(name, cls, kwargs):
    """Values, feature (and classifier/centre) gradients and centre updates
    over three steps, the first two missing some classes."""
    loss = make(cls, loss_weight=1.5, **kwargs).double().train()
    ref_loss = copy.deepcopy(loss)
    clf = make_classifier()
    ref_clf = copy.deepcopy(clf)
    state = (torch.zeros(K, C, dtype=torch.float64), [False] * K)
    for step, classes in enumerate([(0, 2), (2, 3), range(K)]):
        feat, label = make_batch(seed=step, classes=classes)
        feat.requires_grad_(True)
        ref_feat = feat.detach().clone().requires_grad_(True)
        out = loss(feat, label, classifier=clf)
        if cls is ANCMLoss:
            ref = ref_ancm(ref_loss, ref_feat, label)
        elif cls is HALLoss:
            ref = ref_hal(ref_loss, ref_feat, label)
        elif cls is LDMATLoss:
            ref = ref_ldmat(ref_loss, ref_feat, label)
        elif cls is LargeMarginLoss:
            ref, state = ref_large_margin(ref_loss, ref_feat, label, ref_clf,
                                          state)
        else:
            ref, state = ref_center(ref_loss, ref_feat, label, state)
        if isinstance(ref, dict):
            assert set(out) == set(ref)
            for key in ref:
                torch.testing.assert_close(out[key], 1.5 * ref[key], **TOL)
            ref = sum(ref.values())
        else:
            assert out.shape == ()
            torch.testing.assert_close(out, 1.5 * ref, **TOL)
        clf.zero_grad()
        ref_clf.zero_grad()
        total(out).backward()
        (1.5 * ref).backward()
        torch.testing.assert_close(feat.grad, ref_feat.grad, **TOL)
        if cls is LargeMarginLoss:
            torch.testing.assert_close(clf.weight.grad, ref_clf.weight.grad,
                                       **TOL)
            torch.testing.assert_close(clf.bias.grad, ref_clf.bias.grad, **TOL)
        if isinstance(getattr(loss, "centers", None), nn.Parameter):
            torch.testing.assert_close(loss.centers.grad,
                                       ref_loss.centers.grad, **TOL)
        if cls is LargeMarginLoss or kwargs.get('center_mode') == 'ema':
            torch.testing.assert_close(loss.centers, state[0], **TOL)
            assert loss.initialized.tolist() == state[1]
            if step == 0:  # first sight = mean, never seen = untouched
                assert state[1] == [True, False, True, False]
                assert bool((loss.centers[[1, 3]] == 0).all())


@pytest.mark.parametrize('cls', [LargeMarginLoss, CenterLoss])
def test_momentum_absent_classes_do_not_move(cls):
    kwargs = dict(center_mode='ema') if cls is CenterLoss else {}
    loss = make(cls, momentum=0.8, **kwargs).double().train()
    clf = make_classifier()
    loss(*make_batch(seed=0), classifier=clf)
    before = loss.centers.clone()
    feat, label = make_batch(seed=1, classes=(1,))
    loss(feat, label, classifier=clf)
    keep = [0, 2, 3]
    assert torch.equal(loss.centers[keep], before[keep])
    mean = feat.permute(0, 2, 3, 1)[label != 255].mean(0)
    torch.testing.assert_close(loss.centers[1], 0.8 * before[1] + 0.2 * mean,
                               **TOL)
    # eval mode: no update at all
    loss.eval()
    frozen = loss.centers.clone()
    loss(*make_batch(seed=2), classifier=clf)
    assert torch.equal(loss.centers, frozen)


# ------------------------------------------------------------- invariants
def registered_feature_losses():
    """``{name: class}`` of every loss registered in ``MODELS`` that derives
    from :class:`FeatureLoss`: the shared invariants cover each of them, so
    a loss registered later is covered without editing this file."""
    return {name: cls for name, cls in MODELS.module_dict.items()
            if isinstance(cls, type) and issubclass(cls, FeatureLoss)}


def fitted_classifier(loss, dtype=torch.float64):
    """A 1x1 conv mapping SAR's embedded anchors to 8 * I (C >= K): every
    anchor is its own class with confidence > ``update_conf`` (and >
    ``filter_conf``), so the gate opens and the pull is exercised. The
    anchors are embedded by a copy of the projector, whose norm statistics
    stay untouched."""
    with torch.no_grad():
        emb = copy.deepcopy(loss.projector)(loss.anchors).double()
        weight = 8.0 * torch.linalg.pinv(emb).t()
    clf = nn.Conv2d(C, K, 1).to(dtype)
    with torch.no_grad():
        clf.weight.copy_(weight[:, :, None, None])
        clf.bias.zero_()
    return clf


# per class: the classifier that exercises all of the loss (default: a
# random 1x1 conv) and a premise checked after a training call
CLASSIFIERS = {'SARLoss': fitted_classifier}
PREMISES = {'SARLoss': lambda loss: bool(loss.gate_open)}  # the pull acts

# the reference configurations plus variants without a loop reference here;
# every other registered feature loss runs with its defaults
INVARIANTS = [(name, cls.__name__, kwargs) for name, cls, kwargs in CONFIGS]
INVARIANTS += [
    ('ldmat_sampled', 'LDMATLoss', dict(max_samples=8, sample_seed=0)),
    ('sar', 'SARLoss', dict()),
    ('sar_cosine_latched', 'SARLoss', dict(pull='cosine', gate='latched')),
]
INVARIANTS += [(name.lower(), name, {})
               for name in sorted(registered_feature_losses())
               if name not in {case[1] for case in INVARIANTS}]
NAMES = [c[0] for c in INVARIANTS]
REGISTERED = sorted(registered_feature_losses())


def build(name, dtype=torch.float64):
    _, cls_name, kwargs = next(c for c in INVARIANTS if c[0] == name)
    return make(MODELS.get(cls_name), **kwargs).to(dtype).train()


def classifier_for(loss, dtype=torch.float64):
    factory = CLASSIFIERS.get(type(loss).__name__)
    return make_classifier(dtype) if factory is None else factory(loss, dtype)


def check_premise(loss):
    premise = PREMISES.get(type(loss).__name__)
    assert premise is None or premise(loss), 'the test does not exercise ' \
        f'all of {type(loss).__name__}'


def as_linear(conv):
    """The ``nn.Linear`` of a per-image head, with ``conv``'s weights."""
    linear = nn.Linear(C, K).to(conv.weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(conv.weight[:, :, 0, 0])
        linear.bias.copy_(conv.bias)
    return linear


def test_invariants_cover_every_registered_loss():
    registered = registered_feature_losses()
    assert set(registered) >= {'SARLoss', 'ANCMLoss', 'HALLoss', 'LDMATLoss',
                               'LargeMarginLoss', 'CenterLoss'}
    assert {case[1] for case in INVARIANTS} == set(registered)
    assert REGISTERED == sorted(registered)
    for name, cls in registered.items():
        assert MODELS.get(name) is cls


@pytest.mark.parametrize('name', NAMES)
def test_per_pixel_equals_per_image(name):
    loss = build(name)
    other = copy.deepcopy(loss)
    feat, label = make_batch(seed=3)
    clf = classifier_for(loss)
    a = loss(feat, label, classifier=clf)
    b = other(feat.permute(0, 2, 3, 1).reshape(-1, C), label.reshape(-1),
              classifier=as_linear(clf))
    check_premise(loss)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss.state_dict(), other.state_dict())


@pytest.mark.parametrize('classes', [range(K), (0, 1, 2)],
                         ids=['all_classes', 'class_3_absent'])
@pytest.mark.parametrize('name', NAMES)
def test_ignored_pixels_have_exactly_zero_grad(name, classes):
    loss = build(name)
    feat, label = make_batch(seed=4, classes=classes)
    feat.requires_grad_(True)
    total(loss(feat, label, classifier=classifier_for(loss))).backward()
    check_premise(loss)
    ignored = (label == 255)[:, None].expand_as(feat)
    assert bool((feat.grad[ignored] == 0).all())
    assert bool((feat.grad[~ignored] != 0).any())
    assert bool(torch.isfinite(feat.grad).all())


@pytest.mark.parametrize('name', NAMES)
def test_absent_classes(name):
    loss = build(name)
    feat, label = make_batch(seed=5, classes=(1,))
    feat.requires_grad_(True)
    out = total(loss(feat, label, classifier=classifier_for(loss)))
    out.backward()
    check_premise(loss)
    assert bool(torch.isfinite(out)) and bool(torch.isfinite(feat.grad).all())


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('per_image', [False, True])
def test_all_ignored_gives_zero_with_graph(name, per_image):
    loss = build(name)
    feat, label = make_batch(seed=6)
    label[:] = 255
    if per_image:
        feat, label = feat[:, :, 0, 0].contiguous(), label[:, 0, 0]
    feat.requires_grad_(True)
    clf = classifier_for(loss)
    out = loss(feat, label, classifier=clf)
    check_premise(loss)
    terms = out.values() if isinstance(out, dict) else [out]
    for term in terms:
        assert term.shape == () and float(term) == 0.0
        assert term.requires_grad and term.grad_fn is not None
    total(out).backward()
    assert bool((feat.grad == 0).all())
    if hasattr(loss, 'initialized'):
        assert not bool(loss.initialized.any())


@pytest.mark.parametrize('name', NAMES)
def test_reduced_precision_is_finite(name):
    loss = build(name, torch.float32)
    clf = classifier_for(loss, torch.float32)
    feat, label = make_batch(torch.float32, seed=7)
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast('cpu', dtype=dtype):
            out = loss(feat.clone().requires_grad_(True), label,
                       classifier=clf)
        check_premise(loss)
        for term in (out.values() if isinstance(out, dict) else [out]):
            assert term.dtype == torch.float32 and bool(torch.isfinite(term))
        half = feat.to(dtype).requires_grad_(True)
        ref_loss = copy.deepcopy(loss)
        out = loss(half, label, classifier=clf)
        for term in (out.values() if isinstance(out, dict) else [out]):
            assert term.dtype == torch.float32
        out = total(out)
        out.backward()
        assert bool(torch.isfinite(out)) and half.grad.dtype == dtype
        assert bool(torch.isfinite(half.grad).all())
        ref = total(ref_loss(half.detach().float(), label, classifier=clf))
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


# calls that make the host wait for the device (or are data-dependent
# shapes, which do so on CUDA); a loss' compute() may use none of them
SYNCS = [(torch.Tensor, name) for name in (
    'item', 'cpu', 'tolist', 'numpy', '__bool__', '__int__', '__float__',
    '__index__', 'nonzero', 'argwhere', 'bincount', 'unique',
    'masked_select', 'equal', 'allclose')]
SYNCS += [(torch, name) for name in (
    'nonzero', 'argwhere', 'bincount', 'unique', 'masked_select', 'equal',
    'allclose', 'is_nonzero')]


@pytest.fixture
def host_sync_guard(monkeypatch):
    """While ``guard['on']``, every call of :data:`SYNCS`, boolean-mask
    indexing and the one-argument ``torch.where`` raise."""
    guard = dict(on=False)

    def forbid(what):
        raise AssertionError(f'host sync in the hot path: {what}')

    def wrap(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if guard['on']:
                forbid(name)
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)

    def masked(index):
        items = index if isinstance(index, tuple) else (index,)
        return any(isinstance(i, torch.Tensor) and i.dtype in (
            torch.bool, torch.uint8) for i in items)

    for owner, name in SYNCS:
        wrap(owner, name)
    getitem, setitem, where = (torch.Tensor.__getitem__,
                               torch.Tensor.__setitem__, torch.where)

    def guarded_getitem(self, index):
        if guard['on'] and masked(index):
            forbid('boolean-mask indexing')
        return getitem(self, index)

    def guarded_setitem(self, index, value):
        if guard['on'] and masked(index):
            forbid('boolean-mask assignment')
        return setitem(self, index, value)

    def guarded_where(*args, **kwargs):
        if guard['on'] and len(args) + len(kwargs) == 1:
            forbid('torch.where(condition)')
        return where(*args, **kwargs)

    monkeypatch.setattr(torch.Tensor, '__getitem__', guarded_getitem)
    monkeypatch.setattr(torch.Tensor, '__setitem__', guarded_setitem)
    monkeypatch.setattr(torch, 'where', guarded_where)
    return guard


def test_host_sync_guard_catches_syncs(host_sync_guard):
    x = torch.arange(3.0)
    host_sync_guard['on'] = True
    for call in (lambda: x.sum().item(), lambda: bool(x.any()),
                 lambda: x.nonzero(), lambda: x[x > 0], lambda: x.tolist(),
                 lambda: torch.where(x > 0), lambda: int(x[0])):
        with pytest.raises(AssertionError, match='host sync'):
            call()
    host_sync_guard['on'] = False
    assert x.sum().item() == 3.0


@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('name', NAMES)
def test_hot_path_has_no_host_sync(name, train, host_sync_guard):
    """The forward (compute included) and backward of every loss run without
    a host sync, except the base's one read of the label and finiteness
    checks (``_report``) after compute."""
    loss = build(name).train(train)
    clf = classifier_for(loss)
    feat, label = make_batch(seed=9)
    feat.requires_grad_(True)
    report = loss._report

    def allowed_report(*args):
        host_sync_guard['on'] = False
        report(*args)
        host_sync_guard['on'] = True
    loss._report = allowed_report
    host_sync_guard['on'] = True
    try:
        out = loss(feat, label, classifier=clf)
        total(out).backward()
    finally:
        host_sync_guard['on'] = False
    if train:
        check_premise(loss)
    assert bool(torch.isfinite(feat.grad).all())


ANCHOR_SEEDED = [name for name in REGISTERED if 'anchor_seed' in
                 inspect.signature(MODELS.get(name).__init__).parameters]


def test_anchor_seeded_losses():
    assert set(ANCHOR_SEEDED) >= {'ANCMLoss', 'HALLoss', 'SARLoss'}


@pytest.mark.parametrize('name', ANCHOR_SEEDED)
def test_anchor_seed_none_follows_the_run_seed(name):
    cls = MODELS.get(name)

    def anchors(seed, draws=0):
        torch.manual_seed(seed)
        torch.rand(draws)  # where the global RNG stands does not matter
        return make(cls, anchor_seed=None).anchors

    first = anchors(5)
    assert torch.equal(first, anchors(5, draws=3))
    assert not torch.equal(first, anchors(6))
    assert torch.equal(first, make(cls, anchor_seed=5).anchors)
    # the default stays the fixed seed 0, whatever the run's seed
    torch.manual_seed(5)
    assert torch.equal(make(cls).anchors, make(cls, anchor_seed=0).anchors)
    # drawing the anchors does not consume the global RNG
    loss = make(cls)
    state = torch.get_rng_state()
    loss.register_anchors('gaussian', None, name='probe')
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize('name', REGISTERED)
def test_bad_labels_and_shapes_raise(name):
    cls = MODELS.get(name)
    loss = make(cls)
    clf = make_classifier(torch.float32)
    feat, label = make_batch(torch.float32)
    for bad in (7, -3):
        wrong = label.clone()
        wrong[1, 1, 1] = bad
        with pytest.raises(ValueError, match=f'found label {bad}'):
            loss(feat, wrong, classifier=clf)
    with pytest.raises(ValueError, match='labels of shape'):
        loss(feat, label[:, :2], classifier=clf)
    with pytest.raises(ValueError, match='labels of shape'):
        loss(feat[:, :, 0, 0], label, classifier=clf)
    with pytest.raises(ValueError, match='N x C x H x W or'):
        loss(feat[0], label[0], classifier=clf)
    with pytest.raises(ValueError, match='channels'):
        loss(feat[:, :3], label, classifier=clf)
    with pytest.raises(TypeError, match='integer'):
        loss(feat, label.float(), classifier=clf)
    with pytest.raises(ValueError, match="must start with 'loss_'"):
        make(cls, loss_name='ancm')
    with pytest.raises(ValueError, match='num_classes'):
        cls(channels=C)


def test_default_names_and_bad_options():
    for cls, name in zip(ALL, ('loss_ancm', 'loss_hal', 'loss_ldmat',
                               'loss_large_margin', 'loss_center')):
        assert make(cls).loss_name == name
    bad = [(ANCMLoss, dict(anchor_init='gaussian'), 'anchor_init'),
           (ANCMLoss, dict(distance='l1'), 'distance'),
           (ANCMLoss, dict(scale=0), 'scale'),
           (HALLoss, dict(temperature=0), 'temperature'),
           (HALLoss, dict(anchor_init='onehot'), 'anchor_init'),
           (LDMATLoss, dict(relax=1.0), 'relax'),
           (LDMATLoss, dict(relax=0.2, hinge=False), 'relax'),
           (LDMATLoss, dict(max_samples=1), 'max_samples'),
           (LDMATLoss, dict(margin=0), 'margin'),
           (LargeMarginLoss, dict(momentum=1.0), 'momentum'),
           (CenterLoss, dict(center_mode='sgd'), 'center_mode'),
           (CenterLoss, dict(center_init='ones'), 'center_init')]
    for cls, kwargs, field in bad:
        with pytest.raises(ValueError, match=f'`{field}` must be'):
            make(cls, **kwargs)


def test_large_margin_needs_a_linear_classifier():
    loss = make(LargeMarginLoss)
    feat, label = make_batch(torch.float32)
    with pytest.raises(ValueError, match='linear classifier'):
        loss(feat, label)
    with pytest.raises(TypeError, match='linear classifier'):
        loss(feat, label, classifier=nn.Sequential(nn.Conv2d(C, K, 1)))
    with pytest.raises(TypeError, match='linear classifier'):
        loss(feat, label, classifier=nn.Conv2d(C, K, 3))
    with pytest.raises(ValueError, match='num_classes=4'):
        loss(feat, label, classifier=nn.Conv2d(C, K + 1, 1))
    # nn.Linear works per image, like the 1x1 conv
    lin = nn.Linear(C, K)
    out = loss(feat[:, :, 0, 0], label[:, 2, 0], classifier=lin)
    assert set(out) == {'loss_large_margin_compact',
                        'loss_large_margin_margin'}


def test_center_modes():
    learned = make(CenterLoss)
    assert isinstance(learned.centers, nn.Parameter)
    assert 'centers' in dict(learned.named_parameters())
    torch.testing.assert_close(learned.centers.data,
                               build_anchors('gaussian', K, C, 0))
    assert bool((make(CenterLoss, center_init='zeros').centers == 0).all())
    ema = make(CenterLoss, center_mode='ema')
    assert 'centers' in dict(ema.named_buffers())
    assert not list(ema.parameters())


# ---------------------------------------------------------------- anchors
@pytest.mark.parametrize('channels', [8, 4])
def test_simplex_anchors_are_equiangular(channels):
    a = build_anchors('simplex', 5, channels, seed=1).double()
    cos = F.normalize(a, dim=1) @ F.normalize(a, dim=1).t()
    off = ~torch.eye(5, dtype=torch.bool)
    expected = torch.full((20,), -0.25, dtype=torch.float64)
    assert torch.allclose(cos[off], expected, atol=1e-5)
    assert torch.allclose(a.norm(dim=1), torch.ones(5, dtype=torch.float64),
                          atol=1e-6)


def test_orthogonal_and_onehot_anchors():
    a = build_anchors('orthogonal', 5, 8, seed=2).double()
    torch.testing.assert_close(a @ a.t(), torch.eye(5, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    # euclidean 'mean': per-channel RMS anchor_scale, i.e. norm s sqrt(C)
    torch.testing.assert_close(make(ANCMLoss, anchor_init='onehot').anchors,
                               torch.eye(K, C) * math.sqrt(C))
    torch.testing.assert_close(make(ANCMLoss, anchor_scale=3.0).anchors.norm(
        dim=1), torch.full((K,), 3.0 * math.sqrt(C)))
    torch.testing.assert_close(make(
        ANCMLoss, anchor_scale=3.0, channel_reduction='sum').anchors.norm(
            dim=1), torch.full((K,), 3.0))
    torch.testing.assert_close(make(
        ANCMLoss, anchor_scale=3.0, distance='cosine').anchors.norm(dim=1),
        torch.full((K,), 3.0))
    h = make(HALLoss).anchors
    torch.testing.assert_close(h.norm(dim=1), torch.ones(K))


@pytest.mark.parametrize('kind', ['gaussian', 'orthogonal', 'simplex',
                                  'hypersphere'])
def test_anchor_seeds(kind):
    a = build_anchors(kind, 5, 8, seed=11)
    assert torch.equal(a, build_anchors(kind, 5, 8, seed=11))
    assert not torch.allclose(a, build_anchors(kind, 5, 8, seed=12))
    if kind in ('simplex', 'hypersphere'):
        cls = ANCMLoss if kind == 'simplex' else HALLoss
        assert torch.equal(make(cls, anchor_seed=11).anchors,
                           make(cls, anchor_seed=11).anchors)
        assert not torch.equal(make(cls, anchor_seed=11).anchors,
                               make(cls, anchor_seed=12).anchors)


# ------------------------------------------------------- LDMAT sampling
def test_balanced_quota():
    q = balanced_quota(torch.tensor([5, 0, 100, 3, 50]), 20)
    assert q.tolist() == [5, 0, 6, 3, 6]
    q = balanced_quota(torch.tensor([5, 0, 100, 3, 50]), 21)
    assert q.tolist() == [5, 0, 7, 3, 6]
    assert balanced_quota(torch.tensor([10, 10, 10]), 8).tolist() == [3, 3, 2]
    assert balanced_quota(torch.tensor([1, 30, 2, 30]), 9).tolist() == \
        [1, 3, 2, 3]


def imbalanced_batch(h=40, w=50):
    gen = torch.Generator().manual_seed(0)
    label = torch.zeros(2, h, w, dtype=torch.long)  # class 0 dominates
    label[:, :, :10] = 1
    label[0, :3, -1] = 3   # 3 pixels of class 3, class 2 absent
    label[1, -5:, :] = 255
    feat = torch.randn(2, C, h, w, generator=gen)
    return feat, label


def flat_labels(label, k=K, ignore=255):
    """What a loss' ``compute`` gets: ``M`` labels (invalid ones 0) in
    NHWC order and the ``M`` valid mask."""
    lab = label.reshape(-1)
    valid = (lab >= 0) & (lab < k) & (lab != ignore)
    return torch.where(valid, lab, 0), valid


def test_ldmat_samples_balanced_bounded_subset():
    feat, label = imbalanced_batch()
    loss = make(LDMATLoss, max_samples=64, sample_seed=0)
    lab, valid = flat_labels(label)
    index = loss.sample(lab, valid)
    assert len(index) == 64 and len(set(index.tolist())) == 64
    assert bool(valid[index].all())
    counts = torch.bincount(lab[index], minlength=K).tolist()
    # class 3 gives its 3 pixels, the other present classes split the rest
    assert counts == [31, 30, 0, 3]
    # the gradient touches only the sampled pixels
    feat.requires_grad_(True)
    make(LDMATLoss, max_samples=64, sample_seed=0)(feat, label).backward()
    touched = (feat.grad != 0).any(1).flatten()
    assert touched.sum() <= 64 and touched.sum() > 32
    assert set(touched.nonzero().flatten().tolist()) <= set(index.tolist())


def test_ldmat_sampling_is_seeded_and_memory_bounded(monkeypatch):
    feat, label = imbalanced_batch(h=256, w=256)  # 2 x 65536 pixels
    a = make(LDMATLoss, max_samples=128, sample_seed=3)
    b = make(LDMATLoss, max_samples=128, sample_seed=3)
    c = make(LDMATLoss, max_samples=128, sample_seed=4)
    assert torch.equal(a(feat, label), b(feat, label))
    assert not torch.equal(b(feat, label), c(feat, label))  # b moved on
    sizes = []
    import sar_plugin.losses.ldmat as ldmat

    def spy(x, y, kind):
        sizes.append((x.shape[0], y.shape[0]))
        return real(x, y, kind)
    real = ldmat.pairwise_distance
    monkeypatch.setattr(ldmat, 'pairwise_distance', spy)
    value = a(feat, label)
    assert sizes == [(128, 128)] and bool(torch.isfinite(value))


def test_ldmat_uses_all_samples_when_few():
    feat, label = make_batch(seed=8)
    loss = make(LDMATLoss, max_samples=21)
    lab, valid = flat_labels(label)
    assert int(valid.sum()) == 21
    assert torch.equal(loss.sample(lab, valid), valid.nonzero().flatten())
    torch.testing.assert_close(loss(feat, label),
                               make(LDMATLoss)(feat, label))


# ------------------------------------------------------------ two ranks
def _ddp_worker(rank, world, port, out_path):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world)
    try:
        lm = make(LargeMarginLoss).double()
        ce = make(CenterLoss, center_mode='ema').double()
        clf = make_classifier()
        # rank 0 sees classes 0, 1; rank 1 sees 1, 2; class 3 nowhere
        feat, label = make_batch(seed=rank, classes=(rank, rank + 1))
        lm(feat, label, classifier=clf)
        ce(feat, label)
        torch.save(dict(lm=lm.state_dict(), ce=ce.state_dict()),
                   f'{out_path}.{rank}')
    finally:
        dist.destroy_process_group()


def test_centres_identical_on_two_gloo_ranks(tmp_path):
    out = str(tmp_path / 'state')
    mp.spawn(_ddp_worker, args=(2, free_port(), out), nprocs=2)
    states = [torch.load(f'{out}.{r}') for r in range(2)]
    # the global per-class means of both ranks' batches, by loops
    pts = []
    for rank in range(2):
        pts += samples(*make_batch(seed=rank, classes=(rank, rank + 1)))
    expected = torch.zeros(K, C, dtype=torch.float64)
    for k in range(3):
        members = [f for f, y in pts if y == k]
        expected[k] = sum(members) / len(members)
    for state in states:
        for key in ('lm', 'ce'):
            torch.testing.assert_close(state[key]['centers'], expected, **TOL)
            assert state[key]['initialized'].tolist() == [True] * 3 + [False]


# --------------------------------------------------------- optimisation
def toy_data(seed=0, n=100):
    """Three noisy concentric rings in 2-D: the class means coincide, so the
    classes overlap completely in any linear (e.g. the initial) embedding,
    but an MLP can separate them."""
    gen = torch.Generator().manual_seed(seed)
    label = torch.arange(3).repeat_interleave(n)
    angle = 2 * math.pi * torch.rand(3 * n, generator=gen)
    radius = 0.5 + 0.5 * label + 0.08 * torch.randn(3 * n, generator=gen)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], 1), label


def intra_inter_ratio(feat, label, normalize):
    if normalize:
        feat = F.normalize(feat, dim=1)
    mu = torch.stack([feat[label == k].mean(0) for k in range(3)])
    intra = (feat - mu[label]).norm(dim=1).mean()
    inter = torch.pdist(mu).mean()
    return float(intra / inter)


OPT_CASES = [
    ('ancm', dict(type='ANCMLoss', anchor_scale=3.0), False),
    ('ancm_cosine', dict(type='ANCMLoss', distance='cosine'), True),
    ('hal', dict(type='HALLoss', anchor_init='simplex'), True),
    ('ldmat', dict(type='LDMATLoss', margin=math.sqrt(3)), True),
    ('large_margin', dict(type='LargeMarginLoss', momentum=0.5), False),
    ('center', dict(type='CenterLoss', center_init='gaussian'), False),
    ('center_ema', dict(type='CenterLoss', center_mode='ema'), False),
]


@pytest.mark.parametrize('name,cfg,normalize', OPT_CASES,
                         ids=[c[0] for c in OPT_CASES])
def test_optimisation_separates_toy_clusters(name, cfg, normalize):
    torch.manual_seed(0)
    x, label = toy_data()
    mlp = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    loss = MODELS.build(dict(num_classes=3, channels=3, **cfg))
    clf = nn.Linear(3, 3)
    params = list(mlp.parameters()) + list(loss.parameters()) + \
        list(clf.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    with torch.no_grad():
        before = intra_inter_ratio(mlp(x), label, normalize)
    for _ in range(300):
        feat = mlp(x)
        value = total(loss(feat, label, classifier=clf))
        if name == 'large_margin':  # it needs a classifier trained by CE
            value = value + F.cross_entropy(clf(feat), label)
        opt.zero_grad()
        value.backward()
        opt.step()
    with torch.no_grad():
        after = intra_inter_ratio(mlp(x), label, normalize)
    assert after < 0.7 * before, (before, after)


def test_registry():
    for cls in ALL:
        assert MODELS.get(cls.__name__) is cls
        built = MODELS.build(dict(type=cls.__name__, num_classes=K,
                                  channels=C))
        assert isinstance(built, cls)


# ------------------------------------------------------------ width (C)
WIDTH_CASES = [
    ('ancm_euclid', ANCMLoss, dict()),
    ('ancm_cosine', ANCMLoss, dict(distance='cosine')),
    ('hal', HALLoss, dict()),
    ('ldmat', LDMATLoss, dict()),
    ('ldmat_unnormalized', LDMATLoss, dict(normalize=False)),
    ('large_margin', LargeMarginLoss, dict(margin=0.5)),
    ('center', CenterLoss, dict()),
    ('center_ema', CenterLoss, dict(center_mode='ema')),
]


def tiled_copy(loss, repeats):
    """``loss`` at ``repeats`` times its width: every ``K x C`` state
    tensor (anchors, centres) tiled along the channels, the per-channel
    statistics unchanged."""
    wide = type(loss)(num_classes=loss.num_classes,
                      channels=loss.channels * repeats,
                      **loss._width_kwargs).double().train()
    for name, value in loss.state_dict().items():
        if value.dim() == 2:
            value = value.repeat(1, repeats)
        getattr(wide, name).data.copy_(value)
    return wide


@pytest.mark.parametrize('name,cls,kwargs', WIDTH_CASES,
                         ids=[c[0] for c in WIDTH_CASES])
def test_value_does_not_depend_on_the_width(name, cls, kwargs):
    """``loss_weight`` means the same at C = 64 and C = 512: with the
    features, anchors/centres (and the classifier) tiled 8 times along the
    channels, every per-channel statistic is unchanged and so is every
    term, over two steps (state updates included). The paper's form
    (``channel_reduction='sum'``) of the distance losses grows with C."""
    k, c, r = 5, 64, 8
    torch.manual_seed(0)
    narrow = cls(num_classes=k, channels=c, **kwargs).double().train()
    narrow._width_kwargs = kwargs
    wide = tiled_copy(narrow, r)
    clf = nn.Conv2d(c, k, 1).double()
    wide_clf = nn.Conv2d(c * r, k, 1).double()
    with torch.no_grad():  # same logits: W tiled / r, same bias
        wide_clf.weight.copy_(clf.weight.repeat(1, r, 1, 1) / r)
        wide_clf.bias.copy_(clf.bias)
    for step in range(2):
        gen = torch.Generator().manual_seed(step)
        feat = torch.randn(2, c, 6, 7, generator=gen, dtype=torch.float64)
        label = torch.randint(k, (2, 6, 7), generator=gen)
        label[0, 0] = 255
        out = narrow(feat, label, classifier=clf)
        out_wide = wide(feat.repeat(1, r, 1, 1), label, classifier=wide_clf)
        out = out if isinstance(out, dict) else {'loss': out}
        out_wide = out_wide if isinstance(out_wide, dict) else \
            {'loss': out_wide}
        assert set(out) == set(out_wide)
        for key in out:
            assert float(out[key]) > 0, key
            torch.testing.assert_close(out_wide[key], out[key], rtol=1e-9,
                                       atol=1e-12)


@pytest.mark.parametrize('cls,kwargs', [
    (ANCMLoss, dict()), (LargeMarginLoss, dict()), (CenterLoss, dict()),
    (LDMATLoss, dict(normalize=False))], ids=lambda v: getattr(v, '__name__',
                                                               ''))
def test_paper_form_grows_with_the_width(cls, kwargs):
    """``channel_reduction='sum'`` is the paper's: not width-invariant (so
    the test above can fail)."""
    k, c, r = 5, 64, 8
    kwargs = dict(kwargs, channel_reduction='sum')
    narrow = cls(num_classes=k, channels=c, **kwargs).double().train()
    narrow._width_kwargs = kwargs
    wide = tiled_copy(narrow, r)
    clf = nn.Conv2d(c, k, 1).double()
    wide_clf = nn.Conv2d(c * r, k, 1).double()
    with torch.no_grad():
        wide_clf.weight.copy_(clf.weight.repeat(1, r, 1, 1) / r)
        wide_clf.bias.copy_(clf.bias)
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(2, c, 6, 7, generator=gen, dtype=torch.float64)
    label = torch.randint(k, (2, 6, 7), generator=gen)
    value = total(narrow(feat, label, classifier=clf))
    wide_value = total(wide(feat.repeat(1, r, 1, 1), label,
                            classifier=wide_clf))
    assert not torch.allclose(value, wide_value, rtol=1e-3)
