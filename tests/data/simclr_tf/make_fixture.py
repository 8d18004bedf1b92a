"""Generate the SimCLR TensorFlow-checkpoint fixture (run once, in a throw-away venv with TensorFlow).

    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0
    TF_USE_LEGACY_KERAS=1 /tmp/tfvenv/bin/python tests/data/simclr_tf/make_fixture.py

What it builds, in TF1 graph mode with TF's own ``tf.compat.v1.layers`` (so TensorFlow itself names the variables by
creation order, as the paper's code did): the SimCLR ResNet-50 v1 layout (bottleneck blocks 3-4-6-3, stride in the
3x3 convolution, projection shortcut created first in the first block of each group, explicit symmetric padding
before every strided convolution, stem max pool 3x3/2 with ``padding='SAME'``) at width multiplier 1/8 (stem 8
channels, pooled feature 256), under the ``base_model`` scope, and a 10-way linear classifier under
``head_supervised/linear_layer``; plus ``global_step`` and Momentum slots, as in a training checkpoint.
Weights are random; every batch-norm layer gets non-trivial gamma / beta / moving statistics.

Written next to this script:
- ``model.ckpt-7.index`` / ``model.ckpt-7.data-00000-of-00001``: the TF checkpoint (V2 format).
- ``reference.npz``: inputs ``x_<name>`` (NHWC, RGB in [0, 1]) and TF's outputs on them, ``feat_<name>`` (pooled
  backbone features) and ``logits_<name>``, for input sizes whose stem max pool input is even, odd, and mixed
  (odd height, even width): only on an even side does SAME padding differ from symmetric padding.
"""
import os
import os.path as osp

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

v1 = tf.compat.v1
HERE = osp.dirname(osp.abspath(__file__))
WIDTH_DIV = 8           # width multiplier 1/8
BLOCKS = (3, 4, 6, 3)   # ResNet-50
NUM_CLASSES = 10
EPS = 1e-5
# the stem max pool sees ceil(size / 2): even, odd, and odd height with even width
SIZES = {'even': (64, 64), 'odd': (65, 65), 'mixed': (65, 64)}


def pad_for_stride(x, k):
    """Explicit padding before a strided convolution: (k-1)//2 before, the rest after (input-size independent)."""
    before = (k - 1) // 2
    after = k - 1 - before
    return tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])


def conv(x, filters, k, stride):
    if stride > 1:
        x = pad_for_stride(x, k)
    return v1.layers.conv2d(x, filters, k, stride, padding='same' if stride == 1 else 'valid', use_bias=False)


def bn(x, relu=True):
    x = v1.layers.batch_normalization(x, axis=-1, momentum=0.9, epsilon=EPS, training=False)
    return tf.nn.relu(x) if relu else x


def bottleneck(x, filters, stride, projection):
    shortcut = x
    if projection:  # created before the main branch, as in the paper's resnet.py
        shortcut = bn(conv(x, 4 * filters, 1, stride), relu=False)
    y = bn(conv(x, filters, 1, 1))
    y = bn(conv(y, filters, 3, stride))
    y = bn(conv(y, 4 * filters, 1, 1), relu=False)
    return tf.nn.relu(y + shortcut)


def build(images):
    with v1.variable_scope('base_model'):
        x = bn(conv(images, 64 // WIDTH_DIV, 7, 2))
        x = v1.layers.max_pooling2d(x, pool_size=3, strides=2, padding='SAME')
        for i, n in enumerate(BLOCKS):
            filters = (64 << i) // WIDTH_DIV
            for j in range(n):
                x = bottleneck(x, filters, (1 if i == 0 else 2) if j == 0 else 1, projection=j == 0)
        feat = tf.reduce_mean(x, [1, 2])
    with v1.variable_scope('head_supervised'):
        with v1.variable_scope('linear_layer'):
            logits = v1.layers.dense(feat, NUM_CLASSES)
    return feat, logits


def main():
    v1.disable_eager_execution()
    rng = np.random.default_rng(20200213)
    images = v1.placeholder(tf.float32, [None, None, None, 3])
    feat, logits = build(images)
    step = v1.train.get_or_create_global_step()
    head_vars = [v for v in v1.trainable_variables() if v.name.startswith('head_supervised')]
    train_op = v1.train.MomentumOptimizer(0.1, 0.9).minimize(tf.reduce_sum(logits), var_list=head_vars,
                                                             global_step=step)
    del train_op  # only its Momentum slot variables are wanted in the checkpoint
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
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
                fan_in = int(np.prod(shape[:-1]))
                value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
            var.load(value.astype(np.float32), sess)
        v1.assign(step, 7).eval()
        saver = v1.train.Saver()
        saver.save(sess, osp.join(HERE, 'model.ckpt'), global_step=7, write_meta_graph=False)
        arrays = {}
        for key, (h, w) in SIZES.items():
            x = rng.uniform(0, 1, (2, h, w, 3)).astype(np.float32)
            f, lg = sess.run([feat, logits], {images: x})
            arrays[f'x_{key}'], arrays[f'feat_{key}'], arrays[f'logits_{key}'] = x, f, lg
        np.savez_compressed(osp.join(HERE, 'reference.npz'), **arrays)
    checkpoint_state = osp.join(HERE, 'checkpoint')
    if osp.exists(checkpoint_state):  # TF's "latest checkpoint" pointer: not needed, holds an absolute path
        os.remove(checkpoint_state)
    print('\n'.join(f'{n} {s}' for n, s in tf.train.list_variables(osp.join(HERE, 'model.ckpt-7'))))


if __name__ == '__main__':
    main()
