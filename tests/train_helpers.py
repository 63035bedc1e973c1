"""Composing train.py configs and running train.py in a subprocess, for the tests that train."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
# The larger models: their per-model export, training-step and FLOPs checks run under -m slow (vit_l_16
# trains 300M parameters with Adam: ~5 GB in one worker; fcn_resnet101's FLOPs at 520 px take 15 s,
# retinanet_resnet50_fpn's at 800 px 17 s; yolov1 trains 272M parameters, 205M of them in one fully
# connected layer, ~4 GB with Adam); vit_tiny_patch16_224, vit_mini_patch4_32, swin_t, fcn_resnet50 and
# fcos_resnet50_fpn (11 s, the same backbone and pyramid) keep each architecture in the default run.
LARGE_MODELS = {
    "vit_b_16",
    "vit_b_32",
    "vit_l_16",
    "swin_s",
    "swin_b",
    "fcn_resnet101",
    "retinanet_resnet50_fpn",
    "yolov1",
    # VGG's 25088×4096 classifier (120-140 M parameters): vgg11 keeps the family in the default run.
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
}


def slow_if_large(names):
    """pytest params for ``names``, the large models marked slow."""
    import pytest

    return [pytest.param(n, marks=pytest.mark.slow) if n in LARGE_MODELS else n for n in names]


SMALL_DATA = ["data.train_size=64", "data.val_size=32", "data.batch_size=16"]
# A small but real run for the fault and scale tests: ResNet-18 (batch norm, no dropout) at 32 px, 4 steps of
# 16 images per epoch, every step logged, CSV only.
TINY_RUN = [
    "model=resnet18",
    "data.image_size=32",
    "data.train_size=64",
    "data.val_size=16",
    "data.batch_size=16",
    "trainer.log_every_n_steps=1",
    "~logger.tensorboard",
]


def compose_train(tmp_path, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=[f"paths.output_dir={tmp_path}", *SMALL_DATA, *overrides])


def cli_command(*args) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *args]


def run_cli(*args, cwd, env=None, timeout=600):
    return subprocess.run(cli_command(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


class KillAtStep(pl.Callback):
    """SIGKILL the own process after training step ``step``: no cleanup, no final save, at a known point. With
    the tests folder on PYTHONPATH: ``+callbacks.kill._target_=train_helpers.KillAtStep +callbacks.kill.step=7``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
