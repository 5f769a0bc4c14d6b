"""Where a run's ops go: one device, or replicas under a `tf.distribute` strategy.

Importing this module sets two process-wide GPU settings that sharecore's numbers depend on:

* memory growth on every GPU: without it the first GPU op reserves nearly all memory of every
  visible GPU, so a second server process, or a notebook beside the app, cannot use them;
* TensorFloat-32 off: on Ampere and newer GPUs TensorFlow runs float32 matmuls and convolutions
  with 10-bit mantissas by default (a relative error near 1e-3), while sharecore's records (tied
  divergence exactly 0, per-use contributions that sum to the gradient within 1e-6) and its
  tests assume float32. `SHARECORE_TF32=1` keeps TensorFlow's default.

Both must happen before TensorFlow initialises its GPUs; when they cannot (TensorFlow was
already in use), the settings in force stay and `gpu_settings()` says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sharecore.core import settings
from sharecore.core.config import TrainConfig, check_batch_split
from sharecore.core.runcheck import check_distribute
from sharecore.nn.tfimport import tf


@dataclass(frozen=True)
class GpuSettings:
    """What `configure_gpus` managed to set."""

    gpus: tuple[str, ...]  # physical GPU names
    memory_growth: bool  # on for every GPU (True when there is none)
    tf32: bool  # TensorFloat-32 in use for float32 matmuls and convolutions


_SETTINGS: GpuSettings | None = None


def configure_gpus() -> GpuSettings:
    """Turns memory growth on and TensorFloat-32 off (see the module docstring); safe to call again."""
    global _SETTINGS
    if _SETTINGS is not None:
        return _SETTINGS
    gpus = tf.config.list_physical_devices("GPU")
    growth = True
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):  # initialised before sharecore was imported, or split into logical GPUs
            growth = growth and bool(tf.config.experimental.get_memory_growth(gpu))
    if not settings.value_or_default("SHARECORE_TF32"):
        tf.config.experimental.enable_tensor_float_32_execution(False)
    _SETTINGS = GpuSettings(
        tuple(g.name for g in gpus), growth, bool(tf.config.experimental.tensor_float_32_execution_enabled())
    )
    return _SETTINGS


configure_gpus()


def resolve_device(device: str) -> str:
    """Maps 'cpu' | 'gpu' | 'auto' to a TensorFlow device name.

    Raises:
        ValueError: if 'gpu' is asked for and TensorFlow sees none.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if device == "gpu":
        if not gpus:
            raise ValueError(
                "device 'gpu' was requested, but TensorFlow sees no GPU on this machine. Use "
                "device 'cpu' (or 'auto', which picks a GPU when there is one). Received: device='gpu'"
            )
        return gpus[0].name
    if device == "auto" and gpus:
        return gpus[0].name
    if device not in ("auto", "cpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu'. Received: device={device!r}")
    return tf.config.list_logical_devices("CPU")[0].name


# ----------------------------------------------------------------------------- replicas
def use_logical_cpus(n: int) -> bool:
    """Splits the CPU into `n` logical devices, so that a CPU host can run `n` replicas.

    TensorFlow accepts this only before it initialises; call it first thing (the CLI does).
    Returns whether TensorFlow now has at least `n` CPU devices.
    """
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) >= n:
        return True
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # already initialised
        return len(tf.config.list_logical_devices("CPU")) >= n
    return True


_STRATEGIES: dict[tuple, tf.distribute.Strategy] = {}
_STRATEGIES_LOCK = threading.Lock()


def make_strategy(config: TrainConfig) -> tf.distribute.Strategy | None:
    """The strategy `config.distribute` asks for, or None for a single device.

    'mirrored' replicates over `config.replicas` devices of this machine (0: all of them): GPUs
    when `config.device` allows one and there are any, else logical CPUs. 'multi-worker' runs on
    the cluster that the TF_CONFIG environment variable describes, with this machine's devices.
    One strategy object per setting is made and kept, so that compiled trainers made under it
    can be reused (a trainer's variables belong to the strategy they were made in).

    Raises:
        ValueError: for too few devices, a batch that does not split evenly over the replicas,
            a missing TF_CONFIG, or a multi-worker strategy asked for after TensorFlow started.
    """
    if config.distribute == "none":
        return None
    # A multi-worker strategy takes every GPU of each worker, or its CPU, and must be made before
    # TensorFlow starts: listing devices would start it.
    devices = _replica_devices(config) if config.distribute == "mirrored" else ()
    key = (config.distribute, devices)
    with _STRATEGIES_LOCK:
        if key not in _STRATEGIES:
            _STRATEGIES[key] = _new_strategy(config, devices)
        strategy = _STRATEGIES[key]
    check_batch_split(config.batch_size, strategy.num_replicas_in_sync)
    return strategy


def _replica_devices(config: TrainConfig) -> tuple[str, ...]:
    # Physical devices first: listing logical ones starts TensorFlow, after which the CPU cannot be split
    # (so device 'cpu' on a GPU host never lists the GPUs).
    has_gpu = config.device != "cpu" and bool(tf.config.list_physical_devices("GPU"))
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")] if has_gpu else []
    if config.device == "gpu" and not gpus:
        resolve_device("gpu")  # raises the 'no GPU' message
    if gpus:
        if config.replicas > len(gpus):
            raise ValueError(
                f"train.replicas is {config.replicas}, but TensorFlow sees {len(gpus)} GPU(s). Use at most "
                f"{len(gpus)}, or 0 for all of them. Received: replicas={config.replicas}"
            )
        return tuple(gpus[: config.replicas or None])
    n = config.replicas or len(tf.config.list_logical_devices("CPU"))
    if not use_logical_cpus(n):
        have = len(tf.config.list_logical_devices("CPU"))
        raise ValueError(
            f"train.replicas is {n} on the CPU, which needs {n} logical CPU devices, but TensorFlow started "
            f"with {have}. Call sharecore.nn.devices.use_logical_cpus({n}) before anything else uses TensorFlow "
            f"(`python -m sharecore train --distribute mirrored --replicas {n}` does). Received: replicas={n}"
        )
    return tuple(d.name for d in tf.config.list_logical_devices("CPU")[:n])


def _new_strategy(config: TrainConfig, devices: tuple[str, ...]) -> tf.distribute.Strategy:
    if config.distribute == "mirrored":
        # The collective all-reduce of one machine; the default (NCCL) needs GPUs.
        cross = tf.distribute.ReductionToOneDevice() if "GPU" not in devices[0].upper() else None
        return tf.distribute.MirroredStrategy(list(devices), cross_device_ops=cross)
    check_distribute(config)  # TF_CONFIG is set
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"could not start the multi-worker strategy: {err}. It must be made before anything else uses "
            f"TensorFlow in this process, and TF_CONFIG must be valid JSON with a 'cluster' and a 'task'."
        ) from None


def describe(strategy: tf.distribute.Strategy | None, device: str) -> str:
    """Where a run ran, for results and messages: '/CPU:0' or 'MirroredStrategy over 2 replicas (...)'."""
    if strategy is None:
        return device
    devices = ", ".join(d.split("device:")[-1] for d in strategy.extended.worker_devices)
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):  # its class is CollectiveAllReduceStrategy
        name = "MultiWorkerMirroredStrategy"
        resolver = strategy.cluster_resolver
        devices = f"{resolver.task_type} {resolver.task_id}: {devices}"  # this worker's devices
    return f"{name} over {strategy.num_replicas_in_sync} replicas ({devices})"
