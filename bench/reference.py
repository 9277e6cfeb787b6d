"""The baseline: the PyTorch tutorial pipeline this project grew from.

torchvision `datasets.MNIST` with ToTensor + Normalize, a DataLoader (batch 100, shuffled, one
worker), the `lenet-dropout` network (built by mnist.models so it is the same network), Adam at
1e-3, cross-entropy on logits, and a test evaluation through its own DataLoader (batch 1000) after
every epoch. Only the training loop is timed (data loading included, as the tutorial pays for it);
evaluation is not.

    python bench/reference.py [--epochs 10] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from bench import benchlib
from bench.benchlib import Figure
from mnist.models import build_model

BATCH_SIZE = 100
TEST_BATCH_SIZE = 1000
NUM_WORKERS = 1
LR = 1e-3
ARCH = "lenet-dropout"
# The tutorials' normalisation constants (the same as mnist.constants).
MEAN, STD = 0.1307, 0.3081


def make_loaders(root: Path, *, seed: int = 0, train_limit: int = 0) -> tuple[DataLoader, DataLoader]:
    """The tutorial's train and test loaders over root/MNIST/raw."""
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    train_set = datasets.MNIST(root=str(root), train=True, download=False, transform=transform)
    test_set = datasets.MNIST(root=str(root), train=False, download=False, transform=transform)
    if train_limit:
        train_set = Subset(train_set, range(train_limit))
    gen = torch.Generator()
    gen.manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, num_workers=NUM_WORKERS, generator=gen)
    test_loader = DataLoader(test_set, batch_size=TEST_BATCH_SIZE, shuffle=False, num_workers=NUM_WORKERS)
    return train_loader, test_loader


def train_epoch(model, loader, optimizer) -> tuple[float, int]:
    """One epoch as the tutorial writes it; (seconds of the loop, images seen)."""
    model.train()
    seen = 0
    t0 = time.perf_counter()
    for data, target in loader:  # creating the iterator starts the worker: part of the cost
        optimizer.zero_grad()
        output = model(data)
        loss = F.cross_entropy(output, target)
        loss.backward()
        optimizer.step()
        seen += len(target)
    return time.perf_counter() - t0, seen


def test(model, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for data, target in loader:
            correct += int((model(data).argmax(1) == target).sum())
            total += len(target)
    return correct / total


def run_reference(
    epochs: int = 10,
    *,
    seed: int = 0,
    train_limit: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train the tutorial pipeline; per-epoch figures, best accuracy and the training time to reach it."""
    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mnist-reference-") as tmp:
        benchlib.decompress_mnist(Path(tmp))
        train_loader, test_loader = make_loaders(Path(tmp), seed=seed, train_limit=train_limit)
        torch.manual_seed(seed)  # the same initial weights as the library with the same seed
        model = build_model(ARCH)
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        rows, train_seconds, images = [], 0.0, 0
        for epoch in range(1, epochs + 1):
            seconds, seen = train_epoch(model, train_loader, optimizer)
            train_seconds += seconds
            images += seen
            t_eval = time.perf_counter()
            accuracy = test(model, test_loader)
            row = {
                "epoch": epoch,
                "images_per_sec": seen / seconds,
                "test_accuracy": accuracy,
                "epoch_seconds": seconds,
                "train_seconds": train_seconds,
                "eval_seconds": time.perf_counter() - t_eval,
            }
            rows.append(row)
            if on_epoch is not None:
                on_epoch(row)
    best = max(rows, key=lambda r: r["test_accuracy"])  # max keeps the first of equals: the earliest
    return {
        "epochs": rows,
        "best_accuracy": best["test_accuracy"],
        "best_epoch": best["epoch"],
        "time_to_best": best["train_seconds"],
        "final_accuracy": rows[-1]["test_accuracy"],
        "train_seconds": train_seconds,
        "images_per_sec": images / train_seconds,  # over all epochs, each epoch's worker start included
        "wall_seconds": time.perf_counter() - wall0,
        "train_images": len(train_loader.dataset),
    }


EPOCH_HEADERS = ("epoch", "train img/s", "test acc", "train s (cum.)", "eval s")


def epoch_cells(row: dict) -> list[str]:
    return [
        str(row["epoch"]),
        f"{row['images_per_sec']:,.0f}",
        benchlib.pct(row["test_accuracy"]),
        f"{row['train_seconds']:.1f}",
        f"{row['eval_seconds']:.1f}",
    ]


def print_epoch(row: dict) -> None:
    print(
        f"  epoch {row['epoch']}: {row['images_per_sec']:,.0f} img/s, test {benchlib.pct(row['test_accuracy'])}, "
        f"{row['train_seconds']:.1f} s of training so far",
        flush=True,
    )


def reference_figures(result: dict, epochs: int) -> list[Figure]:
    """The run's key figures; they are the reference's, so the table shows them in its reference column."""
    return [
        Figure(
            "best_acc",
            result["best_accuracy"],
            "%",
            "reference best test accuracy",
            note=f"(epoch {result['best_epoch']})",
            column="reference",
        ),
        Figure("best_epoch", result["best_epoch"]),
        Figure("time_to_best_s", result["time_to_best"], "s", "reference training time to best", column="reference"),
        Figure("img_per_s", result["images_per_sec"], "img/s", "reference training throughput", column="reference"),
        Figure("train_s", result["train_seconds"], "s"),
        Figure(
            "wall_s", result["wall_seconds"], "s", f"reference wall time, {epochs} epochs + evals", column="reference"
        ),
        Figure("epochs", epochs),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=0, help="train on the first N images only (smoke runs)")
    parser.add_argument("--quick", action="store_true", help="1 epoch on 10,000 images: checks that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_limit = 1, args.train_limit or 10_000

    machine = benchlib.start("reference: tutorial pipeline (torchvision DataLoader, lenet-dropout, Adam 1e-3)")
    print(f"{args.epochs} epochs, batch {BATCH_SIZE}, {NUM_WORKERS} loader worker")
    result = run_reference(args.epochs, seed=args.seed, train_limit=args.train_limit, on_epoch=print_epoch)
    print()
    print(benchlib.format_table(EPOCH_HEADERS, [epoch_cells(r) for r in result["epochs"]]))
    benchlib.report(
        "reference",
        machine,
        reference_figures(result, args.epochs),
        quick=args.quick,
        seeds={"reference": args.seed},
        details=result,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
