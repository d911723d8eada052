# ImageNet-LT (Liu et al. 2019), ResNet-50 from scratch, plain cross-entropy,
# 90 epochs on 8 GPUs x 64 images (SyncBN). Expects data_root with the
# ImageNet images and ImageNet_LT_{train,val,test}.txt.
_base_ = [
    '../../_base_/cls_runtime.py',
    '../../_base_/models/resnet50_imagenet.py',
    '../../_base_/datasets/imagenet_lt.py',
    '../../_base_/schedules/imagenet_lt_90e.py',
]
model = dict(data_preprocessor={{_base_.data_preprocessor}})
default_hooks = dict(logger=dict(interval=100))
