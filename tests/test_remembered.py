"""A visitor's choices remembered on the server (studio.remembered): a new session of the same visitor (a
reload, a second tab) starts with the model, the Train form and Explore's filters they left; the pages
never show the server's folders; counted nouns agree."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from helpers import PAGES, open_app
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint, save_run
from mnist.config import TrainConfig
from mnist.models import build_model
from mnist.records import ModelRef, RunMetrics
from mnist.train import evaluate
from studio.ownership import owner_of
from studio.remembered import MAX_TEXT_CHARS, Choices, ChoiceStore, worth_keeping

TIMEOUT = 180  # seconds per script run: the first Explore run evaluates a model on 10,000 images
VISITOR = "visitor-token-of-remembered-0001"  # one browser: each AppTest below is a new session of it
RUN = "kept-run"


@pytest.fixture
def visitors_run(with_data) -> Path:
    """A saved run of VISITOR's (an untrained MLP: quick to evaluate)."""
    metrics = RunMetrics(test_accuracy=0.1)
    return save_run(build_model("mlp"), TrainConfig(arch="mlp"), metrics, None, with_data, RUN, owner=owner_of(VISITOR))


def session(page: str, token: str = VISITOR) -> AppTest:
    """A new Streamlit session of the browser holding `token`, on `page`."""
    return open_app(page, token=token, timeout=TIMEOUT)


def visible_text(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "success", "error", "title", "header", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


# --- the store --------------------------------------------------------------------------------


def test_the_store_forgets_the_least_recently_seen_visitor_first():
    store = ChoiceStore(capacity=2)
    store.remember("a", {"active_model": ModelRef.run("x")})
    store.remember("b", {"sketch_device": "cpu"})
    store.recall("a")  # a was seen after b
    store.remember("c", {"cfg_preset": "best"})
    assert len(store) == 2
    assert store.recall("b") == Choices()  # forgotten
    assert store.recall("a").model == ModelRef.run("x") and store.recall("c").train_form == {"cfg_preset": "best"}


def test_changes_merge_and_two_threads_lose_nothing():
    store = ChoiceStore()
    store.remember("a", {"cfg_preset": "best", "cfg_epochs": "7"})
    store.remember("a", {"cfg_epochs": "9", "mistake_true": 3})
    choices = store.recall("a")
    assert choices.train_form == {"cfg_preset": "best", "cfg_epochs": "9"}
    assert choices.explore_filters == {"mistake_true": 3}

    def remember_many(prefix: str) -> None:
        for k in range(200):
            store.remember("b", {f"cfg_{prefix}{k}": k})

    threads = [threading.Thread(target=remember_many, args=(p,)) for p in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.recall("b").train_form) == 400


def test_the_guides_flags_are_kept_but_never_copied_into_a_session():
    store = ChoiceStore()
    store.remember("a", {"guide_draw": True, "cfg_epochs": "3"})
    store.remember("a", {"guide_dismissed": True})
    store.remember("a", {"guide_dismissed": False})
    choices = store.recall("a")
    assert choices.guide == {"guide_draw": True, "guide_dismissed": False}
    assert "guide_draw" not in choices.as_state()  # studio.guide reads the store: every tab sees a new tick


def test_uploads_and_long_texts_are_not_kept():
    assert worth_keeping("active_model", ModelRef.run("mine")) and worth_keeping("active_model", ModelRef.bundled())
    assert not worth_keeping("active_model", ModelRef.upload("0123456789abcdef"))  # gone with its session
    assert worth_keeping("new_run_name", "x" * MAX_TEXT_CHARS)
    assert not worth_keeping("new_run_name", "x" * (MAX_TEXT_CHARS + 1))


# --- through the app --------------------------------------------------------------------------


def test_a_new_session_of_the_visitor_restores_model_form_and_filters(visitors_run):
    first = session("train")
    first.sidebar.selectbox(key="active_model").set_value(ModelRef.run(RUN)).run()
    first.segmented_control(key="cfg_preset").set_value("best").run()
    first.text_input(key="cfg_epochs").set_value("7").run()
    first.switch_page(PAGES["explore"]).run()
    first.selectbox(key="mistake_true").set_value(3).run()
    first.switch_page(PAGES["sketch"]).run()  # one more run: the last change is saved at the next run's start

    again = session("train")  # a reload: a new session, the same cookie
    assert again.session_state["active_model"] == ModelRef.run(RUN)
    assert again.segmented_control(key="cfg_preset").value == "best"
    assert again.text_input(key="cfg_epochs").value == "7"
    assert again.toggle(key="cfg_augment").value is True  # the rest of the best preset
    again.switch_page(PAGES["explore"]).run()
    assert again.selectbox(key="mistake_true").value == 3

    stranger = session("train", token="visitor-token-of-someone-else-02")
    assert stranger.session_state["active_model"] == ModelRef.bundled()
    assert stranger.segmented_control(key="cfg_preset").value == "fast"


def test_a_remembered_model_that_is_gone_falls_back_with_the_notice(visitors_run):
    first = session("sketch")
    first.sidebar.selectbox(key="active_model").set_value(ModelRef.run(RUN)).run()
    first.run()
    shutil.rmtree(visitors_run)
    again = session("sketch")
    notice = "\n".join(w.value for w in again.sidebar.warning)
    assert f"The model you were using ({RUN}) was deleted or renamed" in notice
    assert again.session_state["active_model"] == ModelRef.bundled()


@pytest.mark.parametrize(
    ("forged", "notice"),
    [
        ("Bundled: ensemble of 4 · cnn-bn 99.75%", False),
        ("", False),
        (ModelRef.run("../../etc"), True),
        (ModelRef.upload("x"), True),
    ],
)
def test_a_value_that_names_no_model_falls_back_without_an_error(with_data, forged, notice):
    """A stale or forged menu value (a replayed old label, a hand-made message: the menu gives back its text)
    is no crash; a model that is not there reads as a model that is gone (the usual notice)."""
    at = open_app(token="visitor-token-forging-a-value-03", active_model=forged, timeout=TIMEOUT)
    assert at.session_state["active_model"] == ModelRef.bundled()
    assert bool([w.value for w in at.sidebar.warning if "deleted or renamed" in w.value]) == notice


@pytest.mark.parametrize("page", list(PAGES))
def test_no_page_shows_the_servers_folders(with_data, mnist_dir, page):
    at = session(page)
    shown = visible_text(at) + "\n".join(c.value for c in at.sidebar.caption)
    assert "MNIST: available" in shown
    for folder in (str(mnist_dir.resolve()), str(with_data.resolve()), str(mnist_dir), str(with_data)):
        assert folder not in shown, folder


@pytest.mark.slow
def test_one_mistake_is_one_image(with_data, mnist_data):
    if not (BUNDLED_DIR / WEIGHTS_FILE).is_file():
        pytest.fail("the bundled model is part of the checkout: mnist/assets/default-model/")
    result = evaluate(load_checkpoint(BUNDLED_DIR).model, mnist_data.test_images, mnist_data.test_labels)
    pairs = {}
    for m in result.misclassified():
        pairs[(m["label"], m["predicted"])] = pairs.get((m["label"], m["predicted"]), 0) + 1
    true, predicted = next(pair for pair, n in pairs.items() if n == 1)
    at = session("explore")
    at.selectbox(key="mistake_true").set_value(true).run()
    at.selectbox(key="mistake_pred").set_value(predicted).run()
    assert "**1 misclassified test image** (" in visible_text(at)
