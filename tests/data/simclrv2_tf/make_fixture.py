"""Generate the SimCLRv2 TensorFlow-checkpoint fixture (run once, in a throw-away venv with TensorFlow).

    python3.11 -m venv /tmp/tf2venv && /tmp/tf2venv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0
    TF_USE_LEGACY_KERAS=1 /tmp/tf2venv/bin/python tests/data/simclrv2_tf/make_fixture.py

The network is written here from the description of google-research/simclr's TF1 ``resnet.py`` / ``model_util.py``
(SimCLRv2, ``--sk_ratio=0.0625``, ``--num_proj_layers=3``) and built in TF1 graph mode with TensorFlow's own
``tf.compat.v1.layers``, so TensorFlow names every variable by creation order exactly as the authors' code did:

- ``base_model/``: ResNet-50 (blocks 3-4-6-3) at width multiplier 1/16 (``STEM`` = 64/16 = 4 channels): the
  ResNet-D stem (3x3/2 conv to 2, 3x3 to 2, 3x3 to 4 channels, each BN + ReLU; 3x3/2 max pool, SAME), bottleneck
  widths 4, 8, 16, 32 (outputs 4x). In every first block the projection shortcut is created first: a 2x2 average
  pool (stride 1 with SAME padding in the first group; else 0/1 zero padding, stride 2, VALID), a 1x1 conv, a BN;
  then 1x1 conv + BN + ReLU, the selective-kernel 3x3 (one conv to 2C channels + BN + ReLU, split into two
  streams; the attention: 1x1 conv of the pooled stream sum to max(int(C * 0.0625), 32) = 32 channels + BN + ReLU,
  1x1 conv to 2C, softmax over the two halves), 1x1 conv + BN; add, ReLU. Strided convolutions get explicit
  (k - 1) // 2 / rest padding first, unstrided ones SAME. Global average pool -> 128-d features.
- ``head_contrastive/nl_{0,1,2}``: dense without bias (128 -> 128 -> 128 -> 128) then BN; ReLU after the first
  two; the last BN without beta (``center=False``).
- ``head_supervised/linear_layer/dense``: a 10-way dense layer with bias. One layer object is applied twice, so
  one set of variables gives both classifiers a SimCLRv2 checkpoint can hold: on the pooled features (a pretrained
  checkpoint's linear-eval head; fine-tuning on 100% of the labels) and on nl_0's output (``ft_proj_selector=1``:
  fine-tuning on 1% / 10%).
- decoys a real checkpoint also holds: ``global_step``, Momentum slots (of the supervised head and the first stem
  conv) and the first stem layers of an ``ema_model/base_model`` copy (the momentum encoder).

BN epsilon 1e-5 everywhere; all BNs in inference mode. Weights are random (He-normal kernels; gamma, beta and the
moving statistics all non-trivial).

Written next to this script:
- ``model.ckpt-250228.index`` / ``.data-00000-of-00001``: the checkpoint (TF's V2 bundle format).
- ``reference.npz``: for the input sizes ``even`` (64x64), ``odd`` (65x65) and ``mixed`` (57x72), two images each:
  ``img_<k>`` (uint8 RGB, NHWC; TF is fed ``img / 255``) and TF's ``feat_<k>`` (pooled backbone features),
  ``nl0_<k>``, ``nl1_<k>``, ``nl2_<k>`` (each projection-head layer's output) and the logits ``linear_<k>`` (head
  on the features) and ``ft_<k>`` (head on nl_0).
"""
import os
import os.path as osp

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

v1 = tf.compat.v1
HERE = osp.dirname(osp.abspath(__file__))
STEP = 250228
STEM = 4                 # 64 x width multiplier (1/16)
GROUPS = (3, 4, 6, 3)    # ResNet-50
SK_RATIO, SK_MIN = 0.0625, 32
PROJ_DIM = 128
NUM_CLASSES = 10
EPS = 1e-5
SIZES = {'even': (64, 64), 'odd': (65, 65), 'mixed': (57, 72)}


def conv(x, filters, k, stride=1):
    """Convolution without bias; strided ones pad explicitly first (independent of the input size)."""
    if stride > 1:
        lo = (k - 1) // 2
        x = tf.pad(x, [[0, 0], [lo, k - 1 - lo], [lo, k - 1 - lo], [0, 0]])
    return v1.layers.conv2d(x, filters, k, stride, padding='same' if stride == 1 else 'valid', use_bias=False)


def norm(x, relu=True, center=True):
    x = v1.layers.batch_normalization(x, axis=-1, momentum=0.9, epsilon=EPS, center=center, training=False)
    return tf.nn.relu(x) if relu else x


def selective_kernel(x, filters, stride):
    both = norm(conv(x, 2 * filters, 3, stride))
    first, second = tf.split(both, 2, axis=-1)
    pooled = tf.reduce_mean(first + second, axis=[1, 2], keepdims=True)
    hidden = norm(v1.layers.conv2d(pooled, max(int(filters * SK_RATIO), SK_MIN), 1, use_bias=False))
    logits = v1.layers.conv2d(hidden, 2 * filters, 1, use_bias=False)
    weights = tf.nn.softmax(tf.stack(tf.split(logits, 2, axis=-1)), axis=0)
    return weights[0] * first + weights[1] * second


def block(x, filters, stride, projection):
    shortcut = x
    if projection:  # created before the main branch
        if stride > 1:
            shortcut = tf.pad(shortcut, [[0, 0], [0, 1], [0, 1], [0, 0]])
        shortcut = v1.layers.average_pooling2d(shortcut, 2, stride, padding='same' if stride == 1 else 'valid')
        shortcut = norm(conv(shortcut, 4 * filters, 1), relu=False)
    y = norm(conv(x, filters, 1))
    y = selective_kernel(y, filters, stride)
    y = norm(conv(y, 4 * filters, 1), relu=False)
    return tf.nn.relu(y + shortcut)


def stem(images):
    x = norm(conv(images, STEM // 2, 3, 2))
    x = norm(conv(x, STEM // 2, 3))
    return norm(conv(x, STEM, 3))


def backbone(images):
    x = v1.layers.max_pooling2d(stem(images), 3, 2, padding='same')
    for i, blocks in enumerate(GROUPS):
        for j in range(blocks):
            x = block(x, STEM << i, (2 if i else 1) if j == 0 else 1, projection=j == 0)
    return tf.reduce_mean(x, axis=[1, 2])


def build(images):
    with v1.variable_scope('base_model'):
        feat = backbone(images)
    outs, h = [], feat
    with v1.variable_scope('head_contrastive'):
        for j in range(3):
            last = j == 2
            with v1.variable_scope(f'nl_{j}'):
                h = v1.layers.dense(h, PROJ_DIM if last else feat.shape[-1], use_bias=False)
                h = norm(h, relu=not last, center=not last)
            outs.append(h)
    with v1.variable_scope('head_supervised'), v1.variable_scope('linear_layer'):
        dense = v1.layers.Dense(NUM_CLASSES)
        logits_linear, logits_ft = dense(feat), dense(outs[0])
    with v1.variable_scope('ema_model'), v1.variable_scope('base_model'):
        stem(images)  # decoy: the momentum encoder's copy (its first layers only, to keep the fixture small)
    return feat, outs, logits_linear, logits_ft


def randomise(sess, rng):
    for var in v1.global_variables():
        name, shape = var.op.name, var.shape.as_list()
        if 'Momentum' in name or name == 'global_step':
            continue
        if name.endswith('/gamma'):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith('/beta') or name.endswith('/moving_mean'):
            value = rng.normal(0, 0.2, shape)
        elif name.endswith('/moving_variance'):
            value = rng.uniform(0.5, 2.0, shape)
        elif name.endswith('/bias'):
            value = rng.normal(0, 0.5, shape)
        else:  # kernels: He-normal over the fan-in
            value = rng.normal(0, np.sqrt(2.0 / int(np.prod(shape[:-1]))), shape)
        var.load(value.astype(np.float32), sess)


def main():
    v1.disable_eager_execution()
    rng = np.random.default_rng(20200617)
    images = v1.placeholder(tf.float32, [None, None, None, 3])
    feat, outs, logits_linear, logits_ft = build(images)
    step = v1.train.get_or_create_global_step()
    slotted = [v for v in v1.trainable_variables()
               if v.op.name.startswith('head_supervised') or v.op.name == 'base_model/conv2d/kernel']
    v1.train.MomentumOptimizer(0.1, 0.9).minimize(tf.reduce_sum(logits_linear), var_list=slotted, global_step=step)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        randomise(sess, rng)
        v1.assign(step, STEP).eval()
        v1.train.Saver().save(sess, osp.join(HERE, 'model.ckpt'), global_step=STEP, write_meta_graph=False)
        arrays = {}
        for key, (h, w) in SIZES.items():
            img = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
            values = sess.run([feat, *outs, logits_linear, logits_ft], {images: img.astype(np.float32) / 255})
            arrays[f'img_{key}'] = img
            for name, value in zip(('feat', 'nl0', 'nl1', 'nl2', 'linear', 'ft'), values):
                arrays[f'{name}_{key}'] = value
        np.savez_compressed(osp.join(HERE, 'reference.npz'), **arrays)
    pointer = osp.join(HERE, 'checkpoint')  # TF's "latest checkpoint" file: not needed, holds an absolute path
    if osp.exists(pointer):
        os.remove(pointer)
    for name, shape in tf.train.list_variables(osp.join(HERE, f'model.ckpt-{STEP}')):
        print(name, shape)
    print({k: (v.shape, float(np.abs(v).max())) for k, v in arrays.items() if not k.startswith('img')})


if __name__ == '__main__':
    main()
