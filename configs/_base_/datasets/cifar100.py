# CIFAR-100 as the official python-pickle archive (cifar-100-python/ under
# `data_root`), read into memory by sar_plugin's CIFAR100 data set. Long-tailed
# versions set `imbalance_ratio` on the training set (the test set stays
# balanced). Images are BGR, like MMCV's loaders: the preprocessor converts.
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
data_preprocessor = dict(
    type='ImgDataPreprocessor',
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    bgr_to_rgb=True)
train_pipeline = [
    dict(type='RandomPadCrop', size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [dict(type='PackClsInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# top-1/top-5, per-class accuracy and many/medium/few (> 100 / 20-100 / < 20
# training images, from the data set's train_class_counts), and the
# compactness of the pooled features
val_evaluator = [
    dict(type='LongTailAccuracy', topk=(1, 5)),
    dict(type='FeatureCompactnessMetric', per_class=100, per_class_keys=False,
         bucket_rule='counts'),
]
test_evaluator = val_evaluator
