"""Resampling by 2 with the [1, 3, 3, 1] filter, for StyleGAN2 and R3GAN.

The filter is bilinear interpolation at factor 2. `upsample` interleaves
zeros and fills them with the filter; `downsample` low-passes with it and
takes every second pixel. Both are one depthwise convolution with the 4x4
outer product of FIR with itself (trainer/bench/flops.py counts it so).
"""

import numpy as np
import tensorflow as tf

FIR = (1.0, 3.0, 3.0, 1.0)  # the taps along each axis


def _fir_kernel(channels: int, gain: float, dtype) -> tf.Tensor:
  """The separable [1, 3, 3, 1] filter per channel: [4, 4, C, 1]."""
  taps = np.array(FIR)
  kernel = np.outer(taps, taps)
  kernel *= gain / kernel.sum()
  return tf.constant(np.tile(kernel[:, :, None, None], [1, 1, channels, 1]),
                     dtype)


def upsample(x: tf.Tensor) -> tf.Tensor:
  """[B, H, W, C] -> [B, 2H, 2W, C], bilinear (zeros outside the image).

  Zeros are interleaved, then the filter (gain 4) fills them: pixel 2i gets
  (x[i-1] + 3 x[i]) / 4 and 2i+1 gets (3 x[i] + x[i+1]) / 4 along each axis.
  Only reshapes and a depthwise convolution, so every order of derivative
  exists.
  """
  _, h, w, c = x.shape
  zeros = tf.zeros_like(x)
  x = tf.reshape(tf.stack([x, zeros], axis=3), [-1, h, 2 * w, c])
  x = tf.reshape(tf.stack([x, tf.zeros_like(x)], axis=2), [-1, 2 * h, 2 * w, c])
  x = tf.pad(x, [[0, 0], [2, 1], [2, 1], [0, 0]])
  return tf.nn.depthwise_conv2d(x, _fir_kernel(c, 4.0, x.dtype),
                                [1, 1, 1, 1], "VALID")


def downsample(x: tf.Tensor) -> tf.Tensor:
  """[B, H, W, C] -> [B, H/2, W/2, C]: the low-pass filter, then stride 2."""
  x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  return tf.nn.depthwise_conv2d(x, _fir_kernel(x.shape[-1], 1.0, x.dtype),
                                [1, 2, 2, 1], "VALID")
