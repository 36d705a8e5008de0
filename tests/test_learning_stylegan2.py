"""StyleGAN2 learns: 120 steps on real MNIST lower the FID
(tests/test_learning.py's check)."""

import tensorflow as tf

from tests.test_learning import check_fid_falls

# On the digits resized to 32x32: widths 32, R1 and the optimizer as its
# config sets them; one device (tests/models check that two replicas train
# it alike). Seen here: FID 456 at step 40, 815 at 80, 189 at 120
# (BENCHMARKS.md, "The suite under 15 minutes").
STYLEGAN2 = {"model.architecture": "stylegan2", "model.image_size": 32,
             "data.resize": True, "model.channel_base": 1024,
             "model.channel_max": 32, "model.w_dim": 32,
             "model.mapping_layers": 2, "model.latent_dim": 32,
             "optim.g_lr": 0.0025, "optim.d_lr": 0.0025,
             "optim.beta1": 0.0, "optim.beta2": 0.99,
             "penalties.names": "r1", "penalties.r1.weight": 0.01,
             "model.ema_kimg": 1.0, "model.ema_rampup": 0.05}


def test_fid_falls_during_training(tmp_path, mnist_dir):
  check_fid_falls(tmp_path, mnist_dir, STYLEGAN2,
                  tf.distribute.OneDeviceStrategy("/cpu:0"), steps=120,
                  batch=32, evaluations=3, samples=1000)
