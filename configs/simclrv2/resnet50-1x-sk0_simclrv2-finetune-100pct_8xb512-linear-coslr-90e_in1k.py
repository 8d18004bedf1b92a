# SimCLRv2's ResNet-50 (1x) fine-tuned on 100% of the ImageNet labels (published top-1 76.3): as with all labels
# the paper fine-tunes from the projection head's input, the classifier sits on the pooled backbone
# features (out_layer=0, as the pretrained model's).
_base_ = ['./resnet50-1x-sk0_simclrv2-pre_8xb512-linear-coslr-90e_in1k.py']
