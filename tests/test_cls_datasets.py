"""Classification data: CIFAR readers, long-tail subsampling, image lists,
transforms and the synthetic CIFAR archive."""
import hashlib
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import RandomFlip as MMCVRandomFlip
from mmseg.registry import DATASETS, TRANSFORMS

from sar_plugin.datasets import (CIFAR10, CIFAR100, ImageListDataset,
                                 PackClsInputs, RandomPadCrop,
                                 SyntheticCIFAR10, generate_cifar_archive,
                                 longtail_counts)
from sar_plugin.structures import ClsDataSample


def known_image(k: int) -> np.ndarray:
    """RGB 32x32x3: R = 7 k, G = row, B = 100 + column."""
    img = np.empty((32, 32, 3), np.uint8)
    img[..., 0] = 7 * k % 256
    img[..., 1] = np.arange(32)[:, None]
    img[..., 2] = 100 + np.arange(32)[None, :]
    return img


def rows(images) -> np.ndarray:
    """Official layout: one row per image, R(1024) G(1024) B(1024)."""
    return np.stack([im.transpose(2, 0, 1).reshape(-1) for im in images])


def write_minimal_cifar10(root, labels_per_batch, test_labels):
    """An independent minimal writer of the official CIFAR-10 format."""
    d = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(d)
    k = 0
    for name, labels in [(f'data_batch_{i + 1}', lab)
                         for i, lab in enumerate(labels_per_batch)
                         ] + [('test_batch', test_labels)]:
        images = [known_image(k + j) for j in range(len(labels))]
        k += len(labels)
        with open(osp.join(d, name), 'wb') as f:
            pickle.dump({b'data': rows(images), b'labels': list(labels),
                         b'batch_label': b'x', b'filenames': [b'f'] *
                         len(labels)}, f, protocol=2)
    with open(osp.join(d, 'batches.meta'), 'wb') as f:
        pickle.dump({b'label_names': [b'cat', b'dog', b'eel'],
                     b'num_cases_per_batch': 2, b'num_vis': 3072}, f)
    return d


LABELS_10 = [[0, 1], [2, 0], [1, 2], [0, 0], [2, 1]]


def test_reads_independently_written_cifar10(tmp_path):
    write_minimal_cifar10(str(tmp_path), LABELS_10, [2, 1, 0])
    train = CIFAR10(str(tmp_path), split='train', serialize_data=False)
    test = CIFAR10(str(tmp_path), split='test')
    assert len(train) == 10 and len(test) == 3
    assert train.metainfo['classes'] == ('cat', 'dog', 'eel')
    assert [train.get_data_info(i)['gt_label'] for i in range(10)
            ] == sum(LABELS_10, [])
    assert [test.get_data_info(i)['gt_label'] for i in range(3)] == [2, 1, 0]
    for ds, offset in ((train, 0), (test, 10)):
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            img = info['img']
            assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
            np.testing.assert_array_equal(img,
                                          known_image(offset + i)[..., ::-1])
            assert info['sample_idx'] == i
            assert info['img_shape'] == info['ori_shape'] == (32, 32)
    # per-class training counts on both splits
    assert train.metainfo['train_class_counts'] == [4, 3, 3]
    assert test.metainfo['train_class_counts'] == [4, 3, 3]
    # data_root may be the archive folder itself
    direct = CIFAR10(osp.join(str(tmp_path), 'cifar-10-batches-py'),
                     split='test')
    np.testing.assert_array_equal(direct[0]['img'], test[0]['img'])


def test_reads_independently_written_cifar100(tmp_path):
    d = tmp_path / 'cifar-100-python'
    d.mkdir()
    names = [f'n{k}'.encode() for k in range(4)]
    for split, labels in (('train', [3, 0, 1, 2, 2, 1, 0, 3]),
                          ('test', [1, 0, 3, 2])):
        with open(d / split, 'wb') as f:
            pickle.dump({b'data': rows([known_image(k) for k in labels]),
                         b'fine_labels': labels,
                         b'coarse_labels': [0] * len(labels)}, f)
    with open(d / 'meta', 'wb') as f:
        pickle.dump({b'fine_label_names': names,
                     b'coarse_label_names': [b'all']}, f)
    ds = CIFAR100(str(tmp_path), split='test')
    assert ds.metainfo['classes'] == ('n0', 'n1', 'n2', 'n3')
    assert ds.metainfo['train_class_counts'] == [2, 2, 2, 2]
    for i, k in enumerate([1, 0, 3, 2]):
        assert ds[i]['gt_label'] == k
        np.testing.assert_array_equal(ds[i]['img'], known_image(k)[..., ::-1])


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='cifar-10-batches-py'):
        CIFAR10(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='cifar-100-python'):
        CIFAR100(str(tmp_path))
    d = write_minimal_cifar10(str(tmp_path), LABELS_10, [0, 1, 2])
    with pytest.raises(ValueError, match="split.*'val'"):
        CIFAR10(str(tmp_path), split='val')
    with pytest.raises(ValueError, match='imbalance_ratio.*0.5'):
        CIFAR10(str(tmp_path), imbalance_ratio=0.5)
    os.remove(osp.join(d, 'data_batch_3'))
    with pytest.raises(FileNotFoundError, match='data_batch_3'):
        CIFAR10(str(tmp_path), split='test')


@pytest.mark.parametrize('labels, match', [
    ([0, 1, 2], r'data_batch_2: 2 images but 3 .labels.'),  # one too many
    ([0], r'data_batch_2: 2 images but 1 .labels.'),  # one missing
    ([0, -1], r'data_batch_2: negative label -1'),
    ([[0], [1]], r'data_batch_2: .labels. must be a list of integers'),
])
def test_cifar_batch_label_errors_name_the_file(tmp_path, labels, match):
    """Issue 21, cases 6 and 11: labels that do not match their batch's
    images are refused per batch (never zipped and truncated)."""
    d = write_minimal_cifar10(str(tmp_path), LABELS_10, [0, 1, 2])
    path = osp.join(d, 'data_batch_2')
    with open(path, 'rb') as f:
        batch = pickle.load(f)
    batch[b'labels'] = labels
    with open(path, 'wb') as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(ValueError, match=match):
        CIFAR10(str(tmp_path))


def test_generated_archive_has_official_format(tmp_path):
    d = generate_cifar_archive(str(tmp_path), 'cifar10', 3, 2, seed=0)
    assert sorted(os.listdir(d)) == sorted(
        ['batches.meta', 'test_batch', 'synthetic.json'] +
        [f'data_batch_{i}' for i in range(1, 6)])
    with open(osp.join(d, 'data_batch_1'), 'rb') as f:
        b = pickle.load(f, encoding='bytes')
    assert set(b) == {b'batch_label', b'labels', b'data', b'filenames'}
    assert b[b'data'].dtype == np.uint8 and b[b'data'].shape == (6, 3072)
    assert isinstance(b[b'labels'], list) and type(b[b'labels'][0]) is int
    with open(osp.join(d, 'batches.meta'), 'rb') as f:
        meta = pickle.load(f, encoding='bytes')
    assert set(meta) == {b'label_names', b'num_cases_per_batch', b'num_vis'}
    ds = CIFAR10(str(tmp_path), split='train')
    assert len(ds) == 30 and ds.metainfo['train_class_counts'] == [3] * 10
    np.testing.assert_array_equal(
        ds[0]['img'], b[b'data'][0].reshape(3, 32, 32).transpose(1, 2,
                                                                 0)[..., ::-1])

    d = generate_cifar_archive(str(tmp_path), 'cifar100', 2, 1, seed=0)
    with open(osp.join(d, 'train'), 'rb') as f:
        b = pickle.load(f, encoding='bytes')
    assert set(b) == {b'batch_label', b'fine_labels', b'coarse_labels',
                      b'data', b'filenames'}
    assert b[b'coarse_labels'] == [k // 5 for k in b[b'fine_labels']]
    ds = CIFAR100(str(tmp_path), split='test')
    assert len(ds) == 100 and len(ds.metainfo['classes']) == 100


@pytest.mark.parametrize('rho', [100, 50, 10])
@pytest.mark.parametrize('num_classes', [10, 100])
def test_longtail_counts_formula(rho, num_classes):
    for n_max in (5000, 500, 20):
        expected = [int(n_max * rho**(-i / (num_classes - 1)))
                    for i in range(num_classes)]
        assert longtail_counts(n_max, num_classes, rho) == expected
    assert longtail_counts(20, num_classes, 1) == [20] * num_classes


def test_longtail_counts_literature():
    assert longtail_counts(5000, 10, 100) == [
        5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(longtail_counts(500, 100, 100)) == 10847  # CIFAR-100-LT
    with pytest.raises(ValueError, match='imbalance_ratio.*0.9'):
        longtail_counts(10, 10, 0.9)


@pytest.fixture(scope='module')
def archives(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cifar'))
    generate_cifar_archive(root, 'cifar10', 20, 2, seed=0)
    generate_cifar_archive(root, 'cifar100', 20, 1, seed=0)
    return root


def _digests(ds):
    return sorted(
        hashlib.md5(ds.get_data_info(i)['img'].tobytes()).hexdigest()
        for i in range(len(ds)))


@pytest.mark.parametrize('rho', [100, 50, 10])
@pytest.mark.parametrize('cls', [CIFAR10, CIFAR100])
def test_longtail_cifar(archives, cls, rho):
    num_classes = 10 if cls is CIFAR10 else 100
    expected = longtail_counts(20, num_classes, rho)
    train = cls(archives, split='train', imbalance_ratio=rho)
    labels = [train.get_data_info(i)['gt_label'] for i in range(len(train))]
    assert np.bincount(labels, minlength=num_classes).tolist() == expected
    assert train.metainfo['train_class_counts'] == expected
    test = cls(archives, split='test', imbalance_ratio=rho)
    test_labels = [test.get_data_info(i)['gt_label'] for i in range(len(test))]
    per_test = np.bincount(test_labels, minlength=num_classes)
    assert per_test.min() == per_test.max() > 0  # test split stays balanced
    assert test.metainfo['train_class_counts'] == expected


def test_longtail_choice_is_seeded(archives):
    a = CIFAR10(archives, imbalance_ratio=10, imbalance_seed=0)
    b = CIFAR10(archives, imbalance_ratio=10, imbalance_seed=0)
    c = CIFAR10(archives, imbalance_ratio=10, imbalance_seed=1)
    assert _digests(a) == _digests(b)
    assert len(c) == len(a) and _digests(c) != _digests(a)
    # kept samples are a subset of the full split, in archive order
    full = _digests(CIFAR10(archives))
    assert set(_digests(c)) <= set(full)


def test_synthetic_generator_deterministic_and_cached(tmp_path):
    def digest(d):
        return {
            n: hashlib.md5(open(osp.join(d, n), 'rb').read()).hexdigest()
            for n in sorted(os.listdir(d))
        }

    d1 = generate_cifar_archive(str(tmp_path / 'a'), 'cifar10', 4, 2, seed=3)
    d2 = generate_cifar_archive(str(tmp_path / 'b'), 'cifar10', 4, 2, seed=3)
    d3 = generate_cifar_archive(str(tmp_path / 'c'), 'cifar10', 4, 2, seed=4)
    assert digest(d1) == digest(d2) != digest(d3)
    mtime = os.path.getmtime(osp.join(d1, 'test_batch'))
    assert generate_cifar_archive(str(tmp_path / 'a'), 'cifar10', 4, 2,
                                  seed=3) == d1
    assert os.path.getmtime(osp.join(d1, 'test_batch')) == mtime
    # other parameters replace a synthetic archive...
    generate_cifar_archive(str(tmp_path / 'a'), 'cifar10', 5, 2, seed=3)
    assert len(CIFAR10(str(tmp_path / 'a'))) == 50
    assert not [n for n in os.listdir(tmp_path / 'a') if n.startswith('.')]
    # ...but never a real one
    write_minimal_cifar10(str(tmp_path / 'real'), LABELS_10, [0])
    with pytest.raises(FileExistsError, match='not a synthetic archive'):
        generate_cifar_archive(str(tmp_path / 'real'), 'cifar10', 2, 1)
    with pytest.raises(ValueError, match='kind'):
        generate_cifar_archive(str(tmp_path), 'svhn')


def test_synthetic_cifar_is_learnable_but_not_by_colour(tmp_path):
    generate_cifar_archive(str(tmp_path), 'cifar10', 60, 30, seed=0)

    def arrays(split):
        ds = CIFAR10(str(tmp_path), split=split)
        x = np.stack([ds.get_data_info(i)['img'] for i in range(len(ds))])
        y = np.array([ds.get_data_info(i)['gt_label'] for i in range(len(ds))])
        return x.astype(np.float32), y

    (xtr, ytr), (xte, yte) = arrays('train'), arrays('test')

    def ncm_accuracy(ftr, fte):
        means = np.stack([ftr[ytr == k].mean(0) for k in range(10)])
        dist = ((fte[:, None] - means[None])**2).sum(-1)
        return (dist.argmin(1) == yte).mean()

    def colour(x):
        return x.mean((1, 2))

    def colour_and_orientation(x):
        g = x.mean(-1)
        dx = np.abs(np.diff(g, axis=2)).mean((1, 2))
        dy = np.abs(np.diff(g, axis=1)).mean((1, 2))
        return np.concatenate([colour(x) / 50, 5 * (dx / (dx + dy))[:, None]],
                              1)

    raw = ncm_accuracy(xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1))
    assert raw > 0.3  # chance is 0.1
    assert ncm_accuracy(colour(xtr), colour(xte)) < 0.7
    assert ncm_accuracy(
        colour_and_orientation(xtr), colour_and_orientation(xte)) > 0.75


def test_synthetic_cifar10_dataset(tmp_path):
    ds = DATASETS.build(
        dict(
            type='SyntheticCIFAR10',
            data_root=str(tmp_path),
            num_train_per_class=20,
            num_test_per_class=3,
            imbalance_ratio=10))
    assert isinstance(ds, SyntheticCIFAR10)
    assert ds.metainfo['train_class_counts'] == longtail_counts(20, 10, 10)
    assert len(ds) == sum(longtail_counts(20, 10, 10))
    test = SyntheticCIFAR10(str(tmp_path), num_train_per_class=20,
                            num_test_per_class=3, split='test')
    assert len(test) == 30


# ----------------------------------------------------------------- lists --
def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def test_image_list_dataset(tmp_path):
    (tmp_path / 'imgs' / 'a b').mkdir(parents=True)
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
    cv2.imwrite(str(tmp_path / 'imgs' / 'a b' / 'x 1.png'), img)
    _write(tmp_path / 'train.txt', 'a b/x 1.png 2\n\nq.jpg 0\nr.jpg  2 \n')
    _write(tmp_path / 'val.txt', 'a b/x 1.png 1\n')
    _write(tmp_path / 'names.txt', 'zero\none\ntwo\nthree\n\n')
    train = ImageListDataset(
        str(tmp_path), 'train.txt', data_prefix=dict(img_path='imgs'))
    assert len(train) == 3
    info = train.get_data_info(0)
    assert info['img_path'] == osp.join(str(tmp_path), 'imgs', 'a b',
                                        'x 1.png')
    assert (info['gt_label'], info['sample_idx']) == (2, 0)
    assert train.metainfo['classes'] == ('0', '1', '2')
    assert train.metainfo['train_class_counts'] == [1, 0, 2]

    val = ImageListDataset(
        str(tmp_path),
        'val.txt',
        data_prefix=dict(img_path='imgs'),
        classes='names.txt',
        train_ann_file='train.txt',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackClsInputs')])
    assert val.metainfo['classes'] == ('zero', 'one', 'two', 'three')
    assert val.metainfo['train_class_counts'] == [1, 0, 2, 0]
    out = val[0]
    assert out['data_samples'].gt_label.tolist() == [1]
    np.testing.assert_array_equal(out['inputs'].numpy().transpose(1, 2, 0),
                                  img)
    listed = ImageListDataset(str(tmp_path), 'val.txt',
                              classes=['a', 'b'])
    assert listed.metainfo['classes'] == ('a', 'b')


@pytest.mark.parametrize('text,kwargs,error,match', [
    ('a.jpg x\n', {}, ValueError, r'train.txt:1.*<int label>'),
    ('a.jpg\n', {}, ValueError, r'train.txt:1'),
    ('a.jpg -1\n', {}, ValueError, 'label must be >= 0'),
    # issue 21, case 11: the list and the image are named
    ('a.jpg 0\nb.jpg 3\n', dict(classes=['a', 'b']), ValueError,
     r'train.txt: label 3 of b.jpg is out of range for the 2 classes'),
    ('a.jpg 0\n', dict(classes='nope.txt'), FileNotFoundError, 'nope.txt'),
    ('a.jpg 0\n', dict(train_ann_file='nope.txt'), FileNotFoundError,
     'nope.txt'),
])
def test_image_list_errors(tmp_path, text, kwargs, error, match):
    _write(tmp_path / 'train.txt', text)
    with pytest.raises(error, match=match):
        ImageListDataset(str(tmp_path), 'train.txt', **kwargs)


# ------------------------------------------------------------ transforms --
def test_cls_data_sample():
    s = ClsDataSample().set_gt_label(3)
    assert s.gt_label.dtype == torch.long and s.gt_label.tolist() == [3]
    s.set_gt_label(torch.tensor(4))
    assert s.gt_label.shape == (1, ) and s.gt_label.item() == 4
    s.set_pred_score(torch.tensor([0.1, 0.7, 0.2]))
    assert s.pred_label.tolist() == [1] and s.pred_score.shape == (3, )
    with pytest.raises(TypeError):
        s.set_gt_label(1.5)
    with pytest.raises(AssertionError):
        s.gt_label = 3  # the setter wants a tensor


def test_pack_cls_inputs():
    img = np.random.default_rng(0).integers(0, 256, (6, 5, 3), np.uint8)
    results = dict(img=img[:, ::-1], gt_label=7, img_shape=(6, 5),
                   ori_shape=(6, 5), sample_idx=3, other=1)
    out = PackClsInputs().transform(results)
    x, s = out['inputs'], out['data_samples']
    assert x.shape == (3, 6, 5) and x.dtype == torch.uint8
    assert x.is_contiguous()
    np.testing.assert_array_equal(x.numpy().transpose(1, 2, 0), img[:, ::-1])
    assert s.gt_label.tolist() == [7] and s.gt_label.dtype == torch.long
    assert s.metainfo == dict(img_shape=(6, 5), ori_shape=(6, 5),
                              sample_idx=3)
    grey = PackClsInputs(meta_keys=()).transform(dict(img=img[..., 0]))
    assert grey['inputs'].shape == (1, 6, 5)
    assert 'gt_label' not in grey['data_samples']


def test_random_pad_crop_is_a_window_of_the_padded_image():
    np.random.seed(0)
    img = np.random.randint(1, 256, (32, 32, 3)).astype(np.uint8)
    padded = np.zeros((40, 40, 3), np.uint8)
    padded[4:36, 4:36] = img
    t = RandomPadCrop(size=32, padding=4)
    offsets = set()
    for _ in range(20):
        out = t.transform(dict(img=img.copy(), img_shape=(32, 32)))
        assert out['img'].shape == (32, 32, 3) and out['img_shape'] == (32,
                                                                        32)
        hits = [(y, x) for y in range(9) for x in range(9)
                if np.array_equal(padded[y:y + 32, x:x + 32], out['img'])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 5  # random offsets
    # reproducible through numpy's global seed
    np.random.seed(1)
    a = t.transform(dict(img=img.copy()))['img']
    np.random.seed(1)
    np.testing.assert_array_equal(a, t.transform(dict(img=img.copy()))['img'])
    # a scalar pad value fills every channel; 2-D images work
    out = RandomPadCrop(size=(40, 40), padding=4, pad_val=9).transform(
        dict(img=img.copy()))['img']
    assert (out[:4] == 9).all()
    assert RandomPadCrop(8, 2).transform(
        dict(img=img[..., 0].copy()))['img'].shape == (8, 8)
    with pytest.raises(ValueError, match='larger than the padded'):
        RandomPadCrop(size=50, padding=4).transform(dict(img=img))
    with pytest.raises(ValueError, match='padding'):
        RandomPadCrop(padding=-1)


@pytest.mark.parametrize('build', ['registry', 'mmcv'])
def test_random_flip_on_cls_dicts(build):
    img = np.random.default_rng(0).integers(0, 256, (4, 6, 3), np.uint8)
    cfg = dict(prob=1.0, direction='horizontal')
    flip = (TRANSFORMS.build(dict(type='RandomFlip', **cfg))
            if build == 'registry' else MMCVRandomFlip(**cfg))
    out = flip(dict(img=img.copy(), gt_label=1, img_shape=(4, 6)))
    np.testing.assert_array_equal(out['img'], img[:, ::-1])
    assert out['flip'] is True and out['flip_direction'] == 'horizontal'
    assert out['gt_label'] == 1
    packed = PackClsInputs().transform(out)
    assert packed['data_samples'].metainfo['flip'] is True


def test_full_pipeline_build(tmp_path):
    write_minimal_cifar10(str(tmp_path), LABELS_10, [2, 1, 0])
    ds = DATASETS.build(
        dict(
            type='CIFAR10',
            data_root=str(tmp_path),
            split='train',
            pipeline=[
                dict(type='RandomPadCrop', size=32, padding=4),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='PackClsInputs'),
            ]))
    out = ds[0]
    assert out['inputs'].shape == (3, 32, 32)
    assert out['inputs'].dtype == torch.uint8
    s = out['data_samples']
    assert s.gt_label.tolist() == [0]
    assert s.metainfo['img_shape'] == (32, 32)
    assert s.metainfo['sample_idx'] == 0
    assert 'flip' in s.metainfo
