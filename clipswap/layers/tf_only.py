"""The one TensorFlow-only kernel of the layers: instance norm through TensorFlow's fused batch-norm op.

Only mixed-precision inference on the TensorFlow backend runs it (instance_norm.use_fused); every other backend,
training and float32 run the keras.ops maths of instance_norm.plain_instance_norm, which it matches
(tests/layers/test_layers.py). Import it only behind that check: importing this module imports TensorFlow.
"""

from __future__ import annotations

import tensorflow as tf


def fused_instance_norm(x, scale, offset, epsilon: float):
    """Instance norm of x [B, H, W, C] (any float dtype) then `scale` * . + `offset`, per channel ([C]) or per sample
    and channel ([B, C], float32), through TensorFlow's fused batch-norm kernel in training mode: each sample's
    channels become channels of one sample ([1, H, W, B*C]), so batch statistics are instance statistics. One pass,
    statistics in float32, output in x's dtype rounded once. On the release generator in bf16 the plain ops were
    34 % of the forward pass (benchmarks/generator_profile.py); this kernel is 2-4x faster."""
    shape = tf.shape(x)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    if len(scale.shape) == 1:
        scale, offset = tf.tile(scale, [batch]), tf.tile(offset, [batch])
    else:
        scale, offset = tf.reshape(scale, [-1]), tf.reshape(offset, [-1])
    stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, batch * channels])
    empty = tf.zeros([0], tf.float32)
    y = tf.raw_ops.FusedBatchNormV3(x=stacked, scale=scale, offset=offset, mean=empty, variance=empty,
                                    epsilon=epsilon, is_training=True)[0]
    y = tf.transpose(tf.reshape(y, [height, width, batch, channels]), [2, 0, 1, 3])
    return tf.ensure_shape(y, x.shape)
