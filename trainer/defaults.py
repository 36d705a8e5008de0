"""The base config: the one home of the defaults that config files build on.

`base(architecture)` holds the training loop's, data, evaluation,
augmentation, penalty, schedule, optimizer and runtime defaults and the model
fields that every architecture has; an architecture's own model fields and
their defaults come from its declaration (trainer/models: Architecture.fields)
and a penalty's section from its registration (trainer/penalties/). Each
file in configs/ starts from `base` and sets only what its experiment
changes; `trainer.config.resolve` fills in what a config lacks from here.

The comment above a field, or at the end of its line, is its help in
docs/config-reference.md (trainer/config_reference.py reads it here).
"""

import ml_collections

from trainer.models import ARCHITECTURES
from trainer.penalties import base as penalties_lib
from trainer import schedules


def base(architecture: str = "dcgan") -> ml_collections.ConfigDict:
  """The defaults, with `architecture`'s own model fields.

  Raises:
    UserError: `architecture` names no registered architecture.
  """
  config = ml_collections.ConfigDict()
  # Seeds the weights, the noise, the data order, dropout and augmentation.
  config.seed = 0
  _add_data(config)
  _add_model(config, architecture)
  _add_penalties(config)
  _add_augment(config)

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

  _add_train(config)
  _add_init(config)
  _add_eval(config)
  _add_runtime(config)
  return config


def _add_data(config: ml_collections.ConfigDict) -> None:
  config.data = ml_collections.ConfigDict()
  # embedded:mnist (MNIST's 10,000 test digits, shipped with the package),
  # tfds:<name>, idx:<dir>, folder:<dir>, packed:<dir> or
  # stacked_mnist:<digits> (docs/data.md).
  config.data.source = "embedded:mnist"
  # The split to train on, or a slice of it: test[:1000], train[10%:].
  config.data.split = "test"
  # Keep only the examples with these labels, after data.split:
  # comma-separated classes such as "0,1,2,3,4"; "" keeps all
  # (docs/data.md). The evaluation's real images keep them too when
  # eval.split is "".
  config.data.classes = ""
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


def _add_model(config: ml_collections.ConfigDict, architecture: str) -> None:
  config.model = ml_collections.ConfigDict()
  # The network family: dcgan, stylegan2 or r3gan (trainer/models).
  config.model.architecture = architecture
  # The side of the square images G makes and D judges.
  config.model.image_size = 28
  config.model.channels = 1  # 1 (grey) or 3 (RGB)
  config.model.latent_dim = 100  # the size of the noise vector z
  # Classes of a class-conditional model (G and D see the labels); 0: none.
  config.model.num_classes = 0
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
  config.model.update(ARCHITECTURES.get(architecture).fields)


def _add_penalties(config: ml_collections.ConfigDict) -> None:
  # Penalties by name, comma-separated: on D r1 (on reals), r2 (on fakes),
  # gp (WGAN-GP's, on interpolates); on G pl (StyleGAN2's path length); ""
  # for none. Each adds weight/2 * |grad D|^2 (gp: weight * (|grad D| -
  # 1)^2; pl: weight * (|J^T y| - a)^2) every `interval` steps, multiplied by
  # the interval (lazy regularization, StyleGAN2).
  config.penalties = ml_collections.ConfigDict()
  config.penalties.names = ""
  # Each registered penalty's section, with the defaults of its
  # registration (trainer/penalties/).
  for name in penalties_lib.PENALTIES.names():
    config.penalties[name] = dict(penalties_lib.PENALTIES.get(name).fields)


def _add_augment(config: ml_collections.ConfigDict) -> None:
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


def _add_train(config: ml_collections.ConfigDict) -> None:
  config.train = ml_collections.ConfigDict()
  # Training steps: each n_disc updates of D and one of G.
  config.train.steps = 10_000
  config.train.batch_size = 256  # global, over all replicas
  config.train.n_disc = 1  # D updates per G update
  # Both updates from one forward pass of G and D, G's loss from D's logits
  # before D's update (the TensorFlow tutorial's step; needs n_disc = 1);
  # False: G's update follows D's, on fresh fakes against the updated D.
  config.train.simultaneous = False
  # Freeze-D (Mo et al. 2020; StyleGAN2-ADA's --freezed): D's first N layers
  # with weights, counted from the images, are not trained (each
  # architecture's order: trainer/models/freezing.py); 0 trains all of D.
  config.train.freeze_d = 0
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


def _add_init(config: ml_collections.ConfigDict) -> None:
  # Fine-tuning: where a new run's weights come from (docs/training.md).
  config.init = ml_collections.ConfigDict()
  # A new run (no checkpoint in its workdir yet) starts G, D and G_ema from
  # the weights of a run of the same model: its workdir (the latest
  # checkpoint), <workdir>/checkpoints/ckpt-N, or a network pickle of
  # StyleGAN2-ADA, TensorFlow StyleGAN2 or R3GAN (.pkl, read as
  # trainer.convert reads it). Not its optimizers, step, ADA's p or data
  # position. A run that resumes ignores it; "" starts from
  # random weights. (--config.init.from=<path>: "from" is a Python keyword,
  # so in Python code config.init["from"].)
  config.init["from"] = ""


def _add_eval(config: ml_collections.ConfigDict) -> None:
  # Evaluation: `python -m trainer.evaluate`, and during training when
  # train.eval_every > 0 (docs/evaluation.md).
  config.eval = ml_collections.ConfigDict()
  # Comma-separated: fid, kid, inception_score, precision_recall,
  # class_coverage.
  config.eval.metrics = (
      "fid,kid,inception_score,precision_recall,class_coverage")
  # mnist_classifier (MNIST and Stacked MNIST) or inception_v3.
  config.eval.extractor = "mnist_classifier"
  # A local weights file; "" for the extractor's own (shipped or downloaded).
  config.eval.extractor_path = ""
  config.eval.num_samples = 10_000  # generated images (from G_ema)
  config.eval.num_real = 10_000  # real images
  # The real images: "" means data.source and data.split (eval.split ""
  # also keeps only data.classes).
  config.eval.source = ""
  config.eval.split = ""
  # Comma-separated classes of the real images to keep, such as "5,6,7,8,9";
  # "" keeps data.classes's with eval.split "", else all of eval.split's.
  config.eval.classes = ""
  config.eval.batch_size = 500  # global batch of feature extraction
  # KID: the mean over this many random subsets of this size.
  config.eval.kid_subsets = 100
  config.eval.kid_subset_size = 1000
  config.eval.pr_k = 3  # k-th neighbour radius for precision and recall
  config.eval.is_splits = 10  # Inception Score: mean and std over splits
  # Cached real-image features; "" means $GAN_TRAINER_CACHE, else
  # ~/.cache/gan_trainer.
  config.eval.cache_dir = ""


def _add_runtime(config: ml_collections.ConfigDict) -> None:
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


# Settings by dotted path that config files apply with
# `config.update_from_flattened_dict`, for variants that several files share.

# A smoke run: 40 steps at batch 64 with frequent logs, images and
# checkpoints and a small evaluation, to check that everything runs.
SMOKE = {
    "train.steps": 40, "train.batch_size": 64, "train.steps_per_loop": 5,
    "train.log_every": 10, "train.checkpoint_every": 20,
    "train.image_every": 20, "train.grid_size": 16,
    "train.histogram_samples": 128, "eval.num_samples": 2000,
    "eval.num_real": 2000, "eval.kid_subsets": 20,
}

# 3,000 steps at batch 64: the budget of the apply tools' quality figures
# (BENCHMARKS.md).
SHORT = {"train.steps": 3000, "train.batch_size": 64,
         "train.checkpoint_every": 500}

# The papers' datasets, evaluated as the papers evaluate them (Inception
# features, 50,000 images), with checkpoints and images of a long run.
_PAPER_SCALE = {
    "data.split": "train", "model.channels": 3,
    "eval.extractor": "inception_v3",
    "eval.metrics": "fid,kid,inception_score,precision_recall",
    "eval.num_samples": 50_000, "eval.num_real": 50_000,
    "train.checkpoint_every": 5000, "train.image_every": 1000,
}

# The variants that configs/stylegan2.py and configs/r3gan.py share: their
# data, image size, channels and classes, and how they are evaluated and
# looped. The MNIST ones resize the 28x28 digits to the model's 32x32.
VARIANTS = {
    "cifar32": {**_PAPER_SCALE, "data.source": "tfds:cifar10",
                "model.image_size": 32, "model.num_classes": 10},
    "ffhq256": {**_PAPER_SCALE, "data.source": "folder:data/ffhq256",
                "model.image_size": 256},
    "ffhq1024": {**_PAPER_SCALE, "data.source": "folder:data/ffhq1024",
                 "model.image_size": 1024},
    "mnist32": {
        "data.resize": True, "model.image_size": 32,
        "eval.metrics": "fid,kid,class_coverage", "train.eval_every": 2000,
        # The untrained G's metrics first: by the MNIST classifier's FID its
        # blobs score about as well as an hour of training (BENCHMARKS.md).
        "train.eval_at_start": True},
    "smoke": {**SMOKE, "data.resize": True, "model.image_size": 32},
}
