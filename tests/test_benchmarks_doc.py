"""docs/benchmarks.md is what bench/run_all.py renders from the kept results files, so the two cannot drift."""

from __future__ import annotations

import json

from bench import benchlib, run_all

MACHINE = {
    "cpu": "AMD EPYC",
    "cpu_capability": "AVX512",
    "amx": False,
    "cores": 2,
    "torch": "2.14.1",
    "python": "3.11.7",
}


def write_results(folder, name: str, **fields) -> None:
    res = {"name": name, "date": "2026-12-07T17:21:40+00:00", "argv": ["--json"], "rows": [], **fields}
    (folder / f"{name}.json").write_text(json.dumps(res))


def test_committed_benchmarks_page_is_what_the_kept_results_render():
    committed = run_all.BENCHMARKS_DOC.read_text()
    assert committed == run_all.render_benchmarks_doc(), (
        "docs/benchmarks.md differs from bench/published/*.json: run python -m bench.run_all --write-docs"
    )
    assert list(run_all.published_results(run_all.PUBLISHED_DIR))  # the page has results to show


def test_each_benchmark_names_its_date_commit_and_machine(tmp_path):
    row = {"figure": "load: errors", "ours": "0", "reference": "", "ratio": "", "target": "0", "status": "PASS"}
    git = {"commit": "6ebcfed84ef171ea", "dirty": True, "changed": ["a.py", "b.py"]}
    write_results(
        tmp_path,
        "load",
        git=git,
        machine={**MACHINE, "contended": True, "other_busy_cores_during_run": 1.3},
        rows=[row],
    )
    write_results(tmp_path, "memory", quick=True)
    page = run_all.render_benchmarks_doc(tmp_path)
    index_row = "| [load](#load) | 2026-12-07 17:21 | 6ebcfed + changes to 2 files | AMD EPYC (AVX512), 2 cores"
    assert index_row in page
    assert "CONTENDED: 1.3 cores busy with other work | `python -m bench.load --json` |" in page
    assert "| [memory](#memory) | 2026-12-07 17:21 | commit unknown | machine not recorded |" in page
    assert "| figure | ours | target | result |\n| --- | --- | --- | --- |\n| load: errors | 0 | 0 | PASS |" in page
    assert "A shortened run (`--quick`)." in page.split("## memory")[1]


def test_publishing_a_missing_results_file_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(benchlib, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(run_all, "PUBLISHED_DIR", tmp_path / "published")
    (tmp_path / "results").mkdir()
    write_results(tmp_path / "results", "load")
    problems = run_all.publish_results(["load", "nosuch"])
    assert [p.endswith("run python -m bench.nosuch") for p in problems] == [True]
    assert sorted(p.name for p in (tmp_path / "published").iterdir()) == ["load.json"]
