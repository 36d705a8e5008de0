"""Evaluation of a generator: metrics, D's pictures, and their records.

One `Evaluator` serves training (every `train.eval_every` steps, on the live
state) and `python -m trainer.evaluate` (`evaluate_checkpoints`: saved
checkpoints, once or as they appear).

Protocol, recorded with every result:
  * generated images: `eval.num_samples` from G_ema, on noise drawn once from
    the config's seed, the same for every checkpoint;
  * real images: the first `eval.num_real` of a fixed permutation (seed 0) of
    `eval.source`/`eval.split` (default: the training data, data.classes
    included);
  * features: `eval.extractor`, identified by version and weights hash;
  * the metrics' own settings (KID subsets, k of precision and recall, IS
    splits).
Real features are cached under that key in `eval.cache_dir`.

Written on the chief, under <workdir>/eval: `metrics.jsonl` (one object per
evaluation), TensorBoard events (metrics/*, D's histograms and picture, a G_ema
grid) and `discriminator/step_<step>.png`.
"""

import datetime
import hashlib
import json
import os
import re
import time
from typing import Iterator

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf

from trainer import checkpoint as checkpoint_lib
from trainer import config as config_lib
from trainer.data import pipeline
from trainer.data import sources
from trainer import distribute
from trainer.errors import UserError
from trainer import features as features_lib
from trainer import files
from trainer import metrics as metrics_lib
from trainer import models
from trainer import monitor as monitor_lib
from trainer import plots
from trainer import random_streams
from trainer import state as state_lib
from trainer import summaries

# Real images are taken in this fixed order, so that any prefix is a uniform
# sample even of a source sorted by class (class folders).
_REAL_ORDER_SEED = 0
# Bump when the way real features are computed changes (invalidates caches).
_CACHE_FORMAT = 1


def metric_names(config: ml_collections.ConfigDict) -> list[str]:
  """The names in eval.metrics, each checked against the registry."""
  names = [n.strip() for n in config.eval.metrics.split(",") if n.strip()]
  if not names:
    raise UserError("eval.metrics is empty; valid: "
                    + ", ".join(metrics_lib.METRICS.names()))
  for name in names:
    metrics_lib.METRICS.get(name)
  return names


def _settings(config: ml_collections.ConfigDict) -> metrics_lib.Settings:
  e = config.eval
  return metrics_lib.Settings(kid_subsets=e.kid_subsets,
                              kid_subset_size=e.kid_subset_size,
                              pr_k=e.pr_k, is_splits=e.is_splits)


def real_source(config: ml_collections.ConfigDict) -> sources.Source:
  """The real images to compare with: eval.source/split, else the data's.

  With eval.split "" they are data.split's, and data.classes's only;
  eval.classes, when set, keeps those classes instead.
  """
  data = config.data
  source = sources.load(config.eval.source or data.source, sources.Request(
      split=config.eval.split or data.split,
      image_size=config.model.image_size, channels=config.model.channels,
      resize=data.resize, tfds_data_dir=data.tfds_data_dir,
      tfds_download=data.tfds_download, on_bad_image=data.on_bad_image,
      section="eval"))
  if config.eval.classes:
    return sources.keep_classes(source, config.eval.classes, "eval.classes")
  return sources.keep_classes(source, "" if config.eval.split
                              else data.classes)


def cache_dir(config: ml_collections.ConfigDict) -> str:
  return (config.eval.cache_dir or os.environ.get("GAN_TRAINER_CACHE")
          or os.path.join(os.path.expanduser("~"), ".cache", "gan_trainer"))


def _map_batches(strategy: tf.distribute.Strategy, run,
                 batches: Iterator[tuple[np.ndarray, ...]],
                 batch_size: int) -> metrics_lib.Features:
  """Runs `run` on every batch (each array padded to `batch_size`).

  Each batch is a tuple of arrays with the same number of rows (images; or
  noise and labels); the outputs are concatenated over the batches.
  """
  embeddings, probabilities = [], []
  for rows in batches:
    embedding, probability = distribute.run_on_rows(strategy, run, rows,
                                                    batch_size)
    embeddings.append(embedding.astype(np.float64))
    probabilities.append(probability.astype(np.float64))
  return metrics_lib.Features(np.concatenate(embeddings),
                              np.concatenate(probabilities))


class Evaluator:
  """Computes and records the metrics of config.eval for a GAN state.

  Args:
    config: the experiment config.
    strategy: features are computed on its replicas.
    state: the state to evaluate; the caller decides what it holds (the
      live training state, or a restored checkpoint).
    workdir: results go to <workdir>/eval.
    is_chief: only the chief writes.

  Raises:
    UserError: a bad eval setting, sample counts too small for a metric,
      missing real data or extractor weights; before any expensive work.
  """

  def __init__(self, config: ml_collections.ConfigDict,
               strategy: tf.distribute.Strategy, state: state_lib.GanState,
               workdir: str, *, is_chief: bool):
    e = config.eval
    self._names = metric_names(config)
    self._settings = _settings(config)
    metrics_lib.check_sample_counts(self._names, e.num_real, e.num_samples,
                                    self._settings)
    replicas = strategy.num_replicas_in_sync
    if e.batch_size % replicas:
      raise UserError(f"eval.batch_size={e.batch_size} is not divisible by "
                      f"the {replicas} replicas; use a multiple of {replicas}")
    self._source = real_source(config)
    sources.check_classes(self._source, config.model.num_classes)
    if e.num_real > self._source.num_examples:
      raise UserError(
          f"eval.num_real={e.num_real} but {self._source.description} split "
          f"{e.split or config.data.split!r} has only "
          f"{self._source.num_examples} images; lower eval.num_real")
    with strategy.scope():
      self._extractor = features_lib.build(
          e.extractor, e.extractor_path, self._source.image_shape)
    self._config = config
    self._strategy = strategy
    self._workdir = os.path.join(workdir, "eval")
    self._is_chief = is_chief
    self._writer = summaries.Writer(self._workdir if is_chief else None)
    self._extract = distribute.replicated(strategy, self._extractor.extract)
    self._generate_and_extract = distribute.replicated(
        strategy, lambda z, *labels: self._extractor.extract(
            models.generate(state.generator_ema, z,
                               labels[0] if labels else None,
                               training=False)))
    self._monitor = monitor_lib.Monitor(
        strategy, state, config,
        pipeline.first_examples(self._source, config.train.histogram_samples))
    self.protocol = {
        "generator": "generator_ema",
        "num_samples": e.num_samples,
        "num_real": e.num_real,
        "dataset": self._source.description,
        "split": e.split or config.data.split,
        "real_order": f"permutation seed {_REAL_ORDER_SEED}",
        "noise_seed": [config.seed, random_streams.EVAL_NOISE],
        # Class-conditional generators draw every class equally often.
        "labels": "balanced" if config.model.num_classes else "none",
        "extractor": self._extractor.name,
        "extractor_id": self._extractor.identity,
        "kid_subsets": e.kid_subsets,
        "kid_subset_size": e.kid_subset_size,
        "pr_k": e.pr_k,
        "is_splits": e.is_splits,
    }
    self._real = self._real_features()

  # --------------------------------------------------------- real features

  def _cache_path(self) -> str:
    key = {k: self.protocol[k] for k in ("dataset", "split", "num_real",
                                         "real_order", "extractor_id")}
    key["image_shape"] = list(self._source.image_shape)
    key["format"] = _CACHE_FORMAT
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    return os.path.join(cache_dir(self._config),
                        f"real_features_{digest.hexdigest()[:20]}.npz")

  def _real_features(self) -> metrics_lib.Features:
    """The real images' features, from the cache or computed (and cached)."""
    path = self._cache_path()
    if tf.io.gfile.exists(path):
      try:
        with tf.io.gfile.GFile(path, "rb") as f, np.load(f) as data:
          cached = metrics_lib.Features(data["embeddings"],
                                        data["probabilities"])
        logging.info("Real features from the cache %s", path)
        return cached
      except (OSError, ValueError, KeyError) as e:
        logging.warning("Ignoring the unreadable cache %s (%s)", path, e)
    count, batch = self.protocol["num_real"], self._config.eval.batch_size
    order = np.random.default_rng(_REAL_ORDER_SEED).permutation(
        self._source.num_examples)[:count]
    logging.info("Computing the features of %d real images of %s", count,
                 self._source.description)
    batches = ((self._read_real(order[i:i + batch]),)
               for i in range(0, count, batch))
    real = _map_batches(self._strategy, self._extract, batches, batch)
    if self._is_chief:
      files.write_npz(path, embeddings=real.embeddings,
                      probabilities=real.probabilities)
    return real

  def _read_real(self, indices: np.ndarray) -> np.ndarray:
    images = self._source.read(tf.constant(indices))["image"]
    return pipeline.to_unit_range(images).numpy()  # [n, H, W, C]

  # ------------------------------------------------------------ evaluation

  def _fake_features(self) -> metrics_lib.Features:
    count, batch = self.protocol["num_samples"], self._config.eval.batch_size
    latent_dim = self._config.model.latent_dim
    noise = tf.random.stateless_normal(
        [count, latent_dim], random_streams.stream_seed(
            self._config.seed, random_streams.EVAL_NOISE)).numpy()
    labels = models.balanced_labels(count, self._config.model.num_classes)
    rows = (noise,) if labels is None else (noise, labels)
    batches = (tuple(array[i:i + batch] for array in rows)
               for i in range(0, count, batch))
    return _map_batches(self._strategy, self._generate_and_extract, batches,
                        batch)

  def evaluate(self, step: int, checkpoint: str = "", *,
               record: bool = True) -> dict:
    """Evaluates the state as it is now; returns the result and, with
    `record`, writes it (on the chief)."""
    start = time.monotonic()
    values = metrics_lib.compute(self._names, self._real,
                                 self._fake_features(), self._settings)
    result = {"step": step, **values,
              "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec="seconds"),
              "seconds": round(time.monotonic() - start, 1),
              "checkpoint": checkpoint, "protocol": self.protocol}
    logging.info("Evaluation at step %d: %s", step, ", ".join(
        f"{k} {v:.4g}" for k, v in values.items()))
    outputs = self._monitor.outputs()
    if self._is_chief and record:
      self._write(step, result, values, outputs)
    return result

  def _write(self, step: int, record: dict, values: dict[str, float],
             outputs: dict[str, np.ndarray]) -> None:
    metrics_path = os.path.join(self._workdir, "metrics.jsonl")
    lines = _read_lines(metrics_path)
    lines.append(json.dumps(record, sort_keys=True))
    files.write_atomically(metrics_path, ("\n".join(lines) + "\n").encode())
    real = outputs["d_probability/real"]
    fake = outputs["d_probability/fake"]
    png = plots.discriminator_png(real, fake, step=step)
    files.write_atomically(os.path.join(self._workdir, "discriminator",
                                   f"step_{step:08d}.png"), png)
    writer = self._writer
    writer.scalars(step, {f"metrics/{name}": value
                          for name, value in values.items()})
    writer.histograms(step, {"d_probability/real": real,
                             "d_probability/fake": fake})
    writer.png(step, "discriminator", png)
    writer.images(step, "samples/generator_ema",
                  outputs["samples/generator_ema"])
    writer.flush()


def _read_lines(path: str) -> list[str]:
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return [line for line in f.read().splitlines() if line.strip()]


def read_records(workdir: str) -> list[dict]:
  """The evaluations in <workdir>/eval/metrics.jsonl, malformed lines left
  out (with a warning)."""
  records = []
  for line in _read_lines(os.path.join(workdir, "eval", "metrics.jsonl")):
    try:
      record = json.loads(line)
      record["step"] = int(record["step"])
      records.append(record)
    except (ValueError, KeyError, TypeError):
      logging.warning("Ignoring a malformed line of metrics.jsonl: %s",
                      line[:200])
  return records


def evaluated_steps(workdir: str) -> set[int]:
  """The steps that <workdir>/eval/metrics.jsonl already holds."""
  return {record["step"] for record in read_records(workdir)}


# ------------------------------------------------------------- checkpoints ---

_CHECKPOINT_STEP = re.compile(r"ckpt-(\d+)$")


def _step_of(path: str) -> int:
  """The step of a checkpoint written by training (ckpt-<step>)."""
  match = _CHECKPOINT_STEP.search(path)
  return int(match[1]) if match else -1


class WatchTimeout(RuntimeError):
  """--continuous saw no new checkpoint for its timeout."""


def evaluate_checkpoints(config: ml_collections.ConfigDict, workdir: str,
                         strategy: tf.distribute.Strategy, *,
                         checkpoint: str = "", continuous: bool = False,
                         poll_seconds: float = 30.0,
                         timeout_seconds: float = 0.0) -> list[dict]:
  """Evaluates a run's checkpoints; returns the records written.

  Args:
    config: the config the run was trained with.
    workdir: the run's directory.
    strategy: where to compute.
    checkpoint: a checkpoint path; "" for the workdir's latest.
    continuous: watch the workdir and evaluate each new checkpoint until the
      one of step train.steps. A checkpoint that cannot be read (half
      written, or deleted meanwhile) is retried while it is the newest and
      skipped once a newer one exists. Steps already in metrics.jsonl are
      not evaluated again.
    poll_seconds: how often --continuous looks for checkpoints.
    timeout_seconds: --continuous gives up after this long without a new
      checkpoint (raises WatchTimeout); 0 waits for ever.

  Raises:
    UserError: no checkpoint, another model's or a damaged checkpoint (not
      in continuous mode), or a bad config.
    WatchTimeout: see timeout_seconds.
  """
  config = config_lib.resolve(config)
  config_lib.check_compatible(config, workdir)
  if checkpoint and continuous:
    raise UserError("--checkpoint and --continuous exclude each other")
  state = state_lib.build_state(config, strategy)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, state.trackables(), keep=config.train.keep_checkpoints,
      is_chief=False)
  if not continuous:
    path = checkpointer.chosen(checkpoint)
    checkpoint_lib.check_model_of(path, config,
                                  remedy="Use a checkpoint of this model")
    checkpointer.restore(path)
  evaluator = Evaluator(config, strategy, state, workdir,
                        is_chief=distribute.is_chief(strategy))
  if not continuous:
    return [evaluator.evaluate(int(state.step.numpy()), path)]
  return _watch(evaluator, checkpointer, state, workdir,
                final_step=config.train.steps, poll_seconds=poll_seconds,
                timeout_seconds=timeout_seconds)


def _watch(evaluator: Evaluator, checkpointer: checkpoint_lib.Checkpointer,
           state: state_lib.GanState, workdir: str, *, final_step: int,
           poll_seconds: float, timeout_seconds: float) -> list[dict]:
  """The loop of --continuous (see evaluate_checkpoints)."""
  done = evaluated_steps(workdir)
  if any(step >= final_step for step in done):
    logging.info("The final step %d is already evaluated in %s", final_step,
                 workdir)
    return []
  records, unreadable = [], set()
  last_progress = time.monotonic()
  logging.info("Watching %s for checkpoints up to step %d",
               checkpointer.directory, final_step)
  while True:
    pending = [p for p in checkpointer.all_checkpoints()
               if _step_of(p) not in done]
    for path in pending:
      try:
        checkpointer.restore(path)
      except UserError as e:
        if path != pending[-1]:
          logging.warning("Skipping %s: a newer checkpoint exists and this "
                          "one cannot be read (%s)", path, e)
          done.add(_step_of(path))
        elif path not in unreadable:
          logging.warning("Cannot read %s yet, retrying every %gs: %s", path,
                          poll_seconds, e)
          unreadable.add(path)
        continue
      step = int(state.step.numpy())
      records.append(evaluator.evaluate(step, path))
      done.add(_step_of(path))
      last_progress = time.monotonic()
      if step >= final_step:
        return records
    waited = time.monotonic() - last_progress
    if timeout_seconds and waited > timeout_seconds:
      raise WatchTimeout(
          f"no new checkpoint in {checkpointer.directory} for "
          f"{waited:.0f} s (--timeout={timeout_seconds:g}); the last "
          f"evaluated step is {max(done, default='none')}. Run the same "
          "command to go on watching")
    time.sleep(poll_seconds)
