"""Resampling by 2 with the [1, 3, 3, 1] filter, for StyleGAN2 and R3GAN.

The filter is bilinear interpolation at factor 2. `upsample` interleaves
zeros and fills them with the filter; `downsample` low-passes with it and
takes every second pixel. Both are one depthwise convolution with the 4x4
outer product of FIR with itself (trainer/bench/flops.py counts it so).

StyleGAN2 fuses resampling into its 3x3 convolutions (conv2d_resample in
StyleGAN2-ADA): `up_conv` is a transposed convolution of stride 2 then the
filter, a quarter of the multiply-adds of filtering first and convolving
at the doubled size; `down_conv` filters at the full size and convolves
with stride 2. Neither is the same function as resampling then a "same"
convolution: at the border, and in which filtered pixels a tap reads.
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


def _filter(x: tf.Tensor, pad: int, gain: float) -> tf.Tensor:
  """The 4x4 filter at stride 1 after padding each side with `pad` zeros."""
  x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  return tf.nn.depthwise_conv2d(x, _fir_kernel(x.shape[-1], gain, x.dtype),
                                [1, 1, 1, 1], "VALID")


def up_conv(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """x [B, H, W, Cin], kernel [3, 3, Cin, Cout] -> [B, 2H, 2W, Cout].

  A transposed convolution of stride 2 ([B, 2H+1, 2W+1, Cout]), then the
  filter with gain 4 and one pixel of padding: StyleGAN2's upsampling
  convolution. The kernel is applied as the transposed convolution's, not
  mirrored.
  """
  _, h, w, _ = x.shape
  k, cout = kernel.shape[0], kernel.shape[-1]
  shape = tf.stack([tf.shape(x)[0], 2 * h + k - 2, 2 * w + k - 2, cout])
  y = tf.nn.conv2d_transpose(x, tf.transpose(kernel, [0, 1, 3, 2]), shape,
                             strides=2, padding="VALID")
  y = tf.ensure_shape(y, [x.shape[0], 2 * h + k - 2, 2 * w + k - 2, cout])
  return _filter(y, (k - 1) // 2, 4.0)


def down_conv(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """x [B, H, W, Cin], kernel [3, 3, Cin, Cout] -> [B, H/2, W/2, Cout].

  The filter at full size with two pixels of padding ([B, H+1, W+1, Cin]),
  then the convolution with stride 2: StyleGAN2's downsampling convolution.
  """
  k = kernel.shape[0]
  x = _filter(x, (k + 1) // 2, 1.0)
  return tf.nn.conv2d(x, kernel, 2, "VALID")
