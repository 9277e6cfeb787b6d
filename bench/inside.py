"""See inside the model: digit map compute time and quality, per-drawing latency, attack time (CPU).

1. The bundled model's digit map as the app computes it: mnist.digit_map.compute_digit_map over the 10,000
   test images on its default thread count (half the cores), end to end (feature pass + layout), against a
   60 s budget; the feature pass and the layout apart. Its quality: the fraction of each point's 10 nearest
   map neighbours with the same true digit, for the neighbour-graph layout and for PCA (the first two
   components of the same features); and how far from its true place a point lands when placed as a new
   drawing (leave-one-out: from its nearest other test images), median, as a percentage of the map's spread.
2. The neighbour index: the 60,000 training images' penultimate features, built once per model.
3. One drawing, as the app would show it: real test digits drawn on a 280x280 canvas and preprocessed, then
   inspect_drawing (every layer's activations, features, probabilities), index.nearest (8 neighbours) and
   digit_map.place, each timed, p50 and p99.
4. The attack: fool() towards (label + 1) mod 10 on test digits, L-inf 0.2 and L2 2.0, 100 steps at most:
   time per attack, success rate, steps.

    python bench/inside.py [--drawings 200] [--attacks 20] [--threads N] [--quick]

--quick maps 2,000 test images, indexes 5,000 training images, fewer drawings and attacks, and writes
results/inside-quick.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench import benchlib
from bench.benchlib import Figure
from mnist.attack import fool
from mnist.checkpoint import load_checkpoint
from mnist.digit_map import FEATURES_SHARE, PLACE_EPSILON, PLACE_NEIGHBOURS, DigitMap, compute_digit_map
from mnist.inside import inspect_drawing
from mnist.layout import exact_knn
from mnist.machine import background_threads
from mnist.neighbours import build_neighbour_index
from mnist.preprocess import preprocess_canvas

MAP_BUDGET_S = 60.0
AGREEMENT_NEIGHBOURS = 10
CANVAS_SEED = 0  # where and how large each test digit is drawn on the canvas
ATTACKS = (("linf", 0.2), ("l2", 2.0))
LOO_NOTE = "% of the map's spread (leave-one-out)"
QUICK_MAP_POINTS, QUICK_INDEX_IMAGES, QUICK_DRAWINGS, QUICK_ATTACKS = 2000, 5000, 30, 4


def label_agreement(coords: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of each point's AGREEMENT_NEIGHBOURS nearest map neighbours with its own label."""
    indices, _ = exact_knn(torch.from_numpy(np.ascontiguousarray(coords, np.float32)), AGREEMENT_NEIGHBOURS)
    return float((labels[indices.numpy()] == labels[:, None]).mean())


def leave_one_out_error(digit_map: DigitMap) -> float:
    """Median distance between a point's place and where it is placed from its nearest *other* test images
    (as DigitMap.place does for a new drawing), in percent of the map's spread (the coordinates' std)."""
    reference = torch.from_numpy(digit_map.reference)
    indices, distances = exact_knn(reference, PLACE_NEIGHBOURS)  # excludes the point itself
    weights = 1 / (distances + PLACE_EPSILON)
    coords = torch.from_numpy(digit_map.coords)
    placed = (coords[indices] * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
    error = (placed - coords).norm(dim=1).median()
    return float(error / coords.std(0).norm()) * 100


def time_digit_map(model, data, limit: int | None, threads: int) -> tuple[DigitMap, float, float]:
    """(map, total seconds, feature-pass seconds) of compute_digit_map as the app runs it."""
    marks: dict[str, float] = {}

    def progress(fraction: float) -> None:
        if fraction >= FEATURES_SHARE and "features" not in marks:
            marks["features"] = time.perf_counter()

    start = time.perf_counter()
    digit_map = compute_digit_map(model, data, limit=limit, threads=threads, progress=progress)
    total = time.perf_counter() - start
    return digit_map, total, marks.get("features", start) - start


def time_drawings(model, data, index, digit_map, n: int) -> dict[str, list[float]]:
    """Per-drawing seconds of inspect_drawing, nearest and place on n preprocessed canvases."""
    rng = np.random.default_rng(CANVAS_SEED)
    images = [preprocess_canvas(benchlib.mnist_canvas(d, rng)) for d in data.test_images[:n].numpy()]
    inspect_drawing(model, images[0])  # the first call pays one-time costs
    times: dict[str, list[float]] = {"inspect": [], "nearest": [], "place": [], "total": []}
    for image in images:
        t0 = time.perf_counter()
        inspection = inspect_drawing(model, image)
        t1 = time.perf_counter()
        index.nearest(inspection.features)
        t2 = time.perf_counter()
        digit_map.place(inspection.features)
        t3 = time.perf_counter()
        for key, seconds in (("inspect", t1 - t0), ("nearest", t2 - t1), ("place", t3 - t2), ("total", t3 - t0)):
            times[key].append(seconds)
    return times


def time_attacks(model, data, n: int) -> dict[str, dict]:
    """Per norm: attack seconds, successes and steps over the first n test digits."""
    results = {}
    for norm, budget in ATTACKS:
        seconds, successes, steps = [], 0, []
        for i in range(n):
            target = (int(data.test_labels[i]) + 1) % 10
            t0 = time.perf_counter()
            result = fool(model, data.test_images[i].numpy(), target, budget, norm)
            seconds.append(time.perf_counter() - t0)
            successes += result.success
            steps.append(result.steps)
        results[norm] = {"budget": budget, "seconds": seconds, "success_rate": successes / n, "steps": steps}
    return results


def build_figures(m: dict, quick: bool) -> list[Figure]:
    draw, attacks = m["drawings"], m["attacks"]
    passed = None if quick else m["map_s"] <= MAP_BUDGET_S
    points = f"({m['map_points']:,} points, {m['map_threads']} thread{'s' if m['map_threads'] > 1 else ''})"
    figures = [
        Figure("map_s", m["map_s"], "s", "digit map: compute, bundled model", points, target="<= 60 s", passed=passed),
        Figure("map_features_s", m["map_features_s"], "s", "  of which the feature pass"),
        Figure("map_points", m["map_points"]),
        Figure("map_threads", m["map_threads"]),
        Figure("map_agreement", m["agreement"], "%", "digit map: 10 nearest map neighbours, same digit"),
        Figure("pca_agreement", m["pca_agreement"], "%", "  same, PCA's first two components"),
        Figure("place_loo_error_pct", m["loo_error_pct"], "", "new point's place: median error", LOO_NOTE, ".2f"),
        Figure("index_build_s", m["index_s"], "s", "neighbour index: training features", f"({m['index_images']:,})"),
        Figure("index_images", m["index_images"]),
    ]
    for key, label in (("total", "one drawing: activations + neighbours + place"), ("inspect", "  activations")):
        stats = benchlib.latency_stats(draw[key])
        figures.append(Figure(f"drawing_{key}_p50_ms", stats["p50_ms"], "ms", f"{label}, p50"))
        figures.append(Figure(f"drawing_{key}_p99_ms", stats["p99_ms"], "ms", f"{label}, p99"))
    for key in ("nearest", "place"):
        stats = benchlib.latency_stats(draw[key])
        figures.append(Figure(f"drawing_{key}_p50_ms", stats["p50_ms"], "ms", f"  {key}, p50"))
    for norm, r in attacks.items():
        stats = benchlib.latency_stats(r["seconds"])
        note = f"({r['success_rate']:.0%} fooled, median {int(np.median(r['steps']))} steps)"
        label = f"attack, {norm} budget {r['budget']}: time, p50"
        figures.append(Figure(f"attack_{norm}_p50_ms", stats["p50_ms"], "ms", label, note))
        figures.append(Figure(f"attack_{norm}_success", r["success_rate"], "%"))
    figures.append(Figure("drawings", len(draw["total"])))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawings", type=int, default=200, help="drawings timed (default 200)")
    parser.add_argument("--attacks", type=int, default=20, help="test digits attacked per norm (default 20)")
    parser.add_argument("--threads", type=int, help="threads of the map and index computes (default: the app's)")
    parser.add_argument("--quick", action="store_true", help="a smoke run on fewer images")
    args = parser.parse_args(argv)
    limit_map, limit_index = (QUICK_MAP_POINTS, QUICK_INDEX_IMAGES) if args.quick else (None, None)
    if args.quick:
        args.drawings, args.attacks = min(args.drawings, QUICK_DRAWINGS), min(args.attacks, QUICK_ATTACKS)

    machine = benchlib.start("inside: digit map, neighbours, one drawing, attack (CPU)")
    path, description = benchlib.checkpoint_path()
    model = load_checkpoint(path).model
    data = benchlib.load_data()
    threads = args.threads or background_threads()
    print(f"model: {description}; digit map and index on {threads} thread(s) ...", flush=True)
    digit_map, map_s, features_s = time_digit_map(model, data, limit_map, threads)
    print(f"digit map: {map_s:.1f} s ({features_s:.1f} s features)", flush=True)
    t0 = time.perf_counter()
    index = build_neighbour_index(model, data, limit=limit_index, threads=threads)
    index_s = time.perf_counter() - t0
    print(f"neighbour index: {index_s:.1f} s for {len(index):,} images", flush=True)
    measured = {
        "map_s": map_s,
        "map_features_s": features_s,
        "map_points": len(digit_map),
        "map_threads": threads,
        "agreement": label_agreement(digit_map.coords, digit_map.labels),
        "pca_agreement": label_agreement(digit_map.reference[:, :2], digit_map.labels),
        "loo_error_pct": leave_one_out_error(digit_map),
        "index_s": index_s,
        "index_images": len(index),
        "drawings": time_drawings(model, data, index, digit_map, args.drawings),
        "attacks": time_attacks(model, data, args.attacks),
    }
    if not description.startswith("bundled"):
        print(f"NOTE: measured with a {description}")
    benchlib.report(
        "inside",
        machine,
        build_figures(measured, args.quick),
        file_stem="inside-quick" if args.quick else None,
        quick=args.quick,
        seeds={"canvases": CANVAS_SEED, "digit map layout": digit_map.seed},
        model=description,
        attacks={norm: {k: v for k, v in r.items() if k != "seconds"} for norm, r in measured["attacks"].items()},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
