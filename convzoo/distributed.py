"""Training on several devices or machines: `convzoo train --distribute mirrored|multiworker`.

mirrored is tf.distribute.MirroredStrategy over this machine's GPUs, or its CPU split into logical
devices; multiworker is tf.distribute.MultiWorkerMirroredStrategy over the cluster in $TF_CONFIG.
TF_CONFIG is read and checked here without TensorFlow, so a bad one fails before training starts.
"""
import collections
import contextlib
import json
import os
import shutil

from convzoo.errors import ConvzooError

KINDS = ("mirrored", "multiworker")
CPU_DEVICES = 2  # --distribute mirrored without a GPU: the CPU split into this many logical devices
TASK_TYPES = ("chief", "worker")  # MultiWorkerMirroredStrategy's tasks; no parameter servers

Task = collections.namedtuple("Task", "type index workers chief")

TF_CONFIG_HELP = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                  '"task": {"type": "worker", "index": 0}}\'')


def parse_tf_config(kind, devices=None):
    """This process's Task for --distribute multiworker (from $TF_CONFIG), else None; ConvzooError
    for a missing or malformed TF_CONFIG and for --devices without --distribute mirrored."""
    if devices is not None and kind != "mirrored":
        raise ConvzooError("--devices applies to --distribute mirrored only "
                           "(a multi-worker run uses each worker's GPUs, or its CPU)")
    if kind != "multiworker":
        return None
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        raise ConvzooError(f"--distribute multiworker needs the TF_CONFIG environment variable on every "
                           f"worker, e.g. {TF_CONFIG_HELP}")
    try:
        cfg = json.loads(raw)
    except ValueError as e:
        raise ConvzooError(f"TF_CONFIG is not valid JSON ({e}); expected e.g. {TF_CONFIG_HELP}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict) \
            or not isinstance(cfg.get("task"), dict):
        raise ConvzooError(f"TF_CONFIG needs a \"cluster\" and a \"task\" object, e.g. {TF_CONFIG_HELP}")
    cluster, task = cfg["cluster"], cfg["task"]
    for name, hosts in cluster.items():
        if name not in TASK_TYPES:
            raise ConvzooError(f"TF_CONFIG cluster has '{name}' tasks; multi-worker training runs "
                               f"{' and '.join(TASK_TYPES)} tasks only")
        if not isinstance(hosts, list) or not hosts or not all(_is_address(h) for h in hosts):
            raise ConvzooError(f"TF_CONFIG cluster \"{name}\" must be a list of \"host:port\" strings")
    if len(cluster.get("chief", [])) > 1:
        raise ConvzooError("TF_CONFIG cluster may have one chief only")
    kind_, index = task.get("type"), task.get("index")
    if kind_ not in cluster:
        raise ConvzooError(f"TF_CONFIG task type '{kind_}' is not in its cluster "
                           f"({', '.join(cluster) or 'empty'})")
    if type(index) is not int or not 0 <= index < len(cluster[kind_]):  # noqa: E721 -- bool is an int
        raise ConvzooError(f"TF_CONFIG task index {index!r} is not 0-{len(cluster[kind_]) - 1} "
                           f"(the {kind_} list has {len(cluster[kind_])})")
    # the chief is the "chief" task, or worker 0 when there is none (TensorFlow's rule)
    chief = kind_ == "chief" or (index == 0 and "chief" not in cluster)
    return Task(kind_, index, sum(len(h) for h in cluster.values()), chief)


def _is_address(text):
    host, _, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def worker_copy(output, task):
    """Where a non-chief worker writes its copy of the run: workertemp_N beside --output, as the
    TensorFlow multi-worker guide does, so that saving (which may run collective ops) runs on every
    worker but only the chief's files land at --output."""
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f"workertemp_{task.index}", name)


def remove_worker_copy(output, run_dir):
    """A non-chief worker's copy, once the run has finished."""
    if os.path.isfile(output):
        os.remove(output)
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(output))  # only if no other run's copy is in it
    except OSError:
        pass


def strategy(kind, devices=None):
    """The tf.distribute strategy for --distribute, or None. Call it before anything sets up
    TensorFlow's devices: the logical CPUs and the cluster can be configured only once."""
    if kind is None:
        return None
    import tensorflow as tf

    if kind == "multiworker":
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as e:
            raise ConvzooError(f"cannot start multi-worker training ({_first_line(e)}); "
                               "run convzoo train in a fresh process on every worker") from None
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        n = devices or len(gpus)
        if n > len(gpus):
            raise ConvzooError(f"--devices {n}: this machine has {len(gpus)} GPU(s)")
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(n)])
    n = devices or CPU_DEVICES
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # devices already set up in this process: use them if there are enough
        have = len(tf.config.list_logical_devices("CPU"))
        if have < n:
            raise ConvzooError(f"cannot split the CPU into {n} devices: TensorFlow already set up "
                               f"{have} in this process; run convzoo train in a fresh process") from None
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])


def _first_line(e):
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def describe(strat, kind):
    """What the checkpoint metadata and config.json record about the strategy (None without one)."""
    if strat is None:
        return None
    info = {"strategy": kind, "replicas": int(strat.num_replicas_in_sync), "workers": 1}
    if kind == "multiworker":
        info["workers"] = parse_tf_config(kind).workers
    else:
        info["devices"] = [d.rsplit("device:", 1)[-1] for d in strat.extended.worker_devices]
    return info


def summary(info, batch_size):
    """One log line: the strategy, replicas and how the global batch is split."""
    where = (f"{info['workers']} workers" if info["strategy"] == "multiworker"
             else ", ".join(info["devices"]))
    return (f"{info['strategy']}: {info['replicas']} replicas ({where}); global batch {batch_size}, "
            f"about {-(-batch_size // info['replicas'])} per replica")


def datasets(strat, run, train_ds, val_ds):
    """The custom loop's (train_batches, val_batches) under `strat`, each worker taking its share of
    every global batch; a multi-worker run first takes the chief's state. train_ds: a dataset, or
    a function of the epoch giving that epoch's (S1's batches, in its own order). (Keras 3.15's fit, which
    convzoo no longer runs, failed here: keras-team/keras#19246, #20585.)"""
    import tensorflow as tf

    if run.p.distribute == "multiworker":
        _start_from_chief(strat, run)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def spread(ds):
        return strat.experimental_distribute_dataset(ds.with_options(options))

    val = spread(val_ds)
    if callable(train_ds):
        return (lambda epoch: spread(train_ds(epoch))), (lambda: val)
    train = spread(train_ds)
    return (lambda epoch: train), (lambda: val)


@contextlib.contextmanager
def worker_errors(run):
    """A worker that stopped or cannot be reached, as one line."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError) as e:
        raise ConvzooError(f"multi-worker training stopped after epoch {run.done}: another worker "
                           f"stopped or cannot be reached ({_first_line(e)}); the last good checkpoint "
                           "is kept: start every worker again with --resume") from None


def _start_from_chief(strat, run):
    """Every worker takes the chief's weights, optimizer state and history. Fresh runs start equal
    anyway; after --resume the workers may hold different epochs (a run stopped between one
    worker's save and another's), and the chief's files are the ones that count."""
    import numpy as np

    chief = not run.p.non_chief
    done = int(_from_chief(strat, chief, np.array([run.done], np.float64))[0])
    keys = sorted(run.history)
    mine = np.array([[np.nan if v is None else v for v in run.history[k]] for k in keys], np.float64)
    table = _from_chief(strat, chief, mine if chief else np.zeros((len(keys), done))) if done else mine[:, :0]
    weights = [_from_chief(strat, chief, w) for w in run.model.get_weights()]
    opt = [_from_chief(strat, chief, np.asarray(v)) for v in run.optimizer.variables]
    if chief:
        return
    if done != run.done:
        run.log(f"this worker held epoch {run.done}, the chief epoch {done}: continuing from the chief's")
    run.model.set_weights(weights)
    for var, value in zip(run.optimizer.variables, opt):
        var.assign(value)
    run.history = {k: [None if np.isnan(v) else (int(v) if k == "epoch" else float(v)) for v in row]
                   for k, row in zip(keys, table)}


def _from_chief(strat, chief, array):
    """The chief's `array` on every worker (the others send zeros of the same shape): a SUM over
    the replicas in which only the chief's first replica takes part."""
    import numpy as np
    import tensorflow as tf

    kind = array.dtype if array.dtype == np.float32 else np.float64
    sent = []

    def part(ctx):
        send = chief and not sent  # once per worker, however many local devices it has
        sent.append(1)
        return tf.constant(array.astype(kind) if send else np.zeros(array.shape, kind))

    total = strat.reduce("SUM", strat.experimental_distribute_values_from_function(part), axis=None)
    return total.numpy().astype(array.dtype)
