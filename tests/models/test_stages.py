"""The resolution stages of StyleGAN2 and R3GAN: sizes, widths, policies."""

from trainer.models import stages


def test_resolutions_double_from_4_to_the_image_size():
  assert stages.resolutions(4) == [4]
  assert stages.resolutions(64) == [4, 8, 16, 32, 64]


def test_width_halves_with_the_resolution_up_to_the_cap():
  widths = [stages.width(r, 512, 64) for r in stages.resolutions(64)]
  assert widths == [64, 64, 32, 16, 8]


def test_the_top_resolutions_take_the_reduced_policy_never_4x4():
  policy = lambda num_fp16_res: [
      stages.block_policy(r, 32, num_fp16_res, "mixed_bfloat16")
      for r in stages.resolutions(32)]
  assert policy(2) == ["float32", "float32", "mixed_bfloat16",
                       "mixed_bfloat16"]
  assert policy(9) == ["float32"] + ["mixed_bfloat16"] * 3
  assert policy(0) == ["float32"] * 4
  assert stages.block_policy(32, 32, 4, "float32") == "float32"
