"""Shared helpers for the benchmarks: machine description, thread setup, tables, results files.

The project installs as a package (pip install -e .), so `python bench/NAME.py` imports `mnist` and
`bench` without any path set-up.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

from bench import procfs, ps
from mnist import machine

REPO = Path(__file__).resolve().parent.parent

BENCH_DIR = REPO / "bench"
RESULTS_DIR = BENCH_DIR / "results"
SHARED_MNIST = REPO.parent / "shared" / "mnist"
FALLBACK_RUNS_DIR = Path("/tmp/mnist-bench-runs")
FALLBACK_RUN_NAME = "bench-fallback"
# Above this many busy cores (of other processes) before a benchmark starts, its timings are
# flagged as measured under contention.
CONTENTION_BUSY_CORES = 0.3


# ---------------------------------------------------------------------------------------------
# Machine

_METER: ContentionMeter | None = None
_GIT_AT_START: dict | None = None  # read_git_state() when start() ran: the code the script imported


def core_count() -> int:
    """Cores this process is given (cgroup quota, affinity mask or $MNIST_CPUS), not the machine's total."""
    return machine.this_machine().cpus


def busy_cores(seconds: float = 0.5) -> float:
    """How many cores were busy over the next `seconds` (measured while this process sleeps)."""
    return psutil.cpu_percent(interval=seconds) / 100 * (os.cpu_count() or 1)


class ContentionMeter:
    """Cores kept busy by *other* processes between start and stop (all busy time minus our own)."""

    def __init__(self) -> None:
        self.start_state = self._state()

    @staticmethod
    def _state() -> tuple[float, float, float] | None:
        own = ps.read_cpu_seconds("self", children=True)
        if own is None:
            return None
        return ps.read_system_busy_seconds(), own, time.perf_counter()

    def other_busy_cores(self) -> float | None:
        end = self._state()
        if self.start_state is None or end is None or end[2] - self.start_state[2] < 0.5:
            return None
        busy = end[0] - self.start_state[0]
        own = end[1] - self.start_state[1]
        return max(0.0, busy - own) / (end[2] - self.start_state[2])


def stop_contention_meter() -> None:
    """For scripts that end up timing nothing: no contention figure in their results."""
    global _METER
    _METER = None


def setup_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads explicitly (default: the core count) and return the number."""
    import torch

    threads = threads or core_count()
    torch.set_num_threads(threads)
    return threads


def machine_info() -> dict:
    import torch

    from mnist.device import has_matrix_units

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": procfs.cpu_model(),
        # The widest vector instructions torch's kernels use here (AVX2, AVX512): machines of this kind
        # differ, and a cnn-bn training step took 3.4x as long on an AVX2 one as on an earlier one (README).
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # AMX matrix units: with them the presets train in bfloat16 (precision auto), about twice as fast.
        "amx": has_matrix_units(),
        "cores": core_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg_1min": round(load[0], 2),
    }


def machine_line(info: dict) -> str:
    return (
        f"{info['cpu']} ({info.get('cpu_capability', '?')}{', AMX' if info.get('amx') else ''}), "
        f"{info['cores']} cores, torch {info['torch']}, "
        f"{info['torch_threads']} threads, "
        f"Python {info['python']}"
    )


def start(name: str, threads: int | None = None) -> dict:
    """Set the threads, note the git state, measure the background load, print the machine; the machine dict."""
    global _METER, _GIT_AT_START
    setup_threads(threads)
    info = machine_info()
    _GIT_AT_START = read_git_state()
    background = busy_cores()
    info["busy_cores_before_start"] = None if background is None else round(background, 2)
    info["contended"] = background is not None and background > CONTENTION_BUSY_CORES
    _METER = ContentionMeter()
    print(f"== {name} ==")
    print(f"machine: {machine_line(info)}")
    if background is not None:
        note = " -> OTHER WORK IS RUNNING: timings are inflated" if info["contended"] else " (idle)"
        print(f"background load: {background:.2f} of {info['cores']} cores busy before start{note}")
    return info


# ---------------------------------------------------------------------------------------------
# Data and model


def data_dir() -> Path:
    """$MNIST_DATA_DIR, else ../shared/mnist beside the repository, else ./data."""
    env = os.environ.get("MNIST_DATA_DIR")
    if env:
        return Path(env)
    return SHARED_MNIST if SHARED_MNIST.is_dir() else REPO / "data"


def load_data():
    from mnist.data import load_mnist

    return load_mnist(data_dir(), download=False)


def decompress_mnist(dest_root: Path, source: Path | None = None) -> Path:
    """Write the four IDX files, gunzipped, into dest_root/MNIST/raw (torchvision's layout)."""
    from mnist.data import find_mnist_files

    source = source or data_dir()
    files = find_mnist_files(source)
    if files is None:
        raise FileNotFoundError(f"MNIST files not found in {source}; set MNIST_DATA_DIR")
    raw = Path(dest_root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for path in files.values():
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        name = path.name.removesuffix(".gz")
        (raw / name).write_bytes(data)
    return raw


def checkpoint_path(requested: str | Path | None = None) -> tuple[Path | None, str]:
    """(path for load_checkpoint, description): the requested one, the bundled one, else a quick fallback.

    When the bundled model is missing, one epoch of the fast preset is trained once into
    /tmp/mnist-bench-runs and reused; the description says so.
    """
    from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE

    if requested is not None:
        return Path(requested), f"checkpoint {requested}"
    if (BUNDLED_DIR / WEIGHTS_FILE).is_file():
        return None, "bundled default model"
    fallback = FALLBACK_RUNS_DIR / FALLBACK_RUN_NAME
    if not (fallback / WEIGHTS_FILE).is_file():
        print("bundled model missing: training a 1-epoch fast-preset model as a stand-in ...", flush=True)
        env = {**os.environ, "MNIST_DATA_DIR": str(data_dir())}
        cmd = [sys.executable, "-m", "mnist", "train", "--epochs", "1", "--out", str(FALLBACK_RUNS_DIR)]
        subprocess.run([*cmd, "--name", FALLBACK_RUN_NAME], cwd=REPO, env=env, check=True, stderr=subprocess.DEVNULL)
    return fallback, f"STAND-IN model {fallback} (bundled model missing)"


def mnist_canvas(digit, rng, size: int = 280, scale: int | None = None):
    """A 28x28 uint8 MNIST digit drawn like the browser canvas: (size, size, 4) uint8 RGBA.

    White ink on an opaque black background. The digit is enlarged (bilinear, like anti-aliased
    strokes) by `scale` (default: random 6..10, so 10 = the full canvas) and placed at a random
    position where it fits.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    digit = np.asarray(digit, dtype=np.uint8)
    side = digit.shape[0]
    scale = int(scale if scale is not None else rng.integers(6, size // side + 1))
    big_side = side * scale
    if big_side > size:
        raise ValueError(f"scale {scale} makes the digit {big_side} px, larger than the {size} px canvas")
    t = torch.from_numpy(digit.astype(np.float32))[None, None]
    big = F.interpolate(t, size=(big_side, big_side), mode="bilinear", align_corners=False)[0, 0]
    big = big.round().clamp(0, 255).to(torch.uint8).numpy()
    top, left = (int(rng.integers(0, size - big_side + 1)) for _ in range(2))
    canvas = np.zeros((size, size, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    for channel in range(3):
        canvas[top : top + big_side, left : left + big_side, channel] = big
    return canvas


# ---------------------------------------------------------------------------------------------
# Figures


def spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value): how seeds' figures are reported."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def latency_stats(seconds: Sequence[float]) -> dict:
    """p50, p90, p99, max and mean, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    p50, p90, p99 = (float(p) for p in np.percentile(ms, [50, 90, 99]))
    return {
        "n": len(ms),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": max(ms),
        "mean_ms": sum(ms) / len(ms),
    }


def time_to_reach(epochs: Iterable[tuple[float, float]], threshold: float, *, strictly: bool = False) -> float | None:
    """Cumulative seconds at the first (accuracy, seconds) pair whose accuracy reaches the threshold."""
    for accuracy, seconds in epochs:
        if accuracy > threshold if strictly else accuracy >= threshold:
            return seconds
    return None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def status(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


def fmt(value, spec: str = ".2f", suffix: str = "") -> str:
    """A figure for a table: '-' for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"


def pct(value: float | None) -> str:
    return fmt(None if value is None else value * 100, ".2f", "%")


def row(figure: str, ours: str, reference: str = "", ratio_text: str = "", target: str = "", result: str = "") -> dict:
    """One line of a summary table; run_all.py shows these rows from every results file."""
    return {
        "figure": figure,
        "ours": ours,
        "reference": reference,
        "ratio": ratio_text,
        "target": target,
        "status": result,
    }


Value = float | int | str | bool | None
# How a value is shown in the table, by unit; any other unit shows the value as str() does.
UNIT_SPECS = {"%": ".2f", "ms": ".2f", "s": ".1f", "MiB": ".0f", "MB": ".0f", "img/s": ",.0f"}


@dataclass(frozen=True)
class Figure:
    """One figure of a benchmark: a key and a value, shown in the RESULT line, the results file and the table.

    Only figures with a label get a table row; the others (parameters such as the epoch count, or
    figures only the results file needs) are in the RESULT line and the JSON.
    """

    key: str  # RESULT line and JSON key, the unit in the name: "p50_ms"
    value: Value
    unit: str = ""  # shown after the value: "ms", "s", "MiB", "img/s"; "%": the value is a fraction
    label: str = ""  # the table's figure column; "" = no table row
    note: str = ""  # shown after the value: "(epoch 2)"
    spec: str | None = None  # format spec of the value (default: UNIT_SPECS)
    missing: str = "-"  # shown for a None value
    reference: Figure | None = None  # the reference's figure, shown in the reference column
    ratio: float | None = None  # of ours and the reference, as ratio_note says
    ratio_note: str = ""  # shown after the ratio: "faster", "of reference"; set, a missing ratio shows "-"
    target: str = ""  # "<= 3 ms"; "" = no target and no status
    passed: bool | None = None  # whether the value meets the target; None = not checked
    column: str = "ours"  # the column the value is shown in: "ours", or "reference" (bench/reference.py)

    def render(self) -> str:
        """The value as the table shows it, with its unit and note."""
        value = self.value
        if value is None or (isinstance(value, float) and math.isnan(value)):
            text = self.missing
        elif isinstance(value, bool | str):
            text = str(value)
        else:
            spec = self.spec if self.spec is not None else UNIT_SPECS.get(self.unit, "")
            shown = value * 100 if self.unit == "%" else value
            text = f"{shown:{spec}}" + ("%" if self.unit == "%" else f" {self.unit}" if self.unit else "")
        return f"{text} {self.note}" if self.note else text

    @property
    def status(self) -> str:
        """PASS / FAIL against the target, n/a when not checked, "" without a target."""
        return status(self.passed) if self.target else ""

    def to_row(self) -> dict:
        if self.ratio is None:
            ratio_text = "-" if self.ratio_note else ""  # a ratio was meant, but one side is missing
        else:
            ratio_text = f"{self.ratio:.2f}x" + (f" {self.ratio_note}" if self.ratio_note else "")
        cells = {self.column: self.render()}
        if self.reference is not None:
            cells["reference"] = self.reference.render()
        return row(self.label, cells.get("ours", ""), cells.get("reference", ""), ratio_text, self.target, self.status)


def collect_values(figures: Sequence[Figure]) -> dict[str, Value]:
    """key -> value of every figure: the RESULT line and the results file's "figures"."""
    keys = [f.key for f in figures]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate figure keys: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return {f.key: f.value for f in figures}


def collect_rows(figures: Sequence[Figure]) -> list[dict]:
    """The table rows of the labelled figures, in order."""
    return [f.to_row() for f in figures if f.label]


def format_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A plain-text table with left-aligned columns."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(value) -> str:
        return ("" if value is None else str(value)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def summary_rows_table(rows: Sequence[dict]) -> str:
    headers = ("figure", "ours", "reference", "ratio", "target", "result")
    keys = ("figure", "ours", "reference", "ratio", "target", "status")
    return format_table(headers, [[r.get(k, "") for k in keys] for r in rows])


def result_line(name: str, figures: dict) -> str:
    """'RESULT name: key=value ...', the one line of key figures each script ends with."""

    def value(v) -> str:
        if v is None:
            return "none"
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace(" ", "_")

    return f"RESULT {name}: " + " ".join(f"{k}={value(v)}" for k, v in figures.items())


def parse_result_line(line: str) -> tuple[str, dict[str, str]] | None:
    """Inverse of result_line (values stay strings); None for any other line."""
    if not line.startswith("RESULT "):
        return None
    name, sep, rest = line[len("RESULT ") :].partition(":")
    if not sep:
        return None
    figures = {}
    for item in rest.split():
        key, eq, val = item.partition("=")
        if eq:
            figures[key] = val
    return name.strip(), figures


def read_git_state(repo: Path = REPO) -> dict:
    """The checkout the figures were measured with: HEAD's commit, and whether (and where) it differs.

    `changed` lists `git status --porcelain` paths (untracked ones included: a new module can change
    what runs); commit and dirty are None outside a git checkout.
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout

    commit = git("rev-parse", "HEAD")
    porcelain = git("status", "--porcelain")
    changed = None if porcelain is None else [line[3:] for line in porcelain.splitlines() if line]
    return {
        "commit": None if commit is None else commit.strip(),
        "dirty": None if changed is None else bool(changed),
        "changed": changed,
    }


def write_results(
    name: str,
    machine: dict,
    figures: dict,
    rows: list[dict],
    *,
    file_stem: str | None = None,
    seeds: dict | None = None,
    **extra,
) -> Path:
    """bench/results/NAME.json (or FILE_STEM.json): date, git state, seeds, machine, key figures, rows, details.

    The git state is the one at start() (others may commit while a benchmark runs), else the current one.

    `seeds` names every random seed the measurement used ({} = none: it is deterministic).
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "git": _GIT_AT_START or read_git_state(),
        "seeds": seeds,
        "machine": machine,
        "figures": figures,
        "rows": rows,
        **extra,
    }
    path = RESULTS_DIR / f"{file_stem or name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def finish(name: str, machine: dict, figures: dict, rows: list[dict], *, file_stem: str | None = None, **extra) -> None:
    """Print the summary rows, write the results file and end with the RESULT line.

    For scripts that build their figures dict and rows themselves; `report` does it from Figures.
    """
    others = _METER.other_busy_cores() if _METER is not None else None
    if others is not None:
        machine["other_busy_cores_during_run"] = round(others, 2)
        machine["contended"] = machine.get("contended", False) or others > CONTENTION_BUSY_CORES
    print()
    print(summary_rows_table(rows))
    if machine.get("contended"):
        print(
            f"note: MEASURED UNDER CONTENTION: other processes kept {machine.get('busy_cores_before_start')} cores "
            f"busy before the start and {machine.get('other_busy_cores_during_run')} on average during the run"
        )
    path = write_results(name, machine, figures, rows, file_stem=file_stem, **extra)
    print(f"results: {path.relative_to(REPO)}")
    print(result_line(name, figures), flush=True)


def report(name: str, machine: dict, figures: Sequence[Figure], **extra) -> None:
    """finish() from a list of Figures: the table, the results file and the RESULT line all come from it."""
    finish(name, machine, collect_values(figures), collect_rows(figures), **extra)
