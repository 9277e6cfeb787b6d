"""The benchmark helpers: statistics, parsing, canvases and pass/fail logic (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from bench import benchlib, best, browser, bundle, memory, predict_latency, procfs, ps, run_all, train_speed
from mnist.config import PRESETS


def test_latency_stats_are_milliseconds():
    stats = benchlib.latency_stats([0.001] * 98 + [0.010, 0.020])
    assert stats["p50_ms"] == pytest.approx(1.0)
    assert stats["max_ms"] == pytest.approx(20.0)
    assert stats["n"] == 100
    assert 1.0 < stats["p99_ms"] < 20.0


def test_result_line_round_trips():
    figures = {"ours_time_to_99_s": 14.234, "ref": None, "arch": "cnn bn", "ok": True, "n": 3}
    line = benchlib.result_line("train_speed", figures)
    assert line.startswith("RESULT train_speed: ")
    assert "\n" not in line
    name, parsed = benchlib.parse_result_line(line)
    assert name == "train_speed"
    assert parsed == {"ours_time_to_99_s": "14.23", "ref": "none", "arch": "cnn_bn", "ok": "true", "n": "3"}
    assert benchlib.parse_result_line("epoch 1: 99%") is None


def test_figure_renders_value_unit_note_reference_and_ratio():
    ref = benchlib.Figure("ref_s", 90.0, "s", note="to reach its best")
    ours = benchlib.Figure(
        "ours_s",
        14.04,
        "s",
        "time",
        note="(epoch 2)",
        reference=ref,
        ratio=90.0 / 14.04,
        ratio_note="faster",
        target="<= 20 s",
        passed=True,
    )
    assert ours.to_row() == {
        "figure": "time",
        "ours": "14.0 s (epoch 2)",
        "reference": "90.0 s to reach its best",
        "ratio": "6.41x faster",
        "target": "<= 20 s",
        "status": "PASS",
    }
    assert benchlib.Figure("acc", 0.99612, "%").render() == "99.61%"
    assert benchlib.Figure("img_s", 12345.6, "img/s").render() == "12,346 img/s"
    assert benchlib.Figure("t", None, "s", missing="never").render() == "never"
    assert benchlib.Figure("t", 1.0, "s", target="< 2 s").status == "n/a"  # a target not checked
    assert benchlib.Figure("t", 1.0, "s").status == ""  # no target
    shown = benchlib.Figure("ref_img_s", 2000.0, "img/s", "throughput", column="reference").to_row()
    assert (shown["ours"], shown["reference"]) == ("", "2,000 img/s")


def test_figures_give_the_result_line_and_rows_from_one_list():
    figures = [
        benchlib.Figure("p50_ms", 2.345, "ms", "p50", target="<= 3 ms", passed=True),
        benchlib.Figure("calls", 200),  # no label: RESULT line and JSON only
    ]
    values = benchlib.collect_values(figures)
    assert values == {"p50_ms": 2.345, "calls": 200}
    assert benchlib.result_line("x", values) == "RESULT x: p50_ms=2.345 calls=200"
    assert [r["figure"] for r in benchlib.collect_rows(figures)] == ["p50"]
    with pytest.raises(ValueError, match="duplicate"):
        benchlib.collect_values([*figures, benchlib.Figure("calls", 1)])


def test_results_file_records_commit_seeds_and_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(benchlib, "RESULTS_DIR", tmp_path)
    figures = [benchlib.Figure("p50_ms", 2.0, "ms", "p50")]
    machine = {"cpu": "test cpu", "cores": 2}
    path = benchlib.write_results(
        "x", machine, benchlib.collect_values(figures), benchlib.collect_rows(figures), seeds={"canvases": 0}
    )
    payload = json.loads(path.read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=benchlib.REPO, capture_output=True, text=True).stdout
    assert payload["git"]["commit"] == head.strip() and len(head.strip()) == 40
    assert isinstance(payload["git"]["dirty"], bool)
    assert payload["git"]["dirty"] == bool(payload["git"]["changed"])
    assert payload["seeds"] == {"canvases": 0}
    assert payload["machine"] == machine
    assert payload["figures"] == {"p50_ms": 2.0} and payload["rows"][0]["ours"] == "2.00 ms"


def test_results_file_keeps_the_git_state_of_the_start(tmp_path, monkeypatch):
    monkeypatch.setattr(benchlib, "RESULTS_DIR", tmp_path)
    at_start = {"commit": "0" * 40, "dirty": False, "changed": []}  # as start() saw it, before a later commit
    monkeypatch.setattr(benchlib, "_GIT_AT_START", at_start)
    path = benchlib.write_results("x", {}, {}, [], seeds={})
    assert json.loads(path.read_text())["git"] == at_start


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    assert benchlib.read_git_state(tmp_path) == {"commit": None, "dirty": None, "changed": None}


def test_cpu_model_parsing():
    cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
    assert procfs.parse_cpu_model(cpuinfo) == "AMD EPYC 7B13"
    assert procfs.parse_cpu_model("processor\t: 0\nBogoMIPS\t: 50.00\n") is None


def test_status_parsing_reads_kilobytes():
    text = "Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t3\n"
    assert procfs.parse_status_kb(text, "VmRSS") == 102400
    assert procfs.parse_status_kb(text, "VmHWM") == 204800
    assert procfs.parse_status_kb(text, "Threads") is None  # not a kB field
    assert procfs.parse_status_kb(text, "VmSwap") is None


def test_readers_see_this_process_and_none_for_a_gone_one():
    assert 0 < ps.read_rss_mb("self") <= procfs.read_peak_rss_mb("self")
    assert ps.read_cpu_seconds("self") > 0
    assert ps.read_cpu_seconds("self", children=True) >= ps.read_cpu_seconds("self")
    gone = 2**22 + 1  # above the kernel's largest pid_max
    assert procfs.read_peak_rss_mb(gone) is None
    assert ps.read_rss_mb(gone) is None
    assert ps.read_cpu_seconds(gone) is None
    assert ps.read_tree_cpu_seconds(gone) is None
    assert ps.process_tree(gone) == [gone]
    assert ps.read_command_line(gone) == []
    assert ps.read_uid("self") == os.getuid() and ps.read_uid(gone) is None


def test_process_tree_holds_a_child_and_sums_its_memory():
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = ps.process_tree(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
        assert ps.read_tree_rss_mb(os.getpid()) > ps.read_rss_mb(os.getpid())
        assert ps.read_command_line(child.pid)[-1] == "import time; time.sleep(30)"
    finally:
        child.kill()
        child.wait(timeout=10)


def test_system_busy_seconds_count_busy_time_only():
    import psutil

    times = psutil.cpu_times()
    busy = ps.read_system_busy_seconds()
    assert 0 < busy < sum(times) - times.guest - times.guest_nice  # idle time is not busy
    assert ps.read_system_busy_seconds() >= busy  # a count since boot never falls


def test_memory_now_reads_this_process():
    now = memory.memory_now()
    assert 0 < now["rss_mb"] <= now["peak_mb"]


def test_time_to_reach():
    epochs = [(0.98, 7.0), (0.991, 14.0), (0.993, 21.0)]
    assert benchlib.time_to_reach(epochs, 0.99) == 14.0
    assert benchlib.time_to_reach(epochs, 0.991, strictly=True) == 21.0
    assert benchlib.time_to_reach(epochs, 0.999) is None


def test_tables_align_and_escape():
    text = benchlib.format_table(("a", "long header"), [["x", 1], ["yyyy", None]])
    lines = text.splitlines()
    assert lines[0].index("long header") == lines[2].index("1") == lines[3].index("yyyy") + 6
    md = benchlib.markdown_table(("figure", "ours"), [["a|b", "1 ms"]])
    assert md.splitlines()[2] == "| a\\|b | 1 ms |"


def test_canvas_looks_like_the_browser_and_preprocesses_back_to_the_digit(mnist_data):
    from mnist.preprocess import preprocess_canvas

    rng = np.random.default_rng(0)
    for i in range(5):
        digit = mnist_data.test_images[i].numpy()
        canvas = benchlib.mnist_canvas(digit, rng)
        assert canvas.shape == (280, 280, 4) and canvas.dtype == np.uint8
        assert (canvas[..., 3] == 255).all()  # opaque black background
        assert (canvas[..., 0] == canvas[..., 2]).all()  # white ink: grey levels only
        assert canvas[..., 0].max() >= 0.9 * digit.max()
        ours = preprocess_canvas(canvas).pixels
        direct = preprocess_canvas(digit).pixels
        assert np.corrcoef(ours.ravel(), direct.ravel())[0, 1] > 0.9
    with pytest.raises(ValueError):
        benchlib.mnist_canvas(digit, rng, scale=11)


def _epochs(*pairs):
    return [{"epoch": i + 1, "test_accuracy": acc, "train_seconds": t} for i, (acc, t) in enumerate(pairs)]


def test_train_speed_targets_pass_and_fail():
    ref = {
        "epochs": _epochs((0.97, 30.0), (0.985, 60.0), (0.989, 90.0), (0.988, 120.0)),
        "best_accuracy": 0.989,
        "best_epoch": 3,
        "time_to_best": 90.0,
        "images_per_sec": 2000.0,
        "wall_seconds": 130.0,
    }
    fast = {"epochs": _epochs((0.985, 4.0), (0.991, 8.0)), "final_accuracy": 0.991, "train_seconds": 8.0}
    fast["wall_seconds"] = 16.0
    lenet = {"images_per_sec": 5000.0}
    figures, warnings = train_speed.compare(fast, lenet, ref, 4)
    values = benchlib.collect_values(figures)
    assert [f.status for f in figures if f.status] == ["PASS", "PASS", "PASS"]
    assert values["ours_time_to_99_s"] == 8.0 and values["ref_time_to_99_s"] is None
    assert values["ours_time_to_beat_ref_s"] == 8.0  # 98.5% at epoch 1 does not beat 98.9%
    assert values["lenet_throughput_ratio"] == pytest.approx(2.5)
    assert warnings == []
    time_to_99 = benchlib.collect_rows(figures)[0]
    assert time_to_99["ours"] == "8.0 s (epoch 2) [fast preset]"
    assert time_to_99["reference"] == "never in 4 epochs" and time_to_99["ratio"] == "-"

    slow = {**fast, "epochs": _epochs((0.98, 9.0), (0.9899, 25.0)), "final_accuracy": 0.9899}
    figures, warnings = train_speed.compare(slow, {"images_per_sec": 3000.0}, ref, 4)
    assert [f.status for f in figures if f.status] == ["FAIL", "FAIL", "FAIL"]
    assert benchlib.collect_values(figures)["ours_time_to_99_s"] is None
    assert benchlib.collect_rows(figures)[0]["ours"] == "never [fast preset]"
    assert any("NEVER reached 99.0%" in w for w in warnings)


def _stats(p50, p99):
    return {"n": 100, "p50_ms": p50, "p90_ms": (p50 + p99) / 2, "p99_ms": p99, "max_ms": 2 * p99, "mean_ms": p50}


def test_predict_latency_figures_check_the_headline_targets():
    names = [
        predict_latency.LIBRARY,
        predict_latency.LIBRARY_THREADS1,
        *(n for _k, n in predict_latency.VARIANT_FIGURES),
    ]
    stats = {name: _stats(2.0, 12.0) for name in names}
    busy = {predict_latency.LIBRARY: _stats(4.0, 20.0), predict_latency.LIBRARY_THREADS1: _stats(3.0, 10.0)}
    figures = predict_latency.latency_figures(stats, busy, 7, {}, 30.0, "cnn", 200)
    by_key = {f.key: f for f in figures}
    assert (by_key["p50_ms"].status, by_key["p99_ms"].status) == ("PASS", "FAIL")  # <= 3 ms, <= 10 ms
    assert by_key["compile_p50_ms"].value is None and not by_key["compile_first_call_s"].label
    assert by_key["busy_threads1_p50_ms"].to_row()["ratio"] == "0.50x p99 of default"
    assert "7 steps" in by_key["busy_p50_ms"].label


def test_bundle_candidates_must_fit_under_the_budget():
    def candidate(size: int) -> bundle.Candidate:
        checkpoint = SimpleNamespace(record=SimpleNamespace(model_text="ensemble of 5 · cnn-bn"))
        return bundle.Candidate("five", checkpoint, None, size, [3.0, 5.0, 4.0, 30.0])

    under = {f.key: f for f in bundle.candidate_figures(candidate(bundle.BUDGET_BYTES - 1), 0.9975, 0.05, 25)}
    at = {f.key: f for f in bundle.candidate_figures(candidate(bundle.BUDGET_BYTES), 0.9975, 0.05, 25)}
    assert (under["five_bytes"].status, at["five_bytes"].status) == ("PASS", "FAIL")  # under 2 MB, not at it
    assert under["five_bytes"].render() == "1,999,999 bytes"
    assert under["five_accuracy"].render() == "99.75% (25 errors)"
    assert under["five_test_loss"].render() == "0.0500"
    assert under["five_model_cpu_p50_ms"].value == 4.5 and under["five_model_cpu_p90_ms"].value > 20
    assert under["five_bytes"].label.startswith("five (ensemble of 5 · cnn-bn)")


def test_browser_figures_check_the_targets():
    cold = [{"total_s": t, "health_s": t / 2} for t in (8.0, 12.0, 9.0)]
    figures = browser.browser_figures(_stats(600.0, 900.0), _stats(800.0, 1000.0), {"prediction_ms": 2000.0}, cold)
    by_key = {f.key: f for f in figures}
    assert by_key["stroke_to_prediction_p50_ms"].status == "FAIL"  # < 500 ms
    assert by_key["cold_start_s"].value == 9.0 and by_key["cold_start_s"].status == "PASS"  # median < 10 s
    assert by_key["cold_start_health_s"].value == 4.5


def test_run_all_uses_cached_best_only_for_the_current_preset(tmp_path, monkeypatch):
    monkeypatch.setattr(benchlib, "RESULTS_DIR", tmp_path)
    config = run_all.current_best_config()
    assert run_all.cached_best(config)[0] is None
    assert run_all.should_run_best("auto", 0.0, config) == (
        False,
        "skipped: no earlier full run to tell whether it fits in the budget",
    )
    payload = {"date": "2026-01-01T00:00:00+00:00", "is_preset": True, "config": config, "figures": {"wall_s": 400}}
    accuracy = benchlib.Figure("final_acc", 0.9961, "%", "test accuracy", target=">= 99.6%", passed=True)
    payload["rows"] = benchlib.collect_rows([accuracy])
    (tmp_path / "best.json").write_text(json.dumps(payload))
    cached, why = run_all.cached_best(config)
    assert cached is not None and why.startswith("not re-run")
    assert run_all.should_run_best("auto", 0.0, config)[0] is True  # 415 s fits in 570 s
    assert run_all.should_run_best("auto", 300.0, config)[0] is False
    assert run_all.should_run_best("skip", 0.0, config)[0] is False
    assert run_all.cached_best({**config, "epochs": config["epochs"] + 1})[0] is None  # preset changed since
    saved_run = {**payload, "figures": {"wall_s": None, "train_s": 1611.0}, "source": "saved run x"}
    (tmp_path / "best.json").write_text(json.dumps(saved_run))
    assert run_all.should_run_best("auto", 0.0, config)[0] is False  # only its training time is known
    assert "saved run x" in run_all.cached_best(config)[1]

    table = run_all.summary_rows({"best": cached, "browser": None}, {"browser": "not measured"})
    assert table[0][:6] == ["test accuracy", "99.61%", "", "", ">= 99.6%", "PASS"]
    assert table[1][0] == "browser: not measured" and table[1][5] == "n/a"


def _seed_run(acc, train_s, wall_s):
    return {"final_accuracy": acc, "train_seconds": train_s, "wall_seconds": wall_s}


def test_train_speed_seed_figures_hold_every_seed_to_the_targets():
    runs = [_seed_run(0.992, 8.0, 10.0), _seed_run(0.994, 9.0, 11.0), _seed_run(0.993, 10.0, 12.0)]
    figures = train_speed.seed_figures(runs)
    values = benchlib.collect_values(figures)
    assert [f.status for f in figures if f.status] == ["PASS", "PASS", "PASS"]
    assert values["seeds_acc_min"] == 0.992 and values["seeds_acc_mean"] == pytest.approx(0.993)
    assert values["seeds_acc_std"] == pytest.approx(0.001)
    assert values["seeds_train_s_max"] == 10.0 and values["seeds_train_s_min"] == 8.0 and values["seeds"] == 3
    # One seed under 99.0%, one over 10 s of training, one over 15 s wall: each target fails on its worst seed.
    worse = [*runs, _seed_run(0.9899, 10.5, 15.5)]
    assert [f.status for f in train_speed.seed_figures(worse) if f.status] == ["FAIL", "FAIL", "FAIL"]


def test_best_seeds_figures_check_the_mean_the_time_and_the_ensemble():
    def run(seed, acc, seconds):
        return PRESETS["best"].replace(seed=seed), {"final_accuracy": acc, "train_seconds": seconds}

    runs = [run(0, 0.9972, 700.0), run(1, 0.9968, 720.0), run(2, 0.9971, 800.0)]
    figures = best.seeds_figures(runs, {"accuracy": 0.9978, "members": 5})
    values = benchlib.collect_values(figures)
    assert values["seeds_acc_mean"] == pytest.approx(0.9970333, abs=1e-6) and values["seeds_acc_min"] == 0.9968
    assert [f.status for f in figures if f.status] == ["PASS", "PASS", "PASS"]
    # Two seeds are too few, a run over 15 minutes fails, and an ensemble of 3 is shown but not judged.
    short = best.seeds_figures([*runs[:1], run(1, 0.9975, 901.0)], {"accuracy": 0.9974, "members": 3})
    assert [f.status for f in short if f.status] == ["FAIL", "FAIL", "n/a"]
