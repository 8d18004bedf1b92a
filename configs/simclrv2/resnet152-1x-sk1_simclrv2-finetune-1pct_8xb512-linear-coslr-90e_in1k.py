# SimCLRv2's ResNet-152 (1x, SK) fine-tuned on 1% of the ImageNet labels (published top-1 70.0): the classifier
# sits on the projection head's first layer (--ft_proj_selector=1).
_base_ = ['./resnet152-1x-sk1_simclrv2-pre_8xb512-linear-coslr-90e_in1k.py']

model = dict(neck=dict(out_layer=1))
