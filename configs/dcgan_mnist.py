r"""DCGAN on MNIST: the seed's networks, trained the way they should be.

Run (any machine, offline too: it trains on the 10,000 MNIST digits that
ship with the package, the data source embedded:mnist):

  python -m trainer.main --strategy=mirrored

The full 60,000 training images (`tfds:mnist` needs internet once, or a
prepared TFDS dir):

  python -m trainer.main --strategy=mirrored \
      --config.data.source=tfds:mnist --config.data.split=train

Variants (`--config=configs/dcgan_mnist.py:<variant>`):
  (none)  10,000 steps at global batch 256 (256 epochs of the embedded
          10,000 digits, 43 of tfds:mnist's 60,000), non-saturating loss, Adam
          2e-4 / beta1 0.5, G_ema, alternating updates. About 2 hours on 2
          idle CPU cores (float32), 5 to 13 minutes on an A100 (computed;
          BENCHMARKS.md). Expected: clearly readable digits from G_ema after
          a few thousand steps. This is the recommended MNIST recipe: at the
          tutorial's budget of 2,000 steps it reaches well under half the
          tutorial loop's FID (BENCHMARKS.md).
          Speed on a CPU: add --config.runtime.mixed_precision=mixed_bfloat16
          where the CPU has AVX-512 BF16 or AMX, and
          --config.train.simultaneous=True for the tutorial's cheaper step
          (a little worse per step). XLA stays off: on the 2-core CPU where
          these defaults were measured, it is slower in every setting.
  stacked Stacked MNIST (three digits as R, G, B: 1000 modes), the
          mode-collapse benchmark: the same DCGAN with 3 channels, evaluated
          every 1000 steps by mode counting with the MNIST classifier.
          Its digits come from embedded:mnist (stacked_mnist:tfds:mnist
          for the 60,000). Expected (mixed_bfloat16, 26,000
          samples, BENCHMARKS.md): all 1000 modes from about
          8,000 steps on, and a KL that keeps falling with longer training:
          0.058 at 24,000 steps (add --config.train.steps=24000; about 1.7
          hours on 2 CPU cores).
  limited Limited data, as the DiffAugment and ADA papers measure it: the
          first 1,000 images only (data.split='test[:1000]'), evaluated by
          FID against the whole split every 500 steps;
          4,000 steps at batch 64; D without dropout, ADA in front of it
          (augment.speed_kimg=100, so that p can move within the run).
            python -m trainer.main --config=configs/dcgan_mnist.py:limited \
                --strategy=one_device
          Measured (BENCHMARKS.md, seeds 0 and 1, D
          without dropout in all runs): FID 7.93 +- 0.20 at 4,000 steps,
          against 8.03 +- 0.24 without augmentation and 12.06 +- 0.15
          with diffaugment. At this budget D only starts to overfit (r_t
          about 0.62 at the end without augmentation), so ADA keeps p near
          0 and tracks the plain run; its gain needs longer training,
          which was not measured here.
  short   3,000 steps at batch 64 (about 12 minutes on 2 idle CPU cores): the
          budget of the apply tools' quality figures in BENCHMARKS.md.
  smoke   40 steps at batch 64 with frequent logs, images and checkpoints:
          checks that everything runs, in well under a minute on 2 CPU cores.
          It is not expected to produce digits.
"""

import ml_collections

from trainer import schedules


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; `arg` names a variant (see the module docstring)."""
  config = ml_collections.ConfigDict()
  # Seeds the weights, the noise, the data order, dropout and augmentation.
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # embedded:mnist (MNIST's 10,000 test digits, shipped with the package),
  # tfds:<name>, idx:<dir>, folder:<dir>, packed:<dir> or
  # stacked_mnist:<digits> (docs/data.md).
  config.data.source = "embedded:mnist"
  # The split to train on, or a slice of it: test[:1000], train[10%:].
  config.data.split = "test"
  # Where TFDS finds (or builds) prepared datasets; "" is TFDS's default.
  config.data.tfds_data_dir = ""
  # Let TFDS download and prepare a dataset it does not find locally.
  config.data.tfds_download = True
  # Reshuffle every epoch (a full permutation, reproducible from the seed).
  config.data.shuffle = True
  # Resize images whose size differs from the model's instead of refusing.
  config.data.resize = False
  # A folder: image that cannot be decoded: "stop" the run naming it, or
  # "skip" it (the next good image takes its place) and count it.
  config.data.on_bad_image = "stop"

  config.model = ml_collections.ConfigDict()
  # The network family: dcgan, stylegan2 or r3gan (trainer/models).
  config.model.architecture = "dcgan"
  # The side of the square images G makes and D judges.
  config.model.image_size = 28
  config.model.channels = 1  # 1 (grey) or 3 (RGB)
  config.model.latent_dim = 100  # the size of the noise vector z
  # Classes of a class-conditional model (G and D see the labels); 0: none.
  config.model.num_classes = 0
  # Width of G's last hidden layer and D's first; the others double from it.
  config.model.g_width = 64
  config.model.d_width = 64
  config.model.d_dropout = 0.3  # dropout after each of D's convolutions
  # Batch-norm statistics over the global batch rather than each replica's.
  config.model.sync_batchnorm = True
  # Spectral normalization of D's (and G's) weight layers (Miyato et al.).
  config.model.d_spectral_norm = False
  config.model.g_spectral_norm = False
  # non_saturating, minimax, hinge, wgan, wgan_gp (wgan with the gp
  # penalty) or rpgan (relativistic pairing).
  config.model.loss = "non_saturating"
  # Decay of the exponential moving average of G's weights (G_ema) per step.
  config.model.ema_decay = 0.999
  # G_ema's half-life in thousands of images instead (StyleGAN2's ema_kimg),
  # when > 0; ema_rampup > 0 caps it at that fraction of the images seen so
  # far, so that early G_ema follows G closely.
  config.model.ema_kimg = 0.0
  config.model.ema_rampup = 0.0

  # Penalties by name, comma-separated: on D r1 (on reals), r2 (on fakes),
  # gp (WGAN-GP's, on interpolates); on G pl (StyleGAN2's path length); ""
  # for none. Each adds weight/2 * |grad D|^2 (gp: weight * (|grad D| -
  # 1)^2; pl: weight * (|J^T y| - a)^2) every `interval` steps, multiplied by
  # the interval (lazy regularization, StyleGAN2).
  config.penalties = ml_collections.ConfigDict()
  config.penalties.names = ""
  # Each penalty's weight (r1, r2: gamma) and interval in steps.
  config.penalties.r1 = ml_collections.ConfigDict({"weight": 1.0,
                                                   "interval": 16})
  config.penalties.r2 = ml_collections.ConfigDict({"weight": 1.0,
                                                   "interval": 16})
  config.penalties.gp = ml_collections.ConfigDict({"weight": 10.0,
                                                   "interval": 1})
  # pl: a is the running mean of |J^T y| (decay), on batch / batch_shrink
  # latents.
  config.penalties.pl = ml_collections.ConfigDict({
      "weight": 2.0, "interval": 4, "decay": 0.01, "batch_shrink": 2})

  # Augmentation of every image D sees (real and fake, in the penalties
  # too), differentiable so that G learns through it.
  config.augment = ml_collections.ConfigDict()
  # "" (none), diffaugment (Zhao et al. 2020) or ada (Karras et al. 2020).
  config.augment.name = ""
  # The pipeline's groups to use, comma-separated; "" for all of them.
  config.augment.groups = ""
  # ada: how p moves. adaptive: from D's overfitting signal r_t toward
  # `target`; fixed: p stays `p`, or follows schedules.augment.p.
  config.augment.p_mode = "adaptive"
  config.augment.p = 0.0
  config.augment.target = 0.6
  # Steps between adjustments of p, and the thousands of images over which
  # it can move from 0 to 1.
  config.augment.interval = 4
  config.augment.speed_kimg = 500.0

  # Adam's learning rates, for G and D, and its betas.
  config.optim = ml_collections.ConfigDict()
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.beta1 = 0.5
  config.optim.beta2 = 0.999

  # Values that move during the run, from their value above to an end value:
  # "linear(end, kimg)" or "cosine(end, kimg)" over kimg thousand images;
  # "" keeps one constant. E.g. schedules.optim.g_lr="cosine(5e-5, 20000)".
  # Schedulable: learning rates, betas, penalty weights, model.ema_decay or
  # model.ema_kimg, augment.p (docs/training.md).
  config.schedules = schedules.default_config()

  config.train = ml_collections.ConfigDict()
  # Training steps: each n_disc updates of D and one of G.
  config.train.steps = 10_000
  config.train.batch_size = 256  # global, over all replicas
  config.train.n_disc = 1  # D updates per G update
  # Both updates from one forward pass of G and D, G's loss from D's logits
  # before D's update (the TensorFlow tutorial's step; needs n_disc = 1);
  # False: G's update follows D's, on fresh fakes against the updated D.
  config.train.simultaneous = False
  config.train.steps_per_loop = 20  # steps per call of the compiled loop
  config.train.log_every = 100  # steps between log lines and scalars
  # Steps between checkpoints; one is also written at the end.
  config.train.checkpoint_every = 1000
  config.train.keep_checkpoints = 3  # the most recent checkpoints kept
  config.train.image_every = 500  # steps between image grids and histograms
  config.train.grid_size = 64  # images in the fixed-noise grid
  config.train.histogram_samples = 512  # real and fake images in D's histograms
  # Evaluate (the metrics of config.eval) every this many steps; 0: never.
  config.train.eval_every = 0
  # With eval_every > 0, also evaluate the untrained G at step 0 of a new
  # run (not of a resumed one).
  config.train.eval_at_start = False

  # Evaluation: `python -m trainer.evaluate`, and during training when
  # train.eval_every > 0 (docs/evaluation.md).
  config.eval = ml_collections.ConfigDict()
  # Comma-separated: fid, kid, inception_score, precision_recall,
  # class_coverage.
  config.eval.metrics = "fid,kid,inception_score,precision_recall,class_coverage"
  # mnist_classifier (MNIST and Stacked MNIST) or inception_v3.
  config.eval.extractor = "mnist_classifier"
  # A local weights file; "" for the extractor's own (shipped or downloaded).
  config.eval.extractor_path = ""
  config.eval.num_samples = 10_000  # generated images (from G_ema)
  config.eval.num_real = 10_000  # real images
  # The real images: "" means data.source and data.split.
  config.eval.source = ""
  config.eval.split = ""
  config.eval.batch_size = 500  # global batch of feature extraction
  # KID: the mean over this many random subsets of this size.
  config.eval.kid_subsets = 100
  config.eval.kid_subset_size = 1000
  config.eval.pr_k = 3  # k-th neighbour radius for precision and recall
  config.eval.is_splits = 10  # Inception Score: mean and std over splits
  # Cached real-image features; "" means $GAN_TRAINER_CACHE, else
  # ~/.cache/gan_trainer.
  config.eval.cache_dir = ""

  config.runtime = ml_collections.ConfigDict()
  # float32, mixed_bfloat16 or mixed_float16 (with loss scaling).
  config.runtime.mixed_precision = "float32"
  # XLA for the replica step. Off: on a 2-core CPU it made the step slower
  # in float32 and bfloat16 (docs/performance.md); try it on GPUs.
  config.runtime.jit_compile = False
  # Threads of TensorFlow's pools: inside one op (intra) and between ops
  # (inter); 0 lets TensorFlow choose (one per core for both). On a 2-core
  # CPU one thread per op made no consistent difference (docs/performance.md);
  # on many-core machines shared by several jobs, set them.
  config.runtime.intra_op_threads = 0
  config.runtime.inter_op_threads = 0

  if arg == "smoke":
    config.train.steps = 40
    config.train.batch_size = 64
    config.train.steps_per_loop = 5
    config.train.log_every = 10
    config.train.checkpoint_every = 20
    config.train.image_every = 20
    config.train.grid_size = 16
    config.train.histogram_samples = 128
    config.eval.num_samples = 2000
    config.eval.num_real = 2000
    config.eval.kid_subsets = 20
  elif arg == "short":
    config.train.steps = 3000
    config.train.batch_size = 64
    config.train.checkpoint_every = 500
  elif arg == "limited":
    config.data.split = "test[:1000]"
    config.eval.split = "test"
    config.eval.metrics = "fid,kid"
    config.model.d_dropout = 0.0
    config.augment.name = "ada"
    config.augment.speed_kimg = 100.0
    config.train.steps = 4000
    config.train.batch_size = 64
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
  elif arg == "stacked":
    config.data.source = "stacked_mnist:embedded:mnist"
    config.model.channels = 3
    config.train.eval_every = 1000
  elif arg:
    raise ValueError(
        f"unknown variant {arg!r} of dcgan_mnist; valid: limited, short, "
        "smoke, stacked")
  return config
