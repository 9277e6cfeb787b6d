"""The disk budget for visitors' runs (mnist.disk): what it removes, in which order, and who is told."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import open_app, random_mnist

from mnist.checkpoint import add_save_listener, save_run
from mnist.config import TrainConfig
from mnist.digit_map import DIGIT_MAP_FILE
from mnist.disk import (
    BYTES_PER_MB,
    IN_USE_FOLDER,
    enforce_budget,
    measure_runs,
    plan_evictions,
    publish_in_use,
    read_budget,
    removed_runs,
    runs_in_use,
    visitor_bytes,
)
from mnist.errors import MnistError
from mnist.neighbours import TRAIN_FEATURES_FILE
from mnist.runs import list_runs
from mnist.train import run_training


def nobody(name: str) -> bool:  # in_use: no session has any run active
    return False


CACHE_BYTES = 300_000  # a stand-in cache file: larger than a run (~140 KB), as real features are (15-69 MB)


@pytest.fixture(scope="module")
def trained():
    """A fast-preset model trained a few steps on random images: a real run's files and sizes."""
    config = TrainConfig(train_limit=512, batch_size=128)
    return run_training(config, random_mnist(512, 64))


def save(trained, runs_dir: Path, name: str, owner: str, created: str | None = None) -> Path:
    run = save_run(trained.model, trained.config, trained.metrics(), trained.history, runs_dir, name, owner)
    if created is not None:  # saved within one second: give each its own age
        _set_created(run, created)
    return run


def _set_created(run: Path, created: str) -> None:
    import json

    meta = json.loads((run / "meta.json").read_text())
    meta["created"] = created
    (run / "meta.json").write_text(json.dumps(meta))


def add_cache(run: Path, name: str = TRAIN_FEATURES_FILE, size: int = CACHE_BYTES) -> None:
    (run / name).write_bytes(b"\0" * size)


def names(runs_dir: Path) -> set[str]:
    return {run.name for run in list_runs(runs_dir)}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_bytes(runs_dir: Path) -> int:
    return max(u.own_bytes for u in measure_runs(runs_dir))


def test_budget_reads_megabytes_and_refuses_nonsense():
    assert read_budget({}) is None
    assert read_budget({"MNIST_RUNS_MAX_MB": "0"}) is None
    assert read_budget({"MNIST_RUNS_MAX_MB": "2"}) == 2 * BYTES_PER_MB
    assert read_budget({"MNIST_RUNS_MAX_MB": "0.5"}) == BYTES_PER_MB // 2
    for bad in ("two", "-1", "nan"):
        with pytest.raises(MnistError, match="MNIST_RUNS_MAX_MB"):
            read_budget({"MNIST_RUNS_MAX_MB": bad})


def test_oldest_visitor_run_goes_never_the_operators_nor_an_active_one(trained, tmp_path):
    runs = tmp_path / "runs"
    save(trained, runs, "operator-oldest", "", "2026-01-01T00:00:00+00:00")
    save(trained, runs, "active-old", "a" * 32, "2026-01-02T00:00:00+00:00")
    save(trained, runs, "visitor-old", "b" * 32, "2026-01-03T00:00:00+00:00")
    save(trained, runs, "visitor-new", "c" * 32, "2026-01-04T00:00:00+00:00")
    one_run = run_bytes(runs)
    budget = 2 * one_run  # three visitor runs: one must go

    steps = enforce_budget(runs, budget, in_use=lambda name: name == "active-old")

    assert [(s.kind, s.run.name) for s in steps] == [("run", "visitor-old")]
    assert names(runs) == {"operator-oldest", "active-old", "visitor-new"}
    assert visitor_bytes(measure_runs(runs)) <= budget


def test_operator_runs_are_not_counted(trained, tmp_path):
    runs = tmp_path / "runs"
    for k in range(3):
        save(trained, runs, f"operator-{k}", "", f"2026-01-0{k + 1}T00:00:00+00:00")
    save(trained, runs, "visitor", "b" * 32, "2026-01-09T00:00:00+00:00")
    assert enforce_budget(runs, run_bytes(runs) + 1, nobody) == []
    assert len(names(runs)) == 4


def test_caches_go_before_any_run_and_an_active_models_stay(trained, tmp_path):
    runs = tmp_path / "runs"
    old = save(trained, runs, "old", "a" * 32, "2026-01-01T00:00:00+00:00")
    active = save(trained, runs, "active", "b" * 32, "2026-01-02T00:00:00+00:00")
    new = save(trained, runs, "new", "c" * 32, "2026-01-03T00:00:00+00:00")
    for run in (old, active, new):
        add_cache(run)
        add_cache(run, DIGIT_MAP_FILE, 1000)
    budget = visitor_bytes(measure_runs(runs)) - CACHE_BYTES  # one cache's worth over

    steps = enforce_budget(runs, budget, in_use=lambda name: name == "active")

    assert [(s.kind, s.run.name) for s in steps] == [("caches", "old")]
    assert names(runs) == {"old", "active", "new"}
    assert not (old / TRAIN_FEATURES_FILE).exists() and not (old / DIGIT_MAP_FILE).exists()
    assert (active / TRAIN_FEATURES_FILE).exists() and (new / TRAIN_FEATURES_FILE).exists()

    # Far over: every unused run's caches go first, then runs, oldest first; the active one keeps everything.
    steps = enforce_budget(runs, 1, in_use=lambda name: name == "active")
    assert [(s.kind, s.run.name) for s in steps] == [("caches", "new"), ("run", "old"), ("run", "new")]
    assert names(runs) == {"active"} and (active / TRAIN_FEATURES_FILE).exists()


def test_the_run_just_saved_is_kept_even_alone_over_budget(trained, tmp_path):
    runs = tmp_path / "runs"
    save(trained, runs, "old", "a" * 32, "2026-01-01T00:00:00+00:00")
    save(trained, runs, "fresh", "b" * 32, "2026-01-02T00:00:00+00:00")
    enforce_budget(runs, 1, nobody, keep={"fresh"})
    assert names(runs) == {"fresh"}


def test_the_maker_is_told_which_run_went_when_and_why(trained, tmp_path):
    runs, maker = tmp_path / "runs", "a" * 32
    save(trained, runs, "mine", maker, "2026-01-01T00:00:00+00:00")
    save(trained, runs, "theirs", "b" * 32, "2026-01-02T00:00:00+00:00")

    enforce_budget(runs, 2 * BYTES_PER_MB // 100, nobody, keep={"theirs"}, now=datetime(2026, 12, 7, tzinfo=UTC))

    [removal] = removed_runs(runs, maker)
    assert removal.message() == (
        "Your run mine was removed on 2026-12-07 to keep this server's disk under its budget of 0.02 MB "
        "(the oldest runs nobody is using go first)."
    )
    assert removed_runs(runs, "b" * 32) == []
    assert names(runs) == {"theirs"}  # the notes folder is hidden: not a run


def test_plan_counts_a_runs_caches_once(trained, tmp_path):
    runs = tmp_path / "runs"
    add_cache(save(trained, runs, "old", "a" * 32, "2026-01-01T00:00:00+00:00"))
    save(trained, runs, "new", "b" * 32, "2026-01-02T00:00:00+00:00")
    usages = measure_runs(runs)
    budget = visitor_bytes(usages) - CACHE_BYTES - 1  # the cache and one byte more: the old run must go too
    plan = plan_evictions(usages, budget, nobody)
    assert [(s.kind, s.run.name) for s in plan] == [("caches", "old"), ("run", "old")]


def test_processes_publish_the_runs_their_sessions_use(tmp_path):
    runs = tmp_path / "runs"
    publish_in_use(runs, ["a", "b"])
    publish_in_use(runs, ["c"], process="elsewhere-1")  # another host: trusted
    publish_in_use(runs, ["d"], process=f"{__import__('socket').gethostname()}-999999999")  # exited
    assert runs_in_use(runs) == {"a", "b", "c"}
    assert len(list((runs / IN_USE_FOLDER).iterdir())) == 2  # the exited process's file is gone


def test_fifty_visitors_fast_runs_stay_under_2_mb_plus_one_run(trained, tmp_path):
    """A server that trained 50 fast runs for 50 visitors under MNIST_RUNS_MAX_MB=2 keeps its runs folder under
    2 MB, plus at most one run: every save is followed by the budget, as the app's save listener does."""
    runs, budget = tmp_path / "runs", read_budget({"MNIST_RUNS_MAX_MB": "2"})
    remove = add_save_listener(lambda run: enforce_budget(run.parent, budget, nobody, keep={run.name}))
    try:
        for k in range(50):
            save(trained, runs, f"run-{k:02d}", f"{k:032x}")
            _set_created(runs / f"run-{k:02d}", f"2026-12-07T10:{k:02d}:00+00:00")
    finally:
        remove()
    one_run = run_bytes(runs)
    assert one_run > 100_000  # a real fast-preset run folder (~140 KB)
    assert folder_bytes(runs) <= budget + one_run
    kept = sorted(names(runs))
    assert kept[-1] == "run-49" and len(kept) == budget // one_run  # the newest, as many as fit
    assert all(removed_runs(runs, f"{k:032x}") for k in range(50 - len(kept)))  # each maker is told


def test_save_listener_failure_never_fails_the_save(trained, tmp_path):
    def broken(run):
        raise RuntimeError("disk budget broke")

    remove = add_save_listener(broken)
    try:
        run = save(trained, tmp_path / "runs", "saved", "a" * 32)
    finally:
        remove()
    assert run.is_dir()


# --- the app: sessions' active models are spared, makers are told ---------------------------------


@pytest.fixture
def app_server(trained, runs_dir, tmp_path, monkeypatch):
    """An app process with a 0.3 MB budget (two fast runs fit) and no MNIST (the sidebar needs none)."""
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "no-mnist"))
    monkeypatch.setenv("MNIST_RUNS_MAX_MB", "0.3")
    monkeypatch.setattr("mnist.data.download_mnist", lambda root: (_ for _ in ()).throw(OSError("no downloads")))
    return runs_dir


def test_app_spares_active_models_and_tells_the_maker(trained, app_server):
    from mnist.records import ModelRef
    from studio.ownership import owner_of

    runs, maker = app_server, "visitor-token-of-the-disk-tests-01"
    save(trained, runs, "operator", "", "2026-01-01T00:00:00+00:00")
    save(trained, runs, "active", "a" * 32, "2026-01-02T00:00:00+00:00")
    save(trained, runs, "mine", owner_of(maker), "2026-01-03T00:00:00+00:00")
    user = open_app(visitor_token="another-visitor-token-000001", active_model=ModelRef.run("active"))
    assert any("Disk budget: visitors' runs may use 0.3 MB" in c.value for c in user.sidebar.caption)

    # A new run passes the budget: the oldest visitor run is in use, so the next oldest goes.
    save(trained, runs, "fresh", "b" * 32)
    assert names(runs) == {"operator", "active", "fresh"}

    at = open_app(visitor_token=maker)
    [warning] = [w.value for w in at.sidebar.warning if "Your run mine was removed" in w.value]
    assert "to keep this server's disk under its budget of 0.3 MB" in warning
    next(b for b in at.sidebar.button if b.label == "OK").click().run()
    assert not any("Your run mine" in w.value for w in at.sidebar.warning)
    assert removed_runs(runs, owner_of(maker)) == []


# --- caches are compact and give the same answers -------------------------------------------------


@pytest.mark.slow
def test_float16_training_features_give_the_float32_neighbours(mnist_data, tmp_path):
    """The stored features (float16: half the bytes of float32) find the nearest training images of test
    digits as the model's float32 features do: the same list for nearly all digits, and otherwise images as
    near, within float16's precision (measured on 200 digits: 191 same order, 198 same set, the rest swap
    near-ties whose distances differ by 1.3e-4 at most)."""
    import numpy as np

    from mnist.checkpoint import load_checkpoint
    from mnist.ensemble import first_member
    from mnist.inside import extract_features
    from mnist.neighbours import build_neighbour_index, load_neighbour_index, save_neighbour_index

    model, limit = first_member(load_checkpoint().model), 3000
    index = build_neighbour_index(model, mnist_data, limit=limit, threads=1)
    path = tmp_path / TRAIN_FEATURES_FILE
    save_neighbour_index(index, path)
    stored = load_neighbour_index(path, index.key)
    exact = extract_features(model, mnist_data.train_images[:limit], threads=1).astype(np.float64)
    assert path.stat().st_size < exact.size * 2 + limit + 1024  # 2 bytes a feature, 1 a label, the header
    queries = extract_features(model, mnist_data.test_images[:100], threads=1)
    same = 0
    for q in queries:
        distances = np.sqrt(((exact - q) ** 2).sum(1))
        found = [n.index for n in stored.nearest(q)]
        truth = np.argsort(distances, kind="stable")[: len(found)]
        same += found == truth.tolist()
        np.testing.assert_allclose(np.sort(distances[found]), distances[truth], rtol=1e-3)
    assert same >= 0.9 * len(queries)
