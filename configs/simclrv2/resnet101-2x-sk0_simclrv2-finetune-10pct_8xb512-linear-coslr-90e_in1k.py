# SimCLRv2's ResNet-101 (2x) fine-tuned on 10% of the ImageNet labels (published top-1 75.8): the classifier
# sits on the projection head's first layer (--ft_proj_selector=1).
_base_ = ['./resnet101-2x-sk0_simclrv2-pre_8xb512-linear-coslr-90e_in1k.py']

model = dict(neck=dict(out_layer=1))
