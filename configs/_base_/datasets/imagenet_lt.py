# ImageNet-LT (Liu et al., CVPR 2019): ImageNet images under `data_root`
# and the split lists ImageNet_LT_{train,val,test}.txt ("path label" per
# line, paths relative to `data_root`, e.g. train/n01440764/....JPEG).
# 1000 classes, 1280 ... 5 training images per class; the buckets of the
# metric come from the training list (`train_ann_file`).
dataset_type = 'ImageListDataset'
data_root = 'data/imagenet'
data_preprocessor = dict(
    type='ImgDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', size=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # shorter side to 256 (the long side may grow up to 100000)
    dict(type='Resize', scale=(100000, 256), keep_ratio=True),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageNet_LT_train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageNet_LT_val.txt',
        train_ann_file='ImageNet_LT_train.txt',
        pipeline=test_pipeline))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], ann_file='ImageNet_LT_test.txt'))
val_evaluator = [
    dict(type='LongTailAccuracy', topk=(1, 5), per_class_keys=False),
    dict(type='FeatureCompactnessMetric', per_class=20, per_class_keys=False,
         bucket_rule='counts'),
]
test_evaluator = val_evaluator
