"""Command line: python -m mnist {train,ensemble,evaluate,predict,archs,digit-map}."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import machine
from .config import DEVICES, FIELD_SPECS, PRESETS, FieldSpec, TrainConfig, preset_config, range_text
from .constants import WEIGHT_STORAGES
from .ensemble import MAX_MEMBERS, MIN_MEMBERS
from .errors import MnistError


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, without the usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=tuple(PRESETS), default="fast", help="starting recipe (default: fast)")
    for spec in FIELD_SPECS.values():
        add_config_flag(p, spec)
    p.add_argument("--data-dir", type=Path, help="MNIST folder (default: $MNIST_DATA_DIR or ./data)")
    p.add_argument("--out", type=Path, help="runs folder (default: $MNIST_RUNS_DIR or ./runs)")
    p.add_argument("--name", help="run folder name (default: date-arch-random)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help=f"train N runs, seeds --seed, --seed+1, ..., and save their ensemble too (1 or {MIN_MEMBERS} to "
        f"{MAX_MEMBERS}; with --name the runs are NAME-seedS and the ensemble NAME)",
    )
    p.add_argument("--json", action="store_true", help="end with one JSON line of results")


def add_config_flag(p: argparse.ArgumentParser, spec: FieldSpec) -> None:
    """--batch-size from batch_size; unset flags stay None and keep the preset's value."""
    flag = "--" + spec.name.replace("_", "-")
    if spec.kind == "bool":
        p.add_argument(flag, action=argparse.BooleanOptionalAction, help=flag_help(spec))
    elif spec.kind == "choice":
        p.add_argument(flag, choices=tuple(spec.choices), help=flag_help(spec))
    else:
        number = int if spec.kind == "int" else float
        p.add_argument(flag, type=number, metavar="N" if number is int else "X", help=flag_help(spec))


def flag_help(spec: FieldSpec) -> str:
    parts = [spec.help[0].lower() + spec.help[1:]]  # argparse's own help is lower case
    if spec.kind in ("int", "float"):
        parts.append(range_text(spec))
    if spec.only_with is not None:
        other, values = spec.only_with
        parts.append(f"only with --{other} {' or '.join(values)}")
    return "; ".join(parts).replace("%", "%%")  # argparse formats help with %


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The preset's config with every config flag given on the command line."""
    overrides = {name: getattr(args, name) for name in FIELD_SPECS if getattr(args, name) is not None}
    return preset_config(args.preset).replace(**overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m mnist", description="Train, evaluate and use MNIST digit classifiers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    train = sub.add_parser(
        "train",
        help="train a model and save it as a run",
        description="Train a model and save it as a run. Every config flag overrides the value from --preset.",
    )
    add_train_args(train)
    add_ensemble_parser(sub)
    ev = sub.add_parser("evaluate", help="test-set accuracy of a checkpoint (default: the bundled model)")
    ev.add_argument("checkpoint", nargs="?", type=Path)
    ev.add_argument("--data-dir", type=Path)
    ev.add_argument("--device", choices=DEVICES, default="auto")
    ev.add_argument("--json", action="store_true")
    pr = sub.add_parser(
        "predict",
        help="read the digit(s) in pictures (PNG, JPEG or WebP: drawings, or photos of paper): one verdict per picture",
    )
    pr.add_argument("images", nargs="+", type=Path)
    pr.add_argument("--checkpoint", type=Path, help="run folder or .safetensors (default: the bundled model)")
    pr.add_argument("--json", action="store_true")
    ar = sub.add_parser("archs", help="list the architectures")
    ar.add_argument("--json", action="store_true")
    add_digit_map_parser(sub)
    return parser


def add_ensemble_parser(sub) -> None:
    en = sub.add_parser(
        "ensemble",
        help="make an ensemble of saved runs, measure it on the test set and save it as a run",
        description="Average the probabilities of saved runs (any architectures): the ensemble is saved as a run "
        "of its own, holding every member's weights, usable wherever a checkpoint is (evaluate, predict, the app).",
    )
    en.add_argument("runs", nargs="+", help="run folders, .safetensors files or names of runs in the runs folder")
    en.add_argument("--data-dir", type=Path, help="MNIST folder (default: $MNIST_DATA_DIR or ./data)")
    en.add_argument("--out", type=Path, help="runs folder (default: $MNIST_RUNS_DIR or ./runs)")
    en.add_argument("--name", help="run folder name (default: date-ensembleN-random)")
    en.add_argument(
        "--weights-dtype",
        choices=WEIGHT_STORAGES,
        default=WEIGHT_STORAGES[0],
        help="how the file stores the weights: float16 halves it (the test accuracy is measured on the weights as "
        "stored; computation stays float32)",
    )
    en.add_argument("--json", action="store_true", help="end with one JSON line of results")


def add_digit_map_parser(sub) -> None:
    dm = sub.add_parser(
        "digit-map",
        help="compute a checkpoint's digit map of the test set and save it beside the model",
        description="Lay out the 10,000 test images by the model's penultimate features (mnist.digit_map) and "
        "write digit_map.safetensors into the run folder (default: the bundled model's).",
    )
    dm.add_argument("checkpoint", nargs="?", type=Path, help="run folder or .safetensors (default: the bundled model)")
    dm.add_argument("--data-dir", type=Path, help="MNIST folder (default: $MNIST_DATA_DIR or ./data)")
    dm.add_argument("--method", choices=("neighbour-graph", "pca"), default="neighbour-graph")
    dm.add_argument("--seed", type=int, default=0)
    dm.add_argument("--threads", type=int, help="torch threads (default: half the cores)")
    dm.add_argument("--out", type=Path, help="file to write (default: digit_map.safetensors beside the weights)")
    dm.add_argument("--json", action="store_true")


def cmd_train(args) -> int:
    from .checkpoint import default_runs_dir, free_run_path, load_checkpoint, save_ensemble
    from .data import load_mnist

    if args.seeds != 1 and not MIN_MEMBERS <= args.seeds <= MAX_MEMBERS:
        raise MnistError(f"--seeds must be 1 or {MIN_MEMBERS} to {MAX_MEMBERS}, got {args.seeds}")
    config = train_config(args)
    configs = [config.replace(seed=config.seed + k) for k in range(args.seeds)]
    names = [args.name] if args.seeds == 1 else [args.name and f"{args.name}-seed{c.seed}" for c in configs]
    runs_dir = args.out or default_runs_dir()
    for name in [*names, args.name if args.seeds > 1 else None]:
        if name:
            free_run_path(runs_dir, name)  # a taken name is refused before any training, not after it
    data = load_mnist(args.data_dir)
    report = sys.stderr if args.json else sys.stdout  # with --json, stdout is the JSON alone
    summaries = [train_one(c, data, args.out, name, report) for c, name in zip(configs, names, strict=True)]
    if args.seeds == 1:
        summary = summaries[0]
    else:
        members = [load_checkpoint(s["checkpoint"]) for s in summaries]
        ensemble = load_checkpoint(save_ensemble(members, data, args.out, args.name))
        summary = {**ensemble_summary(ensemble), "members": summaries}
        print(
            f"{ensemble.record.model_text}: {ensemble.record.metrics.accuracy_text(' test accuracy')}; saved "
            f"{ensemble.path}",
            file=report,
        )
    if args.json:
        print(json.dumps(summary))
    return 0


def ensemble_summary(ensemble) -> dict:
    """An ensemble run's results for --json: its metrics, arch 'ensemble', folder and members' names."""
    record = ensemble.record
    names = [m.name for m in record.members]
    return {**record.metrics.to_dict(), "arch": record.arch, "checkpoint": str(ensemble.path), "member_runs": names}


def train_one(config: TrainConfig, data, out: Path | None, name: str | None, report=sys.stdout) -> dict:
    """Train one run with a progress bar and a line per epoch, save it, print a summary line to `report`;
    its --json summary."""
    from tqdm import tqdm

    from .checkpoint import save_run
    from .train import DoneEvent, EpochEvent, StepEvent, train

    bar = None
    done = None
    for event in train(config, data):
        if isinstance(event, StepEvent):
            if bar is None:
                bar = tqdm(total=event.total_steps, unit="step", dynamic_ncols=True, file=sys.stderr)
            bar.update(event.step - bar.n)
            bar.set_postfix(
                epoch=event.epoch, loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}", img_s=f"{event.images_per_sec:,.0f}"
            )
        elif isinstance(event, EpochEvent):
            line = (
                f"epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.4f} acc "
                f"{event.train_accuracy:.2%} | test loss {event.test_loss:.4f} acc {event.test_accuracy:.2%} "
                f"| {event.elapsed:.1f}s"
            )
            (bar.write if bar else print)(line, file=sys.stderr)
        elif isinstance(event, DoneEvent):
            done = event
    if bar is not None:
        bar.close()
    run_dir = save_run(done.model, config, done.metrics(), done.history, out, name)
    print(
        f"test accuracy {done.test_accuracy:.2%} after {done.train_seconds:.1f}s of training ({done.precision}); "
        f"saved {run_dir}",
        file=report,
    )
    return {**done.metrics().to_dict(), "arch": config.arch, "checkpoint": str(run_dir)}


def cmd_ensemble(args) -> int:
    from .checkpoint import load_checkpoint, save_ensemble
    from .data import load_mnist

    members = [load_checkpoint(run_location(run, args.out)) for run in args.runs]
    data = load_mnist(args.data_dir)
    ensemble = load_checkpoint(save_ensemble(members, data, args.out, args.name, storage=args.weights_dtype))
    record = ensemble.record
    each = ", ".join(m.metrics.accuracy_text() for m in record.members)
    print(
        f"{record.model_text}: {record.metrics.accuracy_text(' test accuracy')} (members: {each}); saved "
        f"{ensemble.path}",
        file=sys.stderr if args.json else sys.stdout,
    )
    if args.json:
        print(json.dumps(ensemble_summary(ensemble)))
    return 0


def run_location(run: str, runs_dir: Path | None) -> Path:
    """A run given on the command line: a path when one exists, else the name of a run in the runs folder."""
    from .checkpoint import default_runs_dir, run_path

    path = Path(run)
    return path if path.exists() else run_path(runs_dir or default_runs_dir(), run)


def cmd_evaluate(args) -> int:
    from .checkpoint import load_checkpoint
    from .data import load_mnist
    from .device import resolve_device
    from .train import evaluate

    ckpt = load_checkpoint(args.checkpoint)
    data = load_mnist(args.data_dir)
    model = ckpt.model.to(resolve_device(args.device))
    result = evaluate(model, data.test_images, data.test_labels)
    out = {
        "checkpoint": str(ckpt.path),
        "arch": ckpt.arch,
        "model": ckpt.record.model_text,  # 'ensemble of 3 · cnn-bn' for an ensemble
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "per_class_accuracy": {str(d): acc for d, acc in enumerate(result.per_class_accuracy)},
        "errors": len(result.misclassified()),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{ckpt.record.model_text} from {ckpt.path}")
    errors = f"{out['errors']} errors of {len(result.labels)}"
    print(f"test accuracy {result.accuracy:.2%} ({errors}), loss {result.loss:.4f}")
    for digit, acc in enumerate(result.per_class_accuracy):
        print(f"  digit {digit}: {acc:.2%}")
    return 0


def cmd_predict(args) -> int:
    """One verdict per image (mnist.verdict): a line each, or with --json one JSON list of objects, one per
    image in order, each with path, verdict, digit, digits, confidence, probabilities, reason (and
    message, top_two, groups: Reading.to_dict)."""
    from .checkpoint import load_checkpoint
    from .photo import read_picture_file
    from .verdict import FALLBACK, calibration_for, read_drawing

    checkpoint = load_checkpoint(args.checkpoint)
    calibration = calibration_for(checkpoint)
    if calibration is FALLBACK:
        print("note: no verdict calibration stored and no MNIST to compute one: fallback rules", file=sys.stderr)
    elif not calibration.source.startswith("stored"):
        note = "store it with: python -m mnist.verdict calibrate RUN_DIR"
        print(f"note: verdict calibration {calibration.source}; {note}", file=sys.stderr)
    results = []
    for path in args.images:
        reading = read_drawing(checkpoint.model, read_picture_file(path), calibration)  # as an upload is read
        results.append({"path": str(path), **reading.to_dict()})
        if not args.json:
            print(f"{path}: {predict_line(reading)}")
    if args.json:
        print(json.dumps(results))
    return 0


def predict_line(reading) -> str:
    """The verdict, then what backs it: 'digit 7 (98.1%)', 'not_a_digit (a line)'."""
    from .verdict import REASONS

    if reading.empty:
        return "not_a_digit (blank image, no digit found)"
    if reading.verdict == "not_a_digit":
        return f"not_a_digit ({REASONS[reading.reason]})"
    if reading.verdict == "unsure":
        return reading.message.replace("unsure:", "unsure", 1)
    return f"{reading.verdict} {reading.message}"


def cmd_archs(args) -> int:
    from .models import ARCHS, build_model, count_parameters

    rows = [
        {"name": s.name, "parameters": count_parameters(build_model(s.name)), "description": s.description}
        for s in ARCHS.values()
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        print(f"{r['name']:<14} {r['parameters']:>9,}  {r['description']}")
    return 0


def cmd_digit_map(args) -> int:
    from .checkpoint import load_checkpoint
    from .data import load_mnist
    from .digit_map import DIGIT_MAP_FILE, compute_digit_map, save_digit_map
    from .ensemble import first_member

    if args.threads is not None and args.threads < 1:
        raise MnistError(f"--threads must be >= 1, got {args.threads}")
    ckpt = load_checkpoint(args.checkpoint)
    beside = ckpt.path / DIGIT_MAP_FILE if ckpt.path.is_dir() else ckpt.path.with_suffix(".digit_map.safetensors")
    out = args.out or beside
    data = load_mnist(args.data_dir)
    # An ensemble is mapped by its first member's features, as Inside the model shows it (mnist.ensemble).
    model = first_member(ckpt.model)
    digit_map = compute_digit_map(model, data, method=args.method, seed=args.seed, threads=args.threads)
    try:
        save_digit_map(digit_map, out)
    except OSError as exc:
        raise MnistError(f"cannot write {out}: {exc.strerror or exc}") from None
    summary = {
        "checkpoint": str(ckpt.path),
        "out": str(out),
        "bytes": out.stat().st_size,
        "points": len(digit_map),
        "mistakes": int(digit_map.mistakes.sum()),
        "method": digit_map.method,
        "seconds": digit_map.seconds,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['points']:,} test images mapped ({summary['mistakes']} mistakes) in {digit_map.seconds:.1f}s")
        print(f"wrote {out} ({summary['bytes'] / 1e6:.2f} MB)")
    return 0


COMMANDS = {
    "train": cmd_train,
    "ensemble": cmd_ensemble,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "archs": cmd_archs,
    "digit-map": cmd_digit_map,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        machine.size_torch_threads()  # torch's threads: the CPUs this host gives, not the ones it shows
        return COMMANDS[args.command](args)
    except MnistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
