"""Run every benchmark in its own process and summarise them in one table.

Writes bench/results/summary.md (a markdown table for the README). Budget: 10 minutes on a 2-core
CPU. The best preset alone takes longer than that on such a machine, so by default (--best auto)
it runs only when its last real measurement says it fits in the time left; otherwise the summary
shows the figure from bench/results/best.json with that file's date, and says so. --best run
forces it, --skip-best (= --best skip) never runs it.

Browser figures (stroke-to-prediction latency, cold start) are the last ones bench/browser.py wrote
to bench/results/browser.json (it needs Chromium, so it runs on its own); absent, the row says so.

docs/benchmarks.md is written from the results files kept in the repository, bench/published/NAME.json
(bench/results/ is scratch: every run overwrites it): --publish NAME copies bench/results/NAME.json there
and rewrites the page, --write-docs rewrites it from what is kept. Neither runs a benchmark.

    python bench/run_all.py [--quick] [--best auto|run|skip] [--skip-best] [--compile]
    python -m bench.run_all --publish load,memory
    python -m bench.run_all --write-docs
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import benchlib

BUDGET_SECONDS = 600.0
MARGIN_SECONDS = 30.0
PER_BENCH_TIMEOUT = 3600.0
SUMMARY_HEADERS = ("figure", "ours", "reference", "ratio", "target", "result", "measured")
PUBLISHED_DIR = benchlib.BENCH_DIR / "published"
BENCHMARKS_DOC = benchlib.REPO / "docs" / "benchmarks.md"
ROW_COLUMNS = (("figure", "figure"), ("ours", "ours"), ("reference", "reference"), ("ratio", "ratio"))
ROW_COLUMNS += (("target", "target"), ("status", "result"))
DOC_HEAD = """# Benchmarks

<!-- Written by `python -m bench.run_all --write-docs` from bench/published/*.json: do not edit by hand. -->

The figures of the results files kept in `bench/published/` (copies of `bench/results/NAME.json` that
`python -m bench.run_all --publish NAME` keeps), as each benchmark wrote them. `bench/README.md` explains
each script. Figures whose results files were not kept: `docs/performance.md`, `docs/memory.md`,
`docs/pages.md`, `docs/hosting.md`.
"""


def run_bench(name: str, args: list[str]) -> tuple[int, str | None, float]:
    """Run bench.NAME (a module or a package like bench.load), echoing its output; (exit code, RESULT, seconds)."""
    cmd = [sys.executable, "-m", f"bench.{name}", *args]
    print(f"\n$ {' '.join(['python', '-m', f'bench.{name}', *args])}", flush=True)
    t0 = time.perf_counter()
    result_line = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1, cwd=benchlib.REPO) as proc:
        for line in proc.stdout:
            print("  " + line, end="", flush=True)
            if line.startswith("RESULT "):
                result_line = line.strip()
        try:
            code = proc.wait(timeout=PER_BENCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
    return code, result_line, time.perf_counter() - t0


def load_results(name: str) -> dict | None:
    path = benchlib.RESULTS_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def current_best_config() -> dict:
    from mnist.config import PRESETS

    return PRESETS["best"].replace(device="cpu").to_dict()


def cached_best(expected_config: dict) -> tuple[dict | None, str]:
    """The last real best-preset results, if they were measured with today's preset; else why not."""
    cached = load_results("best")
    if cached is None:
        return None, "no bench/results/best.json: run python bench/best.py"
    if not cached.get("is_preset"):
        return None, "bench/results/best.json is not a full run of the preset"
    if cached.get("config") != expected_config:
        return None, f"bench/results/best.json ({cached.get('date')}) was measured with a different best preset"
    source = cached.get("source", "trained by bench/best.py")
    return cached, f"not re-run: bench/results/best.json ({source})"


def should_run_best(mode: str, elapsed: float, expected_config: dict) -> tuple[bool, str]:
    if mode == "run":
        return True, "forced by --best run"
    if mode == "skip":
        return False, "skipped (--skip-best)"
    cached, _why = cached_best(expected_config)
    if cached is None:
        return False, "skipped: no earlier full run to tell whether it fits in the budget"
    figures = cached["figures"]
    # Wall time of its last run, + interpreter start; a saved run has only its training time.
    estimate = float(figures["wall_s"]) + 15.0 if figures.get("wall_s") else float(figures["train_s"]) * 1.1
    left = BUDGET_SECONDS - MARGIN_SECONDS - elapsed
    if estimate <= left:
        return True, f"runs: its last run took {estimate:.0f} s, {left:.0f} s of the budget left"
    return False, f"skipped: its last run took {estimate:.0f} s, more than the {left:.0f} s of budget left"


def machine_short(machine: dict | None) -> str:
    if not machine:
        return "?"
    text = str(machine.get("cpu", "?"))
    if machine.get("cores"):
        text += f", {machine['cores']} cores"
    if machine.get("contended"):
        others = machine.get("other_busy_cores_during_run")
        text += f", CONTENDED ({others} cores busy with other work)" if others is not None else ", CONTENDED"
    return text


def commit_short(git: dict | None) -> str:
    """'commit abc1234' of a results file, '+ changes' when the checkout differed from it."""
    if not git or not git.get("commit"):
        return "commit unknown"
    return f"commit {git['commit'][:7]}" + (" + changes" if git.get("dirty") else "")


def summary_rows(results: dict[str, dict | None], notes: dict[str, str]) -> list[list[str]]:
    """Table rows (SUMMARY_HEADERS) from every benchmark's results, in order."""
    table = []
    for name, res in results.items():
        if res is None:
            table.append([f"{name}: {notes.get(name, 'no results')}", "-", "", "", "", "n/a", ""])
            continue
        date = str(res.get("date", "?"))[:16].replace("T", " ")
        measured = f"{date} UTC, {commit_short(res.get('git'))}, {machine_short(res.get('machine'))}"
        if res.get("quick"):
            measured += ", QUICK"
        if name in notes:
            measured += f"; {notes[name]}"
        for r in res.get("rows", []):
            table.append(
                [
                    r.get("figure", ""),
                    r.get("ours", ""),
                    r.get("reference", ""),
                    r.get("ratio", ""),
                    r.get("target", ""),
                    r.get("status", ""),
                    measured,
                ]
            )
    return table


def write_summary(
    table: list[list[str]], machine: dict, total_seconds: float, notes: list[str], *, rebuilt: bool = False
) -> Path:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    how = (
        "rebuilt from the results files (`python bench/run_all.py --summary-only`)"
        if rebuilt
        else f"`python bench/run_all.py` took {total_seconds / 60:.1f} min"
    )
    lines = [
        f"Benchmarks summarised {date} on {benchlib.machine_line(machine)}; {how}.",
        "",
        benchlib.markdown_table(SUMMARY_HEADERS, table),
        "",
    ]
    lines += [f"- {note}" for note in notes]
    path = benchlib.RESULTS_DIR / "summary.md"
    benchlib.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def describe_machine(machine: dict | None) -> str:
    """The machine a results file names, and how busy it was with other work."""
    if not machine:
        return "machine not recorded"
    text = f"{machine.get('cpu', '?')} ({machine.get('cpu_capability', '?')}{', AMX' if machine.get('amx') else ''})"
    text += f", {machine.get('cores', '?')} cores, torch {machine.get('torch', '?')}"
    text += f", Python {machine.get('python', '?')}"
    if machine.get("contended"):
        others = machine.get("other_busy_cores_during_run")
        return text + (f"; CONTENDED: {others} cores busy with other work" if others is not None else "; CONTENDED")
    return text + "; idle otherwise"


def describe_commit(git: dict | None) -> str:
    """The commit a results file was measured at, and the files that differed from it then."""
    if not git or not git.get("commit"):
        return "commit unknown"
    text = git["commit"][:7]
    changed = git.get("changed") or []
    if git.get("dirty"):
        text += f" + changes to {len(changed)} file{'s' if len(changed) != 1 else ''}" if changed else " + changes"
    return text


def published_results(folder: Path) -> dict[str, dict]:
    """Every results file kept in folder, by name, in name order."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def render_results_section(name: str, res: dict) -> list[str]:
    """One benchmark's rows, with only the columns it fills."""
    rows = res.get("rows", [])
    columns = [(key, title) for key, title in ROW_COLUMNS if any(r.get(key) for r in rows)]
    lines = [f"## {name}", ""]
    if res.get("restored"):
        lines += [f"Restored: {res['restored']}.", ""]
    if res.get("quick"):
        lines += ["A shortened run (`--quick`).", ""]
    table = [[r.get(key, "") for key, _ in columns] for r in rows]
    lines += [benchlib.markdown_table([title for _, title in columns], table), ""]
    return lines


def render_benchmarks_doc(folder: Path = PUBLISHED_DIR) -> str:
    """docs/benchmarks.md from the kept results files: which run measured what, then each one's figures."""
    results = published_results(folder)
    index = [
        [
            f"[{name}](#{name})",
            str(res.get("date", "?"))[:16].replace("T", " "),
            describe_commit(res.get("git")),
            describe_machine(res.get("machine")),
            "`" + " ".join(["python", "-m", f"bench.{res.get('name', name)}", *res.get("argv", [])]) + "`",
        ]
        for name, res in results.items()
    ]
    headers = ("benchmark", "measured (UTC)", "commit", "machine", "command")
    lines = [DOC_HEAD, benchlib.markdown_table(headers, index), ""]
    for name, res in results.items():
        lines += render_results_section(name, res)
    return "\n".join(lines).rstrip() + "\n"


def publish_results(names: list[str]) -> list[str]:
    """Copy bench/results/NAME.json into bench/published/; the problems, in plain words (none: all copied)."""
    problems = []
    PUBLISHED_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = benchlib.RESULTS_DIR / f"{name}.json"
        if load_results(name) is None:
            problems.append(f"bench/results/{source.name} is missing or not JSON: run python -m bench.{name}")
            continue
        shutil.copyfile(source, PUBLISHED_DIR / source.name)
    return problems


def write_benchmarks_doc() -> Path:
    BENCHMARKS_DOC.write_text(render_benchmarks_doc())
    return BENCHMARKS_DOC


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (smoke run)")
    parser.add_argument("--best", choices=("auto", "run", "skip"), default="auto")
    parser.add_argument("--skip-best", action="store_const", dest="best", const="skip", help="= --best skip")
    parser.add_argument("--ref-epochs", type=int, default=10, help="reference epochs in train_speed (default 10)")
    parser.add_argument("--compile", action="store_true", help="include the torch.compile variant (slow start)")
    parser.add_argument("--only", help="comma-separated subset of: train_speed,predict_latency,memory")
    parser.add_argument(
        "--summary-only", action="store_true", help="run nothing: rebuild the summary from bench/results/*.json"
    )
    parser.add_argument("--write-docs", action="store_true", help="run nothing: write docs/benchmarks.md")
    parser.add_argument("--publish", help="comma-separated NAMEs: keep bench/results/NAME.json, then --write-docs")
    args = parser.parse_args(argv)
    if args.publish or args.write_docs:
        problems = publish_results(args.publish.split(",")) if args.publish else []
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"wrote {write_benchmarks_doc().relative_to(benchlib.REPO)}")
        return 2 if problems else 0

    t0 = time.perf_counter()
    machine = benchlib.start("run_all: every benchmark, one process each")
    quick = ["--quick"] if args.quick else []
    plan = [
        ("train_speed", ["--ref-epochs", str(args.ref_epochs), *quick]),
        ("predict_latency", [*quick, *([] if args.compile else ["--no-compile"])]),
        ("memory", ["--max-steps", "50", *quick]),
    ]
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {name for name, _ in plan}
        if unknown:
            parser.error(f"unknown benchmark(s) in --only: {', '.join(sorted(unknown))}")
        plan = [(name, bench_args) for name, bench_args in plan if name in wanted]
    results: dict[str, dict | None] = {}
    result_lines, notes, failures = [], {}, []
    for name, bench_args in plan:
        if args.summary_only:
            results[name] = load_results(name)
            if results[name] is None:
                notes[name] = "no results file"
            continue
        started = datetime.now(UTC).isoformat(timespec="seconds")
        code, line, seconds = run_bench(name, bench_args)
        res = load_results(name)
        if code != 0 or res is None or str(res.get("date", "")) < started:
            failures.append(f"{name} failed (exit code {code}); its figures are missing")
            res = None
            notes[name] = f"FAILED (exit code {code})"
        results[name] = res
        if line:
            result_lines.append(line)
        print(f"  ({name}: {seconds:.0f} s)")

    expected = current_best_config()
    mode = "skip" if args.summary_only else args.best
    run_best, why = should_run_best(mode, time.perf_counter() - t0, expected)
    print(f"\nbest preset: {why}")
    if run_best and not args.quick:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        code, line, seconds = run_bench("best", [])
        res = load_results("best")
        if code != 0 or res is None or str(res.get("date", "")) < started:
            failures.append(f"best failed (exit code {code})")
            res, notes["best"] = None, f"FAILED (exit code {code})"
        results["best"] = res
        if line:
            result_lines.append(line)
    else:
        cached, cached_why = cached_best(expected)
        results["best"] = cached
        notes["best"] = cached_why if cached is not None else f"{why}; {cached_why}"

    browser = load_results("browser")
    results["browser"] = browser
    if browser is None:
        notes["browser"] = "stroke-to-prediction latency and cold start: not measured (no bench/results/browser.json)"
    else:
        notes["browser"] = "bench/results/browser.json (python bench/browser.py)"

    total = time.perf_counter() - t0
    table = summary_rows(results, notes)
    print("\n" + "=" * 100)
    print(benchlib.format_table(SUMMARY_HEADERS, table))
    print()
    for line in result_lines:
        print(line)
    summary_notes = [f"best preset: {notes['best']}"]
    if any(r and r.get("machine", {}).get("contended") for r in results.values()):
        summary_notes.append("CONTENDED: other processes were using the CPU during some measurements")
    summary_notes += failures
    if total > BUDGET_SECONDS and not args.summary_only:
        summary_notes.append(f"over budget: {total:.0f} s > {BUDGET_SECONDS:.0f} s")
    path = write_summary(table, machine, total, summary_notes, rebuilt=args.summary_only)
    figures = {
        "total_s": total,
        "pass": sum(r[5] == "PASS" for r in table),
        "fail": sum(r[5] == "FAIL" for r in table),
        "errors": len(failures),
    }
    benchlib.write_results(
        "run_all",
        machine,
        figures,
        [dict(zip(SUMMARY_HEADERS, r, strict=True)) for r in table],  # the summary: every benchmark's rows
        seeds=None,  # each benchmark's results file has its own
        result_lines=result_lines,
        notes=summary_notes,
    )
    for note in summary_notes:
        print(f"note: {note}")
    print(f"summary: {path.relative_to(benchlib.REPO)}")
    print(f"run_all took {total:.0f} s (budget {BUDGET_SECONDS:.0f} s)")
    print(benchlib.result_line("run_all", figures), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
