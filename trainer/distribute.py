"""The one place where tf.distribute strategies are made, and how batches of
rows are split over their replicas and gathered back."""

import json
import math
import os
from typing import Callable, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from trainer.errors import UserError
from trainer.registry import Registry

STRATEGIES: Registry = Registry("strategy", "--strategy")
# Rows of one call of map_rows (sampling, interpolation, mixing, editing).
_MAP_BATCH = 256


def configure_cpu_devices(num_cpu_devices: int) -> None:
  """Splits the CPU into `num_cpu_devices` logical devices.

  On a machine without accelerators this lets MirroredStrategy run several
  replicas. It must run before TensorFlow initialises its devices.
  """
  if num_cpu_devices < 1:
    raise UserError(
        f"--num_cpu_devices={num_cpu_devices} is out of range; it must be >= 1")
  if num_cpu_devices == 1:
    return
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
  except RuntimeError as e:
    raise UserError(
        "--num_cpu_devices must be set before TensorFlow starts its devices; "
        f"it was too late here ({e})") from None


def configure_threads(intra_op: int, inter_op: int) -> None:
  """Sets the threads of TensorFlow's pools; 0 keeps TensorFlow's choice.

  `intra_op` threads share the work of one op, `inter_op` threads run
  independent ops side by side. Like the devices, they are fixed when
  TensorFlow starts.
  """
  for name, value in (("intra_op_threads", intra_op),
                      ("inter_op_threads", inter_op)):
    if value < 0:
      raise UserError(f"runtime.{name}={value} is out of range; it must be "
                      ">= 0 (0: TensorFlow's choice)")
  try:
    if intra_op:
      tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
      tf.config.threading.set_inter_op_parallelism_threads(inter_op)
  except RuntimeError as e:
    raise UserError(
        "runtime.intra_op_threads and runtime.inter_op_threads must be set "
        f"before TensorFlow starts; it was too late here ({e})") from None


def _local_devices() -> list[str]:
  """GPUs if there are any, else the (logical) CPU devices."""
  gpus = tf.config.list_logical_devices("GPU")
  devices = gpus or tf.config.list_logical_devices("CPU")
  return [d.name for d in devices]


@STRATEGIES.register("default")
def _default(tpu: str) -> tf.distribute.Strategy:
  """TensorFlow's default strategy: no distribution, TensorFlow's device."""
  del tpu
  return tf.distribute.get_strategy()


@STRATEGIES.register("one_device")
def _one_device(tpu: str) -> tf.distribute.Strategy:
  """One replica on the first local device (a GPU where there is one)."""
  del tpu
  return tf.distribute.OneDeviceStrategy(_local_devices()[0])


@STRATEGIES.register("mirrored")
def _mirrored(tpu: str) -> tf.distribute.Strategy:
  """One replica per local GPU (else per logical CPU), all-reduced."""
  del tpu
  return tf.distribute.MirroredStrategy(_local_devices())


def _slurm_resolver() -> tf.distribute.cluster_resolver.ClusterResolver:
  """The cluster of the Slurm job step this task runs in (one task a worker).

  SlurmClusterResolver counts GPUs with nvidia-smi and fails with zero of them;
  on nodes without GPUs it is told one "GPU" per task, which only sets
  CUDA_VISIBLE_DEVICES.
  """
  # The first port of the workers' servers on each node (launch/slurm sets
  # it per job, so that two jobs on one node do not collide).
  options = {"port_base": int(os.environ.get("GAN_SLURM_PORT_BASE", "8888"))}
  if not tf.config.list_physical_devices("GPU"):
    # Any count >= the tasks on the busiest node will do; the step's task
    # count always is (SLURM_NTASKS_PER_NODE is the job's, not the step's,
    # and is unset or only a maximum for some layouts).
    options.update(gpus_per_node=int(os.environ["SLURM_STEP_NUM_TASKS"]),
                   gpus_per_task=1)
  return tf.distribute.cluster_resolver.SlurmClusterResolver(**options)


@STRATEGIES.register("multi_worker")
def _multi_worker(tpu: str) -> tf.distribute.Strategy:
  """MultiWorkerMirroredStrategy from TF_CONFIG, else from a Slurm step."""
  del tpu
  resolver = None
  if "TF_CONFIG" in os.environ:
    try:
      json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
      raise UserError(f"TF_CONFIG is not valid JSON: {e}") from None
  elif "SLURM_STEP_NUM_TASKS" in os.environ:
    resolver = _slurm_resolver()
  else:
    raise UserError(
        "--strategy=multi_worker needs the cluster: set TF_CONFIG, or start "
        "the workers with srun inside a Slurm job; see docs/clusters.md")
  return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


@STRATEGIES.register("tpu")
def _tpu(tpu: str) -> tf.distribute.Strategy:
  """TPUStrategy on the TPU named by --tpu (a name or grpc:// address)."""
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, tf.errors.OpError) as e:
    where = tpu or "(none given; set --tpu to a TPU name or grpc:// address)"
    raise UserError(f"cannot reach a TPU at {where}: {e}") from None
  return tf.distribute.TPUStrategy(resolver)


def create_strategy(name: str, *, tpu: str = "") -> tf.distribute.Strategy:
  """Returns the strategy registered as `name`."""
  strategy = STRATEGIES.get(name)(tpu)
  logging.info("Strategy %s with %d replica(s)", name,
               strategy.num_replicas_in_sync)
  return strategy


def check_xla(strategy: tf.distribute.Strategy) -> None:
  """Raises UserError where TensorFlow cannot compile the step with XLA.

  XLA on the CPU cannot reach variables on a second logical CPU device of the
  same process ("Trying to access resource ... located in device CPU:1").
  """
  local_cpus = [d for d in strategy.extended.worker_devices
                if "CPU" in d.upper()]
  if len(local_cpus) > 1:
    raise UserError(
        "runtime.jit_compile=True cannot run on several logical CPU devices "
        f"of one process ({len(local_cpus)} here): TensorFlow's XLA cannot "
        "reach variables on the second one. Use --strategy=one_device or "
        "--num_cpu_devices=1 with XLA, or runtime.jit_compile=False")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the one task that writes summaries and checkpoints."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return (not has_chief and resolver.task_type == "worker"
          and resolver.task_id == 0)


def distribute_rows(strategy: tf.distribute.Strategy, rows: np.ndarray):
  """Splits rows [K, ...] evenly over the replicas (K divisible by them)."""
  per_replica = len(rows) // strategy.num_replicas_in_sync

  def value_fn(context: tf.distribute.experimental.ValueContext):
    start = context.replica_id_in_sync_group * per_replica
    return tf.constant(rows[start:start + per_replica])

  return strategy.experimental_distribute_values_from_function(value_fn)


def replicated(strategy: tf.distribute.Strategy, fn: Callable):
  """A tf.function running fn on each replica's rows, outputs gathered.

  Its arguments are distributed values (distribute_rows) or None; its
  outputs, a tensor or a structure of them, are concatenated over the
  replicas in replica order.
  """

  # No autograph: nothing here branches on a tensor, and converting fn's
  # call tree would cost time in every process that samples or evaluates.
  @tf.function(autograph=False)
  def run(*rows):
    outputs = strategy.run(fn, args=rows)
    return tf.nest.map_structure(lambda v: strategy.gather(v, axis=0),
                                 outputs)

  return run


def run_on_rows(strategy: tf.distribute.Strategy, run,
                rows: Sequence[np.ndarray], size: int):
  """`run` (from replicated) on arrays of equal length, padded to `size`.

  `size` must be a multiple of the replica count; padding rows repeat the
  first ones, and the outputs (numpy) are cut back to the real rows.
  """
  count = len(rows[0])
  outputs = run(*(distribute_rows(strategy,
                                  np.resize(a, (size,) + a.shape[1:]))
                  for a in rows))
  return tf.nest.map_structure(lambda v: v.numpy()[:count], outputs)


def map_rows(strategy: tf.distribute.Strategy, fn: Callable,
             *rows: np.ndarray | None):
  """fn(*rows) per replica in batches of rows: numpy outputs, in order.

  fn maps a batch of each of the arrays rows [N, ...] (None ones, an
  unconditional model's labels, are left out) to a tensor or a structure of
  tensors with one row per input row. _MAP_BATCH rows at most go at once
  (rounded up to a multiple of the replicas), which bounds the memory.
  """
  run = replicated(strategy, fn)
  replicas = strategy.num_replicas_in_sync
  batch = math.ceil(_MAP_BATCH / replicas) * replicas
  rows = [a for a in rows if a is not None]
  outputs = []
  for start in range(0, len(rows[0]), batch):
    chunk = [a[start:start + batch] for a in rows]
    size = math.ceil(len(chunk[0]) / replicas) * replicas
    outputs.append(run_on_rows(strategy, run, chunk, size))
  return tf.nest.map_structure(lambda *parts: np.concatenate(parts),
                               *outputs)
