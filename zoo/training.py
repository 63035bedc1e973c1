"""`train(cfg)`: compose data, model, task, trainer from a Hydra config, fit, and return metrics.

`train.py` is a thin `@hydra.main` over this function, so tests call it on a composed config.

Bad input is refused before training, with the key, what it expects and what came: the composed config
(:func:`check_config`: types and ranges, a model of the data's task, monitors the task logs), then what
needs the built objects (input size, a training batch of one image through batch norm, a checkpoint of
another model or optimizer, a run directory that cannot be written). A run that SIGTERM or SIGINT stops
writes ``last.ckpt``, prints the ``ckpt_path=`` that resumes it and exits with status 128 + the signal
number (:class:`TrainingInterrupted`), so a job scheduler does not take it for a finished run.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from torch.utils.data import default_collate

from zoo.analysis import count_macs, count_parameters
from zoo.callbacks import LastCheckpoint
from zoo.checkpoint import AtomicCheckpointIO, check_writable, load_checkpoint
from zoo.data.base import ClassificationDataModule
from zoo.data.detection import DetectionDataModule
from zoo.data.segmentation import SegmentationDataModule
from zoo.registry import list_models, model_task
from zoo.tasks.base import qualified_name

__all__ = [
    "TrainingInterrupted",
    "build_model",
    "check_config",
    "check_resume_checkpoint",
    "prepare_model",
    "resolve_ckpt_path",
    "train",
]

# Keys of a model config that describe how to run the model, not arguments of its builder.
MODEL_RUN_KEYS = ("input_size", "channels_last", "compile", "bn_momentum")

log = logging.getLogger(__name__)

DATA_TASKS = {
    ClassificationDataModule: "classification",
    DetectionDataModule: "detection",
    SegmentationDataModule: "segmentation",
}
ROLES = {"classification": "classifier", "detection": "detector", "segmentation": "segmentation model"}
# Optimizer settings that must be numbers, and the bound each must exceed (">") or reach (">=").
OPTIMIZER_NUMBERS = {"lr": (">", 0), "weight_decay": (">=", 0), "momentum": (">=", 0), "eps": (">", 0)}
WRITABLE_HINT = ": choose a writable run directory (hydra.run.dir=<dir>, or paths.output_dir=<dir>)"


class TrainingInterrupted(SystemExit):
    """SIGTERM or SIGINT stopped the run; ``code`` is 128 + the signal number (what a shell reports for a
    process a signal ended), ``checkpoint`` the ``last.ckpt`` it wrote (None if it stopped before a step)."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(128 + signum)
        self.signum, self.checkpoint = signum, checkpoint


def check_config(cfg: DictConfig) -> None:
    """ValueError/TypeError for a composed config that would fail (or silently misbehave) later: the seed,
    the optimizer's numbers, the run's length, a model of another task than the data or the task config,
    and a monitored metric the task does not log."""
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an int (or null: a random seed), got {seed!r}")
    for key, (relation, bound) in OPTIMIZER_NUMBERS.items():
        if key in (cfg.get("optimizer") or {}):
            _check_number(f"optimizer.{key}", cfg.optimizer[key], relation, bound)
    trainer = cfg.get("trainer") or {}
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if max_epochs is not None and not (_is_int(max_epochs) and (max_epochs >= 1 or max_epochs == -1)):
        raise ValueError(f"trainer.max_epochs must be a positive int or -1 (train until stopped), got {max_epochs!r}")
    if max_steps is not None and not (_is_int(max_steps) and (max_steps >= 1 or max_steps == -1)):
        raise ValueError(f"trainer.max_steps must be a positive int or -1 (no limit), got {max_steps!r}")
    task_class = _check_tasks_agree(cfg)
    if task_class is not None and hasattr(task_class, "check_metric"):
        if cfg.task.get("monitor") is not None:
            task_class.check_metric(cfg.task.monitor, "task.monitor")
        for name, entry in (cfg.get("callbacks") or {}).items():
            if entry is not None and entry.get("enabled", True) and entry.get("monitor") is not None:
                task_class.check_metric(entry.monitor, f"callbacks.{name}.monitor")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number(key: str, value: Any, relation: str, bound: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number {relation} {bound}, got {value!r}")
    if not (value > bound if relation == ">" else value >= bound):
        raise ValueError(f"{key} must be {relation} {bound}, got {value!r}")


def _check_tasks_agree(cfg: DictConfig) -> type | None:
    """ValueError unless the model, the data and the task config are for one task; the task config's class."""
    name = cfg.model.name
    wanted = model_task(name)  # an unknown name raises here, listing the registered ones
    role = f"model {name} is a {ROLES[wanted]} (task {wanted})"
    data_class = _config_class(cfg.get("data"))
    data_task = next((task for base, task in DATA_TASKS.items() if _subclass(data_class, base)), None)
    if data_task is not None and data_task != wanted:
        models = list_models(task=data_task)
        raise ValueError(
            f"{role}; data {cfg.data._target_} is for {data_task}: pick a {data_task} model "
            f"(zoo.list_models(task={data_task!r}): {', '.join(models[:4])}, ...) or {wanted} data"
        )
    task_class = _config_class(cfg.get("task"))
    trains = getattr(task_class, "task_name", None)
    if trains is not None and trains != wanted:
        raise ValueError(
            f"{role}; task {cfg.task._target_} trains {trains}: leave task= out "
            f"(the model's config picks task={wanted}) or pick a {trains} model"
        )
    return task_class


def _config_class(node: DictConfig | None) -> type | None:
    """The class a config node's ``_target_`` names; None when it names none (a function, or nothing)."""
    target = node.get("_target_") if node is not None else None
    try:
        cls = get_class(target) if target else None
    except Exception:  # a builder function or a wrong path: instantiate reports it
        return None
    return cls if isinstance(cls, type) else None


def _subclass(cls: type | None, base: type) -> bool:
    return cls is not None and issubclass(cls, base)


def _build(node: DictConfig, **kwargs: Any) -> Any:
    """``instantiate``, but a ValueError/TypeError raised by our code reaches the user unwrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, (ValueError, TypeError)):
            raise error.__cause__ from None
        raise


def build_model(model_cfg: DictConfig, **kwargs: Any):
    """Instantiate a ``configs/model/*.yaml`` entry, leaving out the run options (``input_size``)."""
    builder_cfg = OmegaConf.create({k: v for k, v in model_cfg.items() if k not in MODEL_RUN_KEYS})
    return _build(builder_cfg, **kwargs)


def _check_input_size(model: Any, datamodule: Any, model_name: str) -> None:
    minimum = getattr(model, "min_input_size", (1, 1))
    size = getattr(datamodule, "image_size", None)
    if size is not None and size < max(minimum):
        raise ValueError(
            f"{model_name} needs inputs of at least {minimum[0]}×{minimum[1]} pixels, but the data gives "
            f"{size}×{size}: choose a larger data.image_size (the built-in and ImageFolder data accept any size)"
        )


def _check_batches_of_one(task: pl.LightningModule, datamodule: Any, trainer: pl.Trainer, cfg: DictConfig) -> None:
    """ValueError before training if an epoch would hand the model a training batch of one image (the last
    one, when the train set leaves one over, or every one at ``data.batch_size=1``) and a batch norm layer
    would then get a single value per channel, which torch refuses (after an epoch's work, for the last
    batch). zoo refuses the run rather than dropping that image, since the loaders belong to the data
    modules; a batch of one that batch norm accepts (no 1×1 map on the way) trains as before."""
    if trainer.world_size > 1 and cfg.trainer.get("sync_batchnorm", False):
        return  # statistics over the images of every process
    datamodule.setup("fit")
    per_process = -(-len(datamodule.train_set) // trainer.world_size)
    batch_size = datamodule.batch_size
    batches, left_over = -(-per_process // batch_size), per_process % batch_size
    if batch_size == 1:
        where = "every training batch holds 1 image (data.batch_size=1)"
    elif left_over == 1 and _batches_used(trainer, batches) == batches:
        where = (
            f"the last training batch of each epoch holds 1 image ({per_process} images per process, "
            f"data.batch_size={batch_size}, {per_process} % {batch_size} == 1)"
        )
    else:
        return
    layer = _single_value_batch_norm(task, datamodule)
    if layer is not None:
        raise ValueError(
            f"{where}, but {cfg.model.name}'s batch norm {layer[0]} would get a single value per channel there "
            f"(input {tuple(layer[1])}) and cannot compute batch statistics: choose a data.batch_size that does "
            "not leave one image over, or a larger data.image_size"
        )


def _batches_used(trainer: pl.Trainer, batches: int) -> int:
    """Training batches per epoch after ``limit_train_batches`` (which fast_dev_run and overfit_batches set)."""
    limit = trainer.limit_train_batches
    return min(batches, limit) if isinstance(limit, int) else int(batches * limit)


class _SingleValue(Exception):
    pass


def _single_value_batch_norm(task: pl.LightningModule, datamodule: Any) -> tuple[str, torch.Size] | None:
    """(name, input shape) of the first batch norm layer a training forward of one image gives one value per
    channel, or None: one training item through the model in train mode, aborted at that layer; the model's
    running statistics and the global random state are left as they were."""
    model = task.model
    norms = {m: n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    if not norms:
        return None

    def check(module: torch.nn.Module, args: tuple) -> None:
        if args[0].numel() == args[0].shape[1]:
            raise _SingleValue(norms[module], args[0].shape)

    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    hooks = [module.register_forward_pre_hook(check) for module in norms]
    batch = (datamodule.collate_fn or default_collate)([datamodule.train_set[0]])
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.train()(*task.model_inputs(batch))
    except _SingleValue as found:
        return found.args
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    return None


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger mapping, except those with ``enabled: false``;
    TensorBoard only when installed."""
    objects = []
    for name, entry in (group or {}).items():
        if entry is None or not entry.get("enabled", True):
            continue
        entry = OmegaConf.create({key: value for key, value in entry.items() if key != "enabled"})
        if "TensorBoardLogger" in str(entry.get("_target_", "")) and not _tensorboard_available():
            log.info("tensorboard is not installed: logging to CSV only (pip install tensorboard)")
            continue
        if "_target_" not in entry:
            raise ValueError(f"config entry {name!r} has no _target_: {OmegaConf.to_yaml(entry)}")
        objects.append(_build(entry))
    return objects


def _tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None


def resolve_ckpt_path(ckpt_path: str | None) -> str | None:
    """A checkpoint file, or a run directory meaning its ``checkpoints/last.ckpt``; ValueError if absent."""
    if ckpt_path is None:
        return None
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path / "last.ckpt"
    if not path.is_file():
        raise ValueError(
            f"ckpt_path={ckpt_path!r}: expected a checkpoint file or a run directory holding "
            f"checkpoints/last.ckpt, but {str(path)!r} does not exist"
        )
    return str(path)


def check_resume_checkpoint(path: str, task: pl.LightningModule) -> None:
    """ValueError unless ``path`` is a Lightning training checkpoint whose weights fit ``task`` (names and
    shapes) and whose optimizer is the configured one, so a foreign file, another model's run or a resume
    with another optimizer (whose state would not fit) is refused before training starts. The configured
    optimizer's hyperparameters replace the checkpoint's (:mod:`zoo.tasks.base`)."""
    checkpoint = load_checkpoint(path)
    if "state_dict" not in checkpoint or "pytorch-lightning_version" not in checkpoint:
        raise ValueError(
            f"checkpoint {path!r} is not a zoo training checkpoint (a Lightning checkpoint with 'state_dict'); "
            f"its keys are {sorted(map(str, checkpoint))[:8]}"
        )
    saved, expected = checkpoint["state_dict"], task.state_dict()
    missing = sorted(expected.keys() - saved.keys())
    unexpected = sorted(saved.keys() - expected.keys())
    reshaped = [k for k in expected.keys() & saved.keys() if tuple(expected[k].shape) != tuple(saved[k].shape)]
    if missing or unexpected or reshaped:
        raise ValueError(
            f"checkpoint {path!r} does not fit this model: {len(missing)} missing weights {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(reshaped)} of another shape {sorted(reshaped)[:3]}"
            " — was it trained with another model or number of classes?"
        )
    _check_resume_optimizer(path, checkpoint, task)


def _check_resume_optimizer(path: str, checkpoint: dict, task: pl.LightningModule) -> None:
    """The checkpoint names its optimizer class (``optimizer_classes``, zoo.tasks.base); an older one is
    judged by its settings: those the configured optimizer reads must all be there."""
    states = checkpoint.get("optimizer_states") or []
    if not states:
        return
    configured = getattr(task.optimizer_factory, "func", task.optimizer_factory)
    configured_name = qualified_name(configured)
    saved_names = checkpoint.get("optimizer_classes")
    if saved_names:
        if saved_names[0] == configured_name:
            return
        saved = saved_names[0]
    else:
        probe = task.optimizer_factory(params=[torch.nn.Parameter(torch.zeros(1))])
        missing = sorted(probe.defaults.keys() - states[0]["param_groups"][0].keys())
        if not missing:
            return
        saved = f"an optimizer without {configured.__name__}'s {', '.join(missing)}"
    raise ValueError(
        f"checkpoint {path!r} was trained with {saved}, but the config builds {configured_name}: a resume "
        "continues the checkpoint's optimizer state, so choose the optimizer= the run was started with, or start "
        "a new run without ckpt_path"
    )


def prepare_model(
    model: torch.nn.Module, channels_last: bool = False, compile: bool = False, bn_momentum: float | None = None
) -> torch.nn.Module:
    """Apply the run options ``model.channels_last`` (NHWC weights, and a forward pre-hook that hands image
    batches over in NHWC too), ``model.compile`` (``nn.Module.compile``: the module's call is compiled, its
    state_dict keys unchanged) and ``model.bn_momentum`` (every batch norm's running-statistics momentum:
    MobileNetV3's 0.01 averages over ~100 steps, too slow for the weights of a short run from scratch, whose
    eval-mode outputs then lag behind training)."""
    for name, value in (("model.channels_last", channels_last), ("model.compile", compile)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")
    if bn_momentum is not None:
        if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 < bn_momentum <= 1:
            raise ValueError(f"model.bn_momentum must be a number in (0, 1] or null, got {bn_momentum!r}")
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = float(bn_momentum)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_images_to_channels_last)
    if compile:
        model.compile()
    return model


def _images_to_channels_last(module: torch.nn.Module, args: tuple) -> tuple:
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def _write_metrics(metrics: dict[str, Any], output_dir: Path) -> None:
    """``metrics.json`` in the run directory (what sweep reports read), written atomically."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, default=str))
    os.replace(tmp, output_dir / "metrics.json")


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, torch.Tensor) else value


class _StopOnSignals:
    """While active, SIGTERM and SIGINT stop the run between two batches, as Lightning's loops stop for
    SIGTERM (raising SIGTERMException, after which ``LastCheckpoint`` writes ``last.ckpt``): SIGINT is handed
    to Lightning's SIGTERM handler. Outside Lightning's loops (building the data or the model), or at a
    second signal, ``_Stop`` is raised at once. ``signum`` is the first signal that came."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._forwarding = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_signal)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored
                self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame) -> None:
        if self._forwarding:  # Lightning's SIGTERM handler calls the one it found installed: this one
            return
        first = self.signum is None
        if first:
            self.signum = signum
        lightning = signal.getsignal(signal.SIGTERM)
        if not first or lightning == self._on_signal:
            raise _Stop
        if signum != signal.SIGTERM:  # Lightning's handler has run for SIGTERM already: it called this one
            self._forwarding = True
            try:
                lightning(signum, frame)
            finally:
                self._forwarding = False


class _Stop(BaseException):
    """A signal came where Lightning does not stop gracefully; BaseException, as KeyboardInterrupt."""


def train(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = ()) -> dict[str, Any]:
    """Train the configured model; return final metrics, the best value of the task's monitored metric
    (``best``; also ``best_val_acc`` for classification), params and MACs. ``extra_callbacks`` join the
    configured ones (benchmarks and tests use it to observe a run). The config is checked first
    (:func:`check_config`); SIGTERM or SIGINT raise :class:`TrainingInterrupted` (module docstring)."""
    check_config(cfg)
    if cfg.get("print_config"):
        print(OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)
    loggers = _instantiate_group(cfg.get("logger"))
    callbacks = [*_instantiate_group(cfg.get("callbacks")), *extra_callbacks]
    if not loggers:  # it has nothing to log to, and Lightning refuses it without a logger
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    _check_outputs_writable(cfg, callbacks)
    last = next((cb.path for cb in callbacks if isinstance(cb, LastCheckpoint)), None)
    with _StopOnSignals() as stop:
        try:
            return _train(cfg, callbacks, loggers)
        except (SIGTERMException, _Stop):
            if stop.signum is None:
                raise
            raise _interrupted(stop.signum, last) from None


def _check_outputs_writable(cfg: DictConfig, callbacks: list[pl.Callback]) -> None:
    """A run directory or checkpoint folder that cannot be written is refused now, not at the first save."""
    check_writable(cfg.paths.output_dir, "into the run directory", WRITABLE_HINT)
    if cfg.trainer.get("fast_dev_run"):
        return  # writes no checkpoints
    for callback in callbacks:
        if isinstance(callback, LastCheckpoint):
            check_writable(callback.path.parent, hint=WRITABLE_HINT)
        elif isinstance(callback, ModelCheckpoint) and callback.dirpath is not None:
            check_writable(callback.dirpath, hint=WRITABLE_HINT)


def _interrupted(signum: int, last: Path | None) -> TrainingInterrupted:
    """Say how to resume (on stderr, from the main process) and what to exit with; ``last`` is the
    LastCheckpoint's file, written where the run stopped (zoo.callbacks)."""
    last = last.resolve() if last is not None and last.is_file() else None
    name = signal.Signals(signum).name
    if rank_zero_only.rank == 0:
        if last is not None:
            print(f"\nstopped by {name}; resume with    ckpt_path={last}", file=sys.stderr)
        else:
            print(f"\nstopped by {name} before the first training step: nothing to resume", file=sys.stderr)
    return TrainingInterrupted(signum, last)


def _train(cfg: DictConfig, callbacks: list[pl.Callback], loggers: list[Any]) -> dict[str, Any]:
    datamodule = _build(cfg.data)
    model_kwargs = {"num_classes": datamodule.num_classes}
    if model_task(cfg.model.name) == "classification":
        model_kwargs["in_chans"] = datamodule.in_chans
    model = build_model(cfg.model, **model_kwargs)
    _check_input_size(model, datamodule, cfg.model.name)
    size = datamodule.image_size
    macs = count_macs(model, (datamodule.in_chans, size, size))  # before compile: fvcore traces the eager model
    task = _build(
        cfg.task,
        model=model,
        optimizer=_build(cfg.optimizer),
        scheduler=_build(cfg.scheduler) if cfg.get("scheduler") else None,
        num_classes=datamodule.num_classes,
    )
    trainer: pl.Trainer = _build(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    _check_batches_of_one(task, datamodule, trainer, cfg)  # on the eager model, before the run options
    run_options = {key: cfg.model[key] for key in ("channels_last", "compile", "bn_momentum") if key in cfg.model}
    task.model = model = prepare_model(model, **run_options)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"))
    if ckpt_path is not None:
        check_resume_checkpoint(ckpt_path, task)
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)

    metrics = {key: _to_float(value) for key, value in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_score if checkpoint is not None else None
    metrics["monitor"] = task.monitor
    metrics["best"] = _to_float(best) if best is not None else metrics.get(task.monitor)
    if task.monitor == "val/acc":
        metrics["best_val_acc"] = metrics["best"]
    metrics["params"] = count_parameters(model)
    metrics["macs"] = macs
    metrics["image_size"] = size
    metrics["output_dir"] = str(Path(cfg.paths.output_dir).resolve())
    metrics["model"] = cfg.model.name
    if trainer.is_global_zero:
        _write_metrics(metrics, Path(metrics["output_dir"]))
        last = next((cb.path for cb in trainer.callbacks if isinstance(cb, LastCheckpoint)), None)
        _print_summary(cfg, metrics, checkpoint, last if last is not None and last.is_file() else None)
    return metrics


def _print_summary(cfg: DictConfig, metrics: dict[str, Any], checkpoint, last_path: Path | None) -> None:
    best, monitor = metrics["best"], metrics["monitor"]
    lines = [
        "",
        f"model          {cfg.model.name}",
        f"params         {metrics['params']:,}",
        f"MACs           {metrics['macs'] / 1e6:,.1f} M per {metrics['image_size']}px image "
        f"(fvcore: 1 fused multiply-add = 1 MAC; FLOPs ≈ 2 × MACs)",
        f"best {monitor} ".ljust(15) + (f"{best:.4f}" if best is not None else "n/a"),
        f"run directory  {metrics['output_dir']}",
    ]
    if checkpoint is not None and checkpoint.best_model_path:
        lines.append(f"checkpoints    best: {checkpoint.best_model_path}")
    if last_path is not None:
        lines.append(f"resume with    ckpt_path={metrics['output_dir']}   (its {last_path.name})")
    print("\n".join(lines))
