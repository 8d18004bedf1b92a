# ImageNet evaluation pipeline (paper, Appendix B.6): shorter side resized to 256, centre crop 224. Inherited by the
# pretraining base (imagenet_bs256_simclr.py: kNN monitor, knn_eval / t-SNE tools, inference_model /
# extract_features of its models) and the linear-evaluation base (imagenet_bs512_linear.py: val / test loaders).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
