"""Visitors own their runs: the token, the operator's policy, and who may rename or delete what."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import open_app
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import META_FILE, load_checkpoint, save_run
from mnist.config import TrainConfig
from mnist.errors import CheckpointError, MnistError
from mnist.models import build_model
from mnist.records import ModelRef, RunMetrics, RunRecord
from mnist.runs import list_runs, rename_run
from studio import ownership
from studio.ownership import Policy, access, owner_of, read_policy

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


def make_run(runs_dir: Path, name: str, token: str | None) -> Path:
    """A small saved run made by the visitor holding `token` (None: made on the command line)."""
    owner = owner_of(token) if token else ""
    return save_run(
        build_model("mlp"), TrainConfig(arch="mlp"), RunMetrics(test_accuracy=0.9), None, runs_dir, name, owner
    )


# --- the library and the rules -----------------------------------------------------------------


def test_owner_is_a_one_way_digest_saved_with_the_run(tmp_path):
    path = make_run(tmp_path, "mine", ALICE)
    saved = json.loads((path / META_FILE).read_text())
    assert saved["owner"] == owner_of(ALICE) != owner_of(BOB)
    assert ALICE not in (path / META_FILE).read_text()  # the secret itself is never written
    assert ALICE.encode() not in (path / "model.safetensors").read_bytes()
    assert load_checkpoint(path).record.provenance.owner == owner_of(ALICE)
    assert "owner" not in json.loads((make_run(tmp_path, "cli", None) / META_FILE).read_text())


def test_owner_must_be_text():
    meta = json.loads(build_meta_json())
    meta["owner"] = {"evil": 1}
    with pytest.raises(CheckpointError, match="'owner' must be a str"):
        RunRecord.from_dict(meta, "upload")


def build_meta_json() -> str:
    from mnist.checkpoint import build_record

    return build_record(build_model("mlp"), TrainConfig(arch="mlp"), RunMetrics(), "x").to_json()


@pytest.mark.parametrize(
    ("value", "policy"),
    [("", Policy.SHARED), ("shared", Policy.SHARED), (" Private ", Policy.PRIVATE), ("no-delete", Policy.NO_DELETE)],
)
def test_policy_from_the_environment(value, policy):
    assert read_policy({ownership.POLICY_ENV: value}) is policy
    assert read_policy({}) is Policy.SHARED


def test_unknown_policy_names_the_choices():
    with pytest.raises(MnistError, match="shared, private, no-delete"):
        read_policy({ownership.POLICY_ENV: "everyone-deletes"})


@pytest.mark.parametrize(
    ("policy", "maker", "visible", "can_change", "made_by"),
    [
        (Policy.SHARED, ALICE, True, True, "you"),
        (Policy.SHARED, BOB, True, False, "another visitor"),
        (Policy.SHARED, None, True, False, "the operator"),
        (Policy.PRIVATE, ALICE, True, True, "you"),
        (Policy.PRIVATE, BOB, False, False, "another visitor"),
        (Policy.PRIVATE, None, True, False, "the operator"),
        (Policy.NO_DELETE, ALICE, True, False, "you"),
        (Policy.NO_DELETE, BOB, True, False, "another visitor"),
    ],
)
def test_access_rules(tmp_path, policy, maker, visible, can_change, made_by):
    make_run(tmp_path, "r", maker)
    (run,) = list_runs(tmp_path)
    rule = access(run, owner_of(ALICE), policy)  # as Alice sees it
    assert (rule.visible, rule.can_change, rule.made_by) == (visible, can_change, made_by)
    assert bool(rule.reason) == (not can_change)  # every refusal says why


def test_tokens_are_random_and_checked():
    tokens = {ownership.new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(ownership.valid_token(t) for t in tokens)
    for bad in (None, "", "admin", "x" * 200, "a b c d e f g h i j k l m n", 12345):
        assert ownership.valid_token(bad) is None


def test_rename_keeps_the_model_and_updates_its_description(tmp_path):
    path = make_run(tmp_path, "old-name", ALICE)
    before = load_checkpoint(path)
    new = rename_run(tmp_path, "old-name", "new-name")
    after = load_checkpoint(new)
    assert [r.name for r in list_runs(tmp_path)] == ["new-name"] and not path.exists()
    assert after.record.name == "new-name" and after.record.provenance.owner == owner_of(ALICE)
    assert json.loads((new / META_FILE).read_text())["name"] == "new-name"
    for key, tensor in before.model.state_dict().items():
        assert tensor.equal(after.model.state_dict()[key])
    make_run(tmp_path, "other", ALICE)
    with pytest.raises(CheckpointError, match="already exists"):
        rename_run(tmp_path, "new-name", "other")
    with pytest.raises(CheckpointError, match="invalid run name"):
        rename_run(tmp_path, "new-name", "../escape")


# --- the app ------------------------------------------------------------------------------------


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("MNIST_RUNS_DIR", str(runs))
    monkeypatch.setattr("studio.registry.BUNDLED_DIR", tmp_path / "no-bundled-model")  # runs are the only models
    return runs


def open_train(token: str | None = None, query: str | None = None) -> AppTest:
    return open_app("train", token=token, query=None if query is None else {"visitor": query})


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


@pytest.mark.slow
def test_the_maker_can_delete_and_another_visitor_cannot(runs_dir):
    make_run(runs_dir, "alices-run", ALICE)
    bob = open_train(BOB)
    assert "Delete…" not in labels(bob)
    assert any("another visitor" in c.value for c in bob.caption)
    bob.session_state["confirm_delete"] = "alices-run"  # even a forged click is refused by the server
    bob.run()
    assert "Yes, delete" not in labels(bob)
    assert [r.name for r in list_runs(runs_dir)] == ["alices-run"]

    alice = open_train(ALICE)
    assert any("made by you" in c.value for c in alice.caption)
    next(b for b in alice.button if b.label == "Delete…").click().run()
    next(b for b in alice.button if b.label == "Yes, delete").click().run()
    assert list_runs(runs_dir) == []


def test_a_run_in_use_by_another_visitor_does_not_vanish_silently(runs_dir):
    make_run(runs_dir, "alices-run", ALICE)
    make_run(runs_dir, "bobs-run", BOB)
    bob = open_train(BOB)
    bob.session_state["active_model"] = ModelRef.run("alices-run")
    bob.run()
    rename_run(runs_dir, "alices-run", "alices-renamed")  # what Alice's Rename does
    bob.run()
    notice = [w.value for w in bob.sidebar.warning]
    assert notice and "alices-run" in notice[0] and "You now have" in notice[0], notice
    assert bob.session_state["active_model"] != ModelRef.run("alices-run")


def test_private_policy_hides_other_visitors_runs(runs_dir, monkeypatch):
    monkeypatch.setenv(ownership.POLICY_ENV, "private")
    make_run(runs_dir, "alices-run", ALICE)
    make_run(runs_dir, "operators-run", None)
    bob = open_train(BOB)
    assert bob.selectbox(key="manage_run").options == ["operators-run"]
    assert any("only their own" in c.value for c in bob.caption)
    alice = open_train(ALICE)
    assert sorted(alice.selectbox(key="manage_run").options) == ["alices-run", "operators-run"]


def test_no_delete_policy_and_a_misspelt_one_switch_deleting_off(runs_dir, monkeypatch):
    make_run(runs_dir, "alices-run", ALICE)
    for value, error in (("no-delete", False), ("delete-everything", True)):
        monkeypatch.setenv(ownership.POLICY_ENV, value)
        alice = open_train(ALICE)
        assert "Delete…" not in labels(alice) and "Rename" not in labels(alice)
        assert any("switched off" in c.value for c in alice.caption)
        assert bool([e for e in alice.error if "misconfigured" in e.value]) == error


def test_the_maker_renames_a_run(runs_dir):
    make_run(runs_dir, "alices-run", ALICE)
    alice = open_train(ALICE)
    alice.text_input(key="rename_to").input("digits-v2")
    next(b for b in alice.button if b.label == "Rename").click().run()
    assert not alice.exception and not alice.error, [e.value for e in alice.error]
    assert [r.name for r in list_runs(runs_dir)] == ["digits-v2"]
    assert alice.selectbox(key="manage_run").value == "digits-v2"


def test_the_token_comes_from_the_address_and_a_bad_one_is_replaced(runs_dir):
    make_run(runs_dir, "alices-run", ALICE)
    alice = open_train(query=ALICE)  # a reload: the address still carries ?visitor=
    assert alice.session_state["visitor_token"] == ALICE
    assert "Delete…" in labels(alice)
    stranger = open_train(query="admin")
    token = stranger.session_state["visitor_token"]
    assert token != "admin" and ownership.valid_token(token)
    assert stranger.query_params["visitor"] == [token] or stranger.query_params["visitor"] == token
