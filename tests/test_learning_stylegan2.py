"""StyleGAN2 learns: 200 steps on real MNIST lower the FID
(tests/test_learning.py's check)."""

from tests.test_learning import check_fid_falls

# On the digits resized to 32x32: widths 64 down to 32, R1 and ADA as its
# config sets them.
STYLEGAN2 = {"model.architecture": "stylegan2", "model.image_size": 32,
             "data.resize": True, "model.channel_base": 1024,
             "model.channel_max": 64, "model.w_dim": 64,
             "model.mapping_layers": 2, "model.latent_dim": 64,
             "optim.g_lr": 0.0025, "optim.d_lr": 0.0025,
             "optim.beta1": 0.0, "optim.beta2": 0.99,
             "penalties.names": "r1", "penalties.r1.weight": 0.01,
             "model.ema_kimg": 1.0, "model.ema_rampup": 0.05}


def test_fid_falls_during_training(tmp_path, mnist_dir):
  check_fid_falls(tmp_path, mnist_dir, STYLEGAN2)
