"""Write test/fixtures/corenet/training_logs.txt: a short training log printed by CoreNet's own logger
and metric classes (corenet.utils.logger, corenet.metrics.stats.Statistics), in the text format of
CoreNet's default trainer and of Apple's published OpenELM training_logs.txt.

The losses are made up (a smooth decay); what the fixture pins down is the text format
`openelm report --against` reads: the colour codes, the "Training epoch" / "Validation epoch"
sections, the iteration summaries with the loss dictionary of the z-loss cross-entropy, the list of
per-parameter-group learning rates, and the validation epoch summary.

Needs torch and a CoreNet checkout (https://github.com/apple/corenet; the fixture was made at commit
1aa3acd17b7b, 2025-05-09) on PYTHONPATH:
    PYTHONPATH=<corenet checkout> .venv/bin/python tools/corenet_log_fixture.py
"""

import argparse
import contextlib
import io
import math
import pathlib
import time

import torch

import corenet.metrics.misc  # noqa: E402,F401  (registers the "loss" metric)
from corenet.metrics import METRICS_REGISTRY  # noqa: E402
from corenet.metrics.stats import Statistics  # noqa: E402
from corenet.utils import logger  # noqa: E402

# The registry would import every metric module (COCO, segmentation, ...), which needs packages this
# fixture never uses; "loss" is registered above, so the lazy import is switched off.
METRICS_REGISTRY._modules_loaded = True

OUT = pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures" / "corenet" / "training_logs.txt"

MAX_ITERATIONS = 2000
LOG_FREQ = 100
VAL_EVERY = 1000
WARMUP = 100
MAX_LR, MIN_LR, INIT_LR = 5.3e-3, 5.3e-4, 1e-6


def lr_at(it: int) -> float:
    # CoreNet's cosine schedule with linear warm-up (corenet/optims/scheduler/cosine.py).
    if it < WARMUP:
        return INIT_LR + it * (MAX_LR - INIT_LR) / WARMUP
    t = it - WARMUP
    return MIN_LR + 0.5 * (MAX_LR - MIN_LR) * (1 + math.cos(math.pi * t / (MAX_ITERATIONS - WARMUP + 1)))


def loss_at(it: int) -> dict:
    ce = 3.0 + 7.4 * math.exp(-it / 150.0) + 0.05 * math.sin(it / 7.0)
    z = 1e-4 * (8.0 + 30.0 * math.exp(-it / 300.0)) ** 2
    return {"total_loss": torch.tensor(ce + z), "ce_loss": torch.tensor(ce), "z_loss": torch.tensor(z)}


def main() -> None:
    opts = argparse.Namespace()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        logger.info("Training epoch 0")
        stats = Statistics(opts=opts, metric_names=["loss"], is_master_node=True)
        start = time.time()
        iterations = 0
        for batch_id in range(MAX_ITERATIONS):
            lr = lr_at(iterations)
            loss = loss_at(iterations)
            iterations += 1
            stats.update(pred_label=None, target_label=None, extras={"loss": loss}, batch_time=0.0012, batch_size=16)
            if batch_id % LOG_FREQ == 0:
                stats.iter_summary(epoch=0, n_processed_samples=iterations, total_samples=MAX_ITERATIONS,
                                   elapsed_time=start, learning_rate=[lr, lr])
            if iterations % VAL_EVERY == 0:
                logger.log(f"Checkpoints saved after {iterations} updates at: results/train")
                logger.double_dash_line()
                logger.info("Validation epoch 0")
                val = Statistics(opts=opts, metric_names=["loss"], is_master_node=True)
                vstart = time.time()
                for vb in range(4):
                    v = loss_at(iterations + 40)
                    val.update(pred_label=None, target_label=None, extras={"loss": v}, batch_size=16)
                    val.iter_summary(epoch=0, n_processed_samples=(vb + 1) * 16, total_samples=64,
                                     elapsed_time=vstart, learning_rate=[lr, lr])
                val.epoch_summary(epoch=0, stage="validation", epoch_time=time.time() - vstart)
        stats.epoch_summary(epoch=0, stage="training", epoch_time=time.time() - start)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(buf.getvalue())
    print(f"wrote {OUT} ({len(buf.getvalue())} bytes)")


if __name__ == "__main__":
    main()
