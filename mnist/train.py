"""Plain PyTorch training as a generator of progress events, and evaluation."""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig
from .constants import NUM_CLASSES
from .data import MnistData, augment_batch, load_mnist, normalize
from .device import dtype_name, resolve_device, resolve_precision
from .errors import ConfigError
from .insight import EpochInsight, compute_epoch_insight, panel_indices
from .models import ARCHS, build_model, ready_for_inference
from .records import RunMetrics

EVAL_BATCH = 250  # images per evaluation forward; 1000 cost ~250 MB more peak memory (bench/memory.py)


@dataclass
class StepEvent:
    """Every config.log_every steps: mean loss over those steps."""

    epoch: int  # 1-based
    step: int  # global step, 1-based
    total_steps: int
    loss: float
    lr: float
    images_per_sec: float
    elapsed: float  # seconds of training so far
    eta: float  # seconds left, estimated
    kind: str = "step"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EpochEvent:
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float  # on the (augmented) training batches as they were seen
    test_loss: float
    test_accuracy: float
    elapsed: float
    eta: float
    kind: str = "epoch"
    # What the model looked like inside after this epoch; not in history.json (save_run writes it apart).
    insight: EpochInsight | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "insight"}


def _event_from_dict(cls, values) -> StepEvent | EpochEvent | None:
    """One saved event dict as its dataclass; None when it lacks a field or holds a non-number."""
    names = [f.name for f in fields(cls) if f.name not in ("kind", "insight")]
    if not isinstance(values, dict) or not all(name in values for name in names):
        return None
    picked = {name: values[name] for name in names}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in picked.values()):
        return None
    return cls(**picked)


@dataclass
class History:
    """A run's curves: the step events and epoch events, in order (history.json)."""

    steps: list[StepEvent] = field(default_factory=list)
    epochs: list[EpochEvent] = field(default_factory=list)

    def add(self, event: StepEvent | EpochEvent) -> None:
        (self.steps if isinstance(event, StepEvent) else self.epochs).append(event)

    def to_dict(self) -> dict:
        return {"steps": [e.to_dict() for e in self.steps], "epochs": [e.to_dict() for e in self.epochs]}

    @classmethod
    def of_events(cls, events) -> History:
        history = cls()
        for event in events:
            history.add(event)
        return history

    @classmethod
    def from_dict(cls, values) -> History:
        """Parse history.json's layout; entries that are not complete events are dropped (a damaged file
        shows the curves it still has, never an error)."""
        if not isinstance(values, dict):
            return cls()
        parsed = {}
        for key, kind in (("steps", StepEvent), ("epochs", EpochEvent)):
            entries = values.get(key)
            events = [_event_from_dict(kind, e) for e in entries] if isinstance(entries, list) else []
            parsed[key] = [e for e in events if e is not None]
        return cls(**parsed)


@dataclass
class DoneEvent:
    """Last event: the model as trained so far, even when stopped early."""

    model: nn.Module = field(repr=False)
    config: TrainConfig
    stopped: bool
    test_accuracy: float
    test_loss: float
    train_seconds: float
    steps_done: int
    epochs_done: int
    history: History = field(repr=False)
    precision: str = "float32"  # what training's autocast computed in: float32, bfloat16 or float16
    kind: str = "done"

    def metrics(self) -> RunMetrics:
        return RunMetrics(
            test_accuracy=self.test_accuracy,
            test_loss=self.test_loss,
            train_seconds=self.train_seconds,
            steps_done=self.steps_done,
            epochs_done=self.epochs_done,
            stopped=self.stopped,
            precision=self.precision,
        )


Event = StepEvent | EpochEvent | DoneEvent


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    per_class_accuracy: list[float]
    confusion: torch.Tensor  # (10, 10) int64, rows = true label, columns = prediction
    predictions: torch.Tensor  # (N,) int64
    confidences: torch.Tensor  # (N,) float, probability of the predicted class
    labels: torch.Tensor  # (N,) int64

    def misclassified(self) -> list[dict]:
        """Wrong test images: index, true label, prediction, confidence; most confident first."""
        wrong = (self.predictions != self.labels).nonzero().flatten()
        order = self.confidences[wrong].argsort(descending=True)
        return [
            {
                "index": int(i),
                "label": int(self.labels[i]),
                "predicted": int(self.predictions[i]),
                "confidence": float(self.confidences[i]),
            }
            for i in wrong[order]
        ]


def build_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    kind, lr, wd = config.optimizer, config.lr, config.weight_decay
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=wd)
    betas = (config.beta1, config.beta2)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
    if kind == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    raise ConfigError(f"unknown optimizer {kind!r}")


def build_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    """Returns (scheduler or None, steps_per_call): onecycle and cosine step per batch, step per epoch."""
    total = config.epochs * steps_per_epoch
    if config.scheduler == "none":
        return None, 0
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma), steps_per_epoch
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total), 1
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total), 1
    raise ConfigError(f"unknown scheduler {config.scheduler!r}")


class WeightAverage:
    """An exponential moving average of a model's weights and batch-norm statistics: a copy of the model.

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so the average of a short run
    is not dominated by the initial weights. Integer buffers (BN's batch counters) are copied.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.decay = decay
        self.updates = 0
        pairs = list(zip(self.model.state_dict().values(), model.state_dict().values(), strict=True))
        self.floats = [(a, m) for a, m in pairs if a.is_floating_point()]
        self.others = [(a, m) for a, m in pairs if not a.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model's current weights (call after each optimizer step)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged, current = zip(*self.floats, strict=True)
        torch._foreach_lerp_(list(averaged), list(current), 1 - decay)
        for a, m in self.others:
            a.copy_(m)


def _seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device=None) -> EvalResult:
    """Accuracy, loss, per-class accuracy, confusion matrix and per-image predictions.

    images: (N, 28, 28) uint8 or already-normalised (N, 1, 28, 28) float.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds, confs, loss_sum = [], [], 0.0
    try:
        for start in range(0, len(images), EVAL_BATCH):
            chunk = images[start : start + EVAL_BATCH].to(device)
            x = normalize(chunk) if chunk.dtype == torch.uint8 else chunk
            logits = model(x).float()
            y = labels[start : start + EVAL_BATCH].to(device)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            prob, pred = logits.softmax(1).max(1)
            preds.append(pred.cpu())
            confs.append(prob.cpu())
    finally:
        model.train(was_training)
    predictions, confidences = torch.cat(preds), torch.cat(confs)
    labels = labels.cpu().long()
    confusion = torch.bincount(labels * NUM_CLASSES + predictions, minlength=NUM_CLASSES**2).reshape(
        NUM_CLASSES, NUM_CLASSES
    )
    per_class = confusion.diag().float() / confusion.sum(1).clamp(min=1).float()
    return EvalResult(
        accuracy=float((predictions == labels).float().mean()),
        loss=loss_sum / len(labels),
        per_class_accuracy=per_class.tolist(),
        confusion=confusion,
        predictions=predictions,
        confidences=confidences,
        labels=labels,
    )


def train(
    config: TrainConfig,
    data: MnistData | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Event]:
    """Train a model, yielding StepEvents, an EpochEvent per epoch and finally a DoneEvent.

    Setting `stop` ends training after the current step; the DoneEvent still carries the model
    trained so far, evaluated on the test set. Same seed, same results on CPU.
    """
    data = data if data is not None else load_mnist()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    gen = _seeded_generator(config.seed, device)

    # The whole set goes to the device once, as the uint8 it is stored in (on a CPU: no copy at all, the
    # process's one data set); a batch is an index, normalised as it is taken. A normalised float copy
    # cost 188 MB per run plus 376 MB while it was made: a 1 GiB process was OOM-killed (issue 22).
    n_train = min(config.train_limit or len(data.train_images), len(data.train_images))  # a limit above N = all
    train_x = data.train_images[:n_train].to(device)  # (N, 28, 28) uint8
    train_y = data.train_labels[:n_train].to(device)
    test_x = data.test_images.to(device)  # uint8: evaluate() normalises chunk by chunk
    test_y = data.test_labels.to(device)
    panel = panel_indices(len(test_x))  # the fixed test digits whose predictions each epoch's insight keeps
    if config.batch_size > n_train:
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {n_train} training images")

    model = build_model(config.arch).to(device)
    memory_format = torch.channels_last if ARCHS[config.arch].channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = build_optimizer(model.parameters(), config)
    average = WeightAverage(model, config.ema) if config.ema > 0 else None
    # Mixed precision: float16 with a scaled loss on CUDA (unmeasured here: no GPU), bfloat16 on a CPU
    # (its float32 range needs no scaling); weights, optimizer state and evaluation stay float32.
    dtype = resolve_precision(config.precision, device)
    mixed = dtype != torch.float32
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    kept = average.model if average is not None else model  # what is evaluated and saved
    steps_per_epoch = n_train // config.batch_size  # drop the ragged last batch: BN dislikes tiny ones
    total_steps = config.epochs * steps_per_epoch
    scheduler, sched_every = build_scheduler(optimizer, config, steps_per_epoch)

    history = History()
    final: EvalResult | None = None  # evaluation of the model as it is now
    step = 0
    train_time = 0.0
    stopped = False
    epochs_done = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(n_train, generator=gen, device=device)
        loss_sum = torch.zeros((), device=device)  # accumulated on device: no per-step host sync
        window_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen, window_steps = 0, 0
        t_window = time.perf_counter()
        for i in range(steps_per_epoch):
            if stop is not None and stop.is_set():
                stopped = True
                break
            t0 = time.perf_counter()
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            x, y = normalize(train_x[idx]), train_y[idx]  # the same values as slicing a normalised copy
            if config.augment:
                x = augment_batch(x, gen)
            with torch.autocast(device.type, dtype=dtype, enabled=mixed):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # disabled (CPU): the loss itself, and scaler.step is optimizer.step
            scaler.step(optimizer)
            scaler.update()
            if average is not None:
                average.update()
            step_lr = optimizer.param_groups[0]["lr"]  # the rate this step used, before any decay
            step += 1
            if scheduler is not None and step % sched_every == 0:
                scheduler.step()
            detached = loss.detach()
            loss_sum += detached
            window_loss += detached
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            window_steps += 1
            train_time += time.perf_counter() - t0
            if step % config.log_every == 0 or i == steps_per_epoch - 1:
                now = time.perf_counter()
                event = StepEvent(
                    epoch=epoch,
                    step=step,
                    total_steps=total_steps,
                    loss=float(window_loss) / window_steps,
                    lr=step_lr,
                    images_per_sec=window_steps * config.batch_size / max(now - t_window, 1e-9),
                    elapsed=train_time,
                    eta=train_time / step * (total_steps - step),
                )
                history.add(event)
                yield event
                window_loss.zero_()
                window_steps = 0
                t_window = time.perf_counter()
        if seen == 0:
            break
        final = result = evaluate(kept, test_x, test_y)
        epochs_done = epoch if not stopped else epochs_done
        event = EpochEvent(
            epoch=epoch,
            epochs=config.epochs,
            train_loss=float(loss_sum) / max(1, math.ceil(seen / config.batch_size)),
            train_accuracy=float(correct) / seen,
            test_loss=result.loss,
            test_accuracy=result.accuracy,
            elapsed=train_time,
            eta=train_time / step * (total_steps - step),
            insight=compute_epoch_insight(
                kept, epoch, result.confusion, normalize(test_x[panel]), panel, test_y[panel]
            ),
        )
        history.add(event)
        yield event
        if stopped:
            break

    ready_for_inference(kept)  # the layout a loaded checkpoint has, so the two predict alike
    if final is None:  # stopped before the first step: nothing evaluated yet
        final = evaluate(kept, test_x, test_y)
    yield DoneEvent(
        model=kept,
        config=config,
        stopped=stopped,
        test_accuracy=final.accuracy,
        test_loss=final.loss,
        train_seconds=train_time,
        steps_done=step,
        epochs_done=epochs_done,
        history=history,
        precision=dtype_name(dtype),
    )


def run_training(config: TrainConfig, data: MnistData | None = None) -> DoneEvent:
    """Train to the end, ignoring progress; the DoneEvent."""
    for event in train(config, data):
        if isinstance(event, DoneEvent):
            return event
    raise RuntimeError("training ended without a result")  # unreachable: train always ends with one
