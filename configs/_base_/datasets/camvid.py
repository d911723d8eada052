# CamVid, SegNet split (367 train / 101 val / 233 test images, 360x480),
# 11 classes; label 11 (void) is ignored by CamVidDataset.
# `data_root` is the MMSeg convention (link your copy there); override it with
#   --cfg-options train_dataloader.dataset.data_root=DIR \
#                 val_dataloader.dataset.data_root=DIR \
#                 test_dataloader.dataset.data_root=DIR
dataset_type = 'CamVidDataset'
data_root = 'data/camvid'
crop_size = (360, 480)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(480, 360),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(480, 360), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='Resize', scale_factor=r, keep_ratio=True)
            for r in img_ratios
        ],
                    [
                        dict(type='RandomFlip', prob=0., direction='horizontal'),
                        dict(type='RandomFlip', prob=1., direction='horizontal')
                    ], [dict(type='LoadAnnotations')],
                    [dict(type='PackSegInputs')]])
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# Long-tail evaluation: per-class IoU, head/body/tail mIoU from the training
# pixel counts (tools/analysis/class_frequency.py on the train split, stored
# next to this file), and the compactness of the decode head's input features
# (the baseline configs add LongTailEvalHook, which hands them over).
class_frequency = '{{fileDirname}}/camvid_train_frequency.json'
val_evaluator = [
    dict(
        type='LongTailIoUMetric',
        iou_metrics=['mIoU'],
        class_frequency=class_frequency),
    dict(
        type='FeatureCompactnessMetric',
        per_class=256,
        per_class_keys=False,
        class_frequency=class_frequency),
]
test_evaluator = val_evaluator
