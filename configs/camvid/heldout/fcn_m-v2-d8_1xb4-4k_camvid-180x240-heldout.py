# CamVid 180x240 with a held-out test video (issue 12's protocol, see
# docs/configs.md): train on the frames of 0006R0 and 0016E5 in img_dir/train
# (305), tune on val (101 frames of 0016E5), report on test = the 62 frames
# of 0001TP in img_dir/train, a video neither training nor tuning sees.
_base_ = '../fcn_m-v2-d8_1xb4-4k_camvid-180x240.py'
train_dataloader = dict(dataset=dict(sequences=['0006R0', '0016E5']))
test_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CamVidDataset',
        data_root='data/camvid',
        data_prefix=dict(
            img_path='img_dir/train', seg_map_path='ann_dir/train'),
        sequences=['0001TP'],
        pipeline={{_base_.test_pipeline}}))
# buckets from the pixels of the 305 training frames
class_frequency = '{{fileDirname}}/camvid_heldout_train_frequency.json'
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
