# Baseline + LDMAT distance-matrix loss (CVIU 2024).
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='LDMATLoss')
]))
