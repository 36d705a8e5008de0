"""The resolution stages StyleGAN2 and R3GAN are built of.

Both networks work at the resolutions 4, 8, ..., image_size, with
min(channel_base // r, channel_max) channels at resolution r, and under a
"mixed_*" policy compute the top `num_fp16_res` of them (never 4x4) in the
reduced dtype.
"""

import math


def resolutions(image_size: int) -> list[int]:
  """4, 8, ..., image_size."""
  return [2**i for i in range(2, int(math.log2(image_size)) + 1)]


def width(resolution: int, channel_base: int, channel_max: int) -> int:
  """Channels at a resolution: min(channel_base // r, channel_max)."""
  return min(channel_base // resolution, channel_max)


def block_policy(resolution: int, image_size: int, num_fp16_res: int,
                 dtype: str) -> str:
  """The dtype policy of a resolution's block (G's and D's alike).

  The top num_fp16_res resolutions, but not 4x4, take the reduced policy;
  the others float32.
  """
  top = 2**(int(math.log2(image_size)) + 1 - num_fp16_res)
  if dtype == "float32" or resolution < max(top, 8):
    return "float32"
  return dtype
