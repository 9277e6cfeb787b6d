"""Shareable links (studio.share) and Train's: a link restores the form and the compared runs, wins over the
visitor's remembered choices, refuses bad values in plain words keeping the form's own, and never carries
the visitor's identity (?visitor=)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import open_app
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import save_run
from mnist.config import TrainConfig
from mnist.models import build_model
from mnist.records import RunMetrics
from studio import share
from studio.visitor import VISITOR_PARAM

DIGIT = share.Param("digit", "sample_digit", share.read_choice(range(10)), label="Digit")
WRONG = share.Param("wrong", "only_wrong", share.read_bool, share.write_bool)


@pytest.fixture
def runs(runs_dir, mnist_dir, monkeypatch) -> Path:
    """Real MNIST (never a download) and an empty runs folder: its path."""
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    monkeypatch.setattr("mnist.data.download_mnist", lambda root: pytest.fail("tests never download MNIST"))
    return runs_dir


def open_train(token: str, query: dict[str, str]) -> AppTest:
    """A new session of the browser holding `token`, opening Train's address with `query`."""
    return open_app("train", token=token, query=query, via_sketch=False)


def form(at: AppTest) -> tuple:
    return (
        at.segmented_control(key="cfg_preset").value,
        at.text_input(key="cfg_epochs").value,
        at.text_input(key="cfg_lr").value,
        at.toggle(key="cfg_augment").value,
    )


def shared_link(at: AppTest) -> str:
    return next(c.value for c in at.code if "preset=" in c.value)


# --- the module -------------------------------------------------------------------------------


def test_a_query_gives_its_valid_values_and_a_sentence_per_bad_one():
    values, problems = share.read_query([DIGIT, WRONG], {"digit": "7", "wrong": "maybe", "visitor": "x" * 32})
    assert values == {"sample_digit": 7}
    assert problems == ["The link's wrong “maybe” was not used: it must be true or false."]
    _, problems = share.read_query([DIGIT], {"digit": "12"})
    assert problems == ["The link's Digit “12” was not used: it must be one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9."]
    _, problems = share.read_query([DIGIT], {"digit": "9" * 5000})
    assert "longer than" in problems[0] and len(problems[0]) < 200  # a huge value is not echoed back


def test_a_link_holds_only_the_pages_own_parameters_and_never_the_visitor():
    url = share.link([DIGIT, WRONG], {"sample_digit": 3, "only_wrong": True, VISITOR_PARAM: "t" * 32}, "http://h/x")
    assert url == "http://h/x?digit=3&wrong=true"
    assert share.link([DIGIT], {"sample_digit": None}, "http://h/x") == "http://h/x"
    with pytest.raises(ValueError, match="never shared"):
        share.Param(VISITOR_PARAM, "visitor_token", str)


# --- Train ------------------------------------------------------------------------------------


def test_a_shared_link_restores_the_form_and_wins_over_remembered_choices(runs):
    token = "visitor-token-of-share-links-001"
    mine = open_train(token, {})
    mine.segmented_control(key="cfg_preset").set_value("best").run()
    mine.text_input(key="cfg_epochs").set_value("7").run()
    mine.run()  # a change is remembered at the next run's start

    opened = open_train(token, {"preset": "tutorial", "epochs": "3", "augment": "true"})
    assert form(opened) == ("tutorial", "3", "0.001", True)  # lr: the tutorial preset's
    assert not opened.warning
    assert VISITOR_PARAM not in shared_link(opened)


def test_the_link_shown_opens_the_same_setup_without_the_visitors_identity(runs):
    token = "visitor-token-of-share-links-002"
    at = open_train(token, {VISITOR_PARAM: token})  # a visitor whose browser refuses cookies
    at.segmented_control(key="cfg_preset").set_value("tutorial").run()
    at.text_input(key="cfg_lr").set_value("0.005").run()
    link = shared_link(at)
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert query == {"preset": "tutorial", "lr": "0.005"}  # only what differs from the preset
    assert token not in link and VISITOR_PARAM not in query

    stranger = "visitor-token-of-share-links-003"
    other = open_train(stranger, query)
    assert form(other) == ("tutorial", "10", "0.005", False)
    assert other.session_state["visitor_token"] == stranger  # opening a link never makes you its sender


def test_bad_values_get_a_plain_message_and_the_form_keeps_its_own(runs):
    at = open_train("visitor-token-of-share-links-004", {"preset": "huge", "epochs": "0", "optimizer": "magic"})
    assert form(at) == ("fast", "1", "0.02", False)
    assert at.selectbox(key="cfg_optimizer").value == "adam"
    shown = "\n".join(w.value for w in at.warning)
    assert "The link's Preset “huge” was not used: it must be one of fast, best, tutorial." in shown
    assert "The link's Epochs “0” was not used: it must be a whole number between 1 and 200." in shown
    assert "The link's Optimizer “magic”" in shown
    at.run()
    assert len(at.warning) == 1  # still there after the page's next runs, until the visitor dismisses it
    at.button(key="train_link_problems_dismiss").click().run()
    assert not at.warning


def test_a_link_shows_a_saved_runs_curves(runs):
    for name in ("alpha", "beta", "gamma"):
        save_run(build_model("mlp"), TrainConfig(arch="mlp"), RunMetrics(test_accuracy=0.9), None, runs, name)
    at = open_train("visitor-token-of-share-links-005", {"runs": "beta"})
    assert at.multiselect(key="compare_runs").value == ["beta"]
    assert any(c.value.endswith("?runs=beta") for c in at.code)
    gone = open_train("visitor-token-of-share-links-006", {"runs": "beta,nope"})
    assert "there is no saved run named nope here" in "\n".join(w.value for w in gone.warning)


# --- Explore's filters ------------------------------------------------------------------------


def open_explore(token: str, query: dict[str, str]) -> AppTest:
    return open_app("explore", token=token, query=query, via_sketch=False)


def explore_link(at: AppTest) -> dict[str, str]:
    link = next(c.value for c in at.code if "split=" in c.value)
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def test_explores_link_restores_its_filters_any_included_and_refuses_bad_ones(runs):
    token = "visitor-token-of-share-links-006"
    mine = open_explore(token, {})
    mine.selectbox(key="sample_digit").set_value(3).run()  # the opener's own filter: a link must override it
    mine.run()

    query = {"split": "test", "digit": "any", "true": "4", "predicted": "9", "order": "least confident first"}
    opened = open_explore(token, query)
    assert opened.session_state["sample_split"] == "test"
    assert opened.session_state["sample_digit"] is None  # "any" is a value a link sets
    assert (opened.session_state["mistake_true"], opened.session_state["mistake_pred"]) == (4, 9)
    shown = explore_link(opened)
    assert {k: shown[k] for k in query} == query and VISITOR_PARAM not in shown

    bad = open_explore("visitor-token-of-share-links-007", {"true": "12", "split": "validation"})
    warned = "\n".join(w.value for w in bad.warning)
    assert "The link's True digit “12” was not used: it must be any or one of 0, 1, 2" in warned
    assert "The link's Split “validation” was not used" in warned
    assert bad.session_state["sample_split"] == "train"  # the page's own
