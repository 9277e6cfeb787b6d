"""The Streamlit app, driven headless through AppTest: every page, a real training run, the explorer, sketching.

AppTest cannot draw on the canvas component: the Sketch page uses the array stored in
st.session_state["sketch_canvas_override"] (studio.sketch_state.CANVAS_OVERRIDE_KEY) instead of the drawing, and
these tests put real MNIST test digits there, scaled up onto a 280x280 RGBA canvas.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import PAGES, digits_side_by_side, open_app
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint, save_run
from mnist.config import FIELD_SPECS, PRESETS, TrainConfig, range_text
from mnist.cost import MAX_MINUTES_ENV
from mnist.device import resolve_device, resolve_precision
from mnist.errors import MnistError
from mnist.jobs import REQUESTS_ENV
from mnist.records import ModelRef
from mnist.runs import checkpoint_file_bytes, list_runs
from mnist.train import evaluate
from studio.compare import plain
from studio.ownership import owner_of
from studio.views import digit_canvas

CANVAS_KEY = "sketch_canvas_override"
ACCURACY_RE = re.compile(r"test accuracy (\d{1,3}\.\d{2})%", re.IGNORECASE)


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt to download MNIST is recorded and fails at once: tests never use the network."""
    calls = []

    def fake_download(root):
        calls.append(root)
        raise OSError("downloads are disabled in tests")

    monkeypatch.setattr("mnist.data.download_mnist", fake_download)
    return calls


@pytest.fixture
def with_data(monkeypatch, mnist_dir, runs_dir, no_download):
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    return runs_dir


@pytest.fixture
def without_data(monkeypatch, tmp_path, runs_dir, no_download):
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    monkeypatch.setenv("MNIST_DATA_DIR", str(empty))
    return no_download


@pytest.fixture(scope="session")
def fallback_run(mnist_data, tmp_path_factory) -> Path:
    """A quickly trained run, for when the bundled model is not in the checkout."""
    from mnist.config import TrainConfig
    from mnist.train import run_training

    config = TrainConfig(train_limit=6_000, epochs=1)
    done = run_training(config, mnist_data)
    return save_run(done.model, config, done.metrics(), done.history, tmp_path_factory.mktemp("runs"), "fallback")


@pytest.fixture
def model_key(request, with_data) -> ModelRef:
    """The bundled model, else a freshly trained run copied into this test's runs folder."""
    if (BUNDLED_DIR / WEIGHTS_FILE).is_file():
        return ModelRef.bundled()
    run = request.getfixturevalue("fallback_run")
    shutil.copytree(run, with_data / run.name)
    return ModelRef.run(run.name)


def model_path(ref: ModelRef, runs_dir: Path) -> Path:
    return BUNDLED_DIR if ref.kind == "bundled" else runs_dir / ref.name


def texts(at: AppTest) -> str:
    """Every piece of visible text, for searching."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "success", "error", "title", "header", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return matches[0]


def wait_for(at: AppTest, condition, timeout: float = 240.0, what: str = "condition"):
    """Rerun the app (as the live fragment would) until condition(at) is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        result = condition(at)
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; page text:\n{texts(at)}")


# --- every page renders -----------------------------------------------------------------------


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p == "explore" else p for p in PAGES])
def test_pages_render_with_data(with_data, page):
    at = open_app(page)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == {"sketch": "Sketch a digit", "train": "Train a model", "explore": "Explore"}[page]
    sidebar = "\n".join(c.value for c in at.sidebar.caption)
    assert "Device: CPU" in sidebar or "Device: GPU" in sidebar
    assert "MNIST: available" in sidebar


@pytest.mark.slow
def test_explore_shows_the_data_set(with_data, mnist_data):
    at = open_app("explore")
    means = [img.captions[0] for img in at.image[:10]]  # "digit · count" under each mean image
    counts = np.bincount(mnist_data.train_labels.numpy(), minlength=10)
    assert means == [f"{d} · {counts[d]:,}" for d in range(10)]
    samples = at.image[10].captions  # the first page of training samples, label under each
    assert samples == [f"#{i} · {int(label)}" for i, label in enumerate(mnist_data.train_labels[:60])]  # index, label

    at.selectbox(key="sample_digit").set_value(3).run()
    at.segmented_control(key="sample_split").set_value("test").run()
    samples = at.image[10].captions
    assert samples and {c.split(" · ")[1] for c in samples} == {"3"}
    first = int((mnist_data.test_labels == 3).nonzero()[0])
    assert samples[0] == f"#{first} · 3"  # the # that Open in Sketch takes
    assert f"of {int((mnist_data.test_labels == 3).sum()):,}" in texts(at)


@pytest.mark.parametrize("page", list(PAGES))
def test_pages_render_without_data(without_data, page):
    at = open_app(page)
    assert not at.error, [e.value for e in at.error]
    if page == "sketch":
        assert "MNIST" not in "\n".join(w.value for w in at.warning)  # sketching needs no data set
    else:
        message = "\n".join(w.value for w in at.warning)
        assert "MNIST is not available" in message
        assert "MNIST_DATA_DIR" in message and "./data" in message
    if page == "train":
        assert button(at, "Start training").disabled
    assert "MNIST: not found" in "\n".join(c.value for c in at.sidebar.caption)
    at.run()
    # One (failing) download attempt at most, remembered: not one per rerun. Sketch never needs MNIST.
    assert len(without_data) == (0 if page == "sketch" else 1)


# --- training through the page's own widgets -------------------------------------------------


def start_training(images: int, epochs: int, **state) -> AppTest:
    """Open Train, set the run's size through the form's own widgets and press Start."""
    at = open_app("train", **state)
    at.text_input(key="cfg_train_limit").set_value(str(images))
    at.text_input(key="cfg_epochs").set_value(str(epochs))
    at.run()
    button(at, "Start training").click().run()
    return at


@pytest.mark.slow
def test_short_training_run_completes_and_reports_metrics(with_data):
    at = start_training(images=2000, epochs=1)
    assert not at.exception

    summary = wait_for(at, lambda a: [s.value for s in a.success if "Finished" in s.value], what="the run to finish")
    match = ACCURACY_RE.search(summary[0])
    assert match, summary
    accuracy = float(match.group(1))
    assert 30.0 < accuracy <= 100.0  # 15 steps on 2,000 images: far above chance (10%)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{accuracy:.2f}%"

    runs = list_runs(with_data)
    assert len(runs) == 1
    assert runs[0].record.config.train_limit == 2000
    assert round(runs[0].record.metrics.test_accuracy * 100, 2) == accuracy
    assert runs[0].name in at.dataframe[-1].value["run"].tolist()  # the history table lists it

    use = [b for b in at.button if b.label == "Use this model in Sketch and Explore"]
    if use:  # absent when the new run is already active (the only model, without the bundled one)
        use[0].click().run()
    assert at.session_state["active_model"] == ModelRef.run(runs[0].name)
    assert runs[0].name in at.sidebar.selectbox(key="active_model").format_func(ModelRef.run(runs[0].name))


def test_preset_fills_the_form_and_values_survive_a_page_switch(with_data):
    at = open_app("train")
    best = PRESETS["best"]
    fast = PRESETS["fast"]  # the form starts from it: the best preset must change what the test reads
    assert best.arch != fast.arch and best.epochs != fast.epochs and best.augment != fast.augment
    at.segmented_control(key="cfg_preset").set_value("best").run()
    assert at.selectbox(key="cfg_arch").value == best.arch
    assert at.text_input(key="cfg_epochs").value == str(best.epochs)
    assert at.toggle(key="cfg_augment").value is True
    assert best.arch in at.expander[0].label and "parameters" in at.expander[0].label  # the layer summary
    assert at.expander[0].dataframe[0].value["type"].tolist()[0] == "Conv2d"

    at.text_input(key="cfg_epochs").set_value("7").run()
    at.switch_page(PAGES["sketch"]).run()
    at.switch_page(PAGES["train"]).run()
    assert at.text_input(key="cfg_epochs").value == "7"
    assert at.selectbox(key="cfg_arch").value == best.arch


def test_precision_menu_says_what_auto_means_on_this_machine(with_data):
    at = open_app("train")
    menu = at.selectbox(key="cfg_precision")
    assert menu.value == "auto" and menu.options[0].startswith("auto (")
    here = str(resolve_precision("auto", resolve_device("auto"))).removeprefix("torch.")
    assert menu.options[0] == f"auto ({here} here)"  # short: a half column shows about 20 characters
    assert "bfloat16" in menu.options[1] and menu.options[2] == "float32"
    menu.set_value("float32").run()
    assert at.selectbox(key="cfg_precision").value == "float32"
    assert not at.error  # a valid choice: nothing refused


def test_invalid_settings_are_refused(with_data):
    at = open_app("train")
    at.selectbox(key="cfg_optimizer").set_value("sgd").run()
    at.text_input(key="cfg_momentum").set_value("0").run()
    errors = [e.value for e in at.error]
    assert any("Nesterov" in e for e in errors), errors
    assert button(at, "Start training").disabled

    at.checkbox(key="cfg_nesterov").uncheck().run()
    batch = PRESETS["fast"].batch_size
    at.text_input(key="cfg_train_limit").set_value("100").run()  # smaller than one batch
    errors = [e.value for e in at.error]
    assert any(f"batch size ({batch}) is larger than the 100 training images" in e for e in errors), errors
    assert button(at, "Start training").disabled


def test_form_widgets_follow_the_field_specs(with_data):
    at = open_app("train")
    numbers = {w.key: w for w in at.text_input if w.key.startswith("cfg_")}  # numbers are text, parsed by the page
    for spec in FIELD_SPECS.values():  # choose what each conditional field needs (SGD's momentum, Adam's betas)
        if spec.only_with is not None:
            other, values = spec.only_with
            at.selectbox(key=f"cfg_{other}").set_value(values[0]).run()
            numbers.update({w.key: w for w in at.text_input if w.key.startswith("cfg_")})
    shown = {name: spec for name, spec in FIELD_SPECS.items() if spec.in_form and spec.kind in ("int", "float")}
    assert set(numbers) == {f"cfg_{name}" for name in shown}  # log_every is CLI-only
    for name, spec in shown.items():
        widget = numbers[f"cfg_{name}"]
        assert widget.label == spec.label
        assert range_text(spec) in widget.proto.help  # the tooltip gives the range the messages refuse by


@pytest.mark.slow
def test_queued_run_can_be_cancelled_and_running_run_stopped(with_data, monkeypatch):
    monkeypatch.setenv(REQUESTS_ENV, "2")  # the operator allows two requests per visitor: one can wait
    at = start_training(images=20_000, epochs=5)
    wait_for(at, lambda a: a.get("progress"), what="the first run to start")
    button(at, "Start training").click().run()  # the pool has one slot: this one waits

    queued = "\n".join(i.value for i in at.info)
    assert "Queued: position 1" in queued, queued
    button(at, "Cancel this run").click().run()
    wait_for(at, lambda a: "Cancelled before it started" in texts(a), what="the queued run to be withdrawn")

    runs = next(s for s in at.selectbox if s.label == "Your runs")  # its key changes with the runs' states
    runs.select_index(1).run()  # back to the first run, still training
    wait_for(at, lambda a: a.get("progress") and "step" in a.get("progress")[0].text, what="steps")
    button(at, "Stop (keeps the model trained so far)").click().run()
    warning = wait_for(
        at, lambda a: [w.value for w in a.warning if w.value.startswith("Stopped after")], what="the stop"
    )
    assert ACCURACY_RE.search(warning[0]), warning

    runs = list_runs(with_data)
    assert len(runs) == 1  # the cancelled run never started, so it saved nothing
    assert runs[0].record.metrics.stopped is True
    assert runs[0].record.metrics.epochs_done < 5


@pytest.mark.slow
def test_five_starts_leave_one_request_and_a_second_visitor_is_next(with_data):
    at = start_training(images=20_000, epochs=5)
    for _ in range(4):
        button(at, "Start training").click().run()
        refusal = [e.value for e in at.error if e.value.startswith("Not started")]
        assert refusal and "you already have a run waiting or training" in refusal[0], texts(at)
    stops = [b for b in at.button if b.label.startswith("Stop job-")]  # the refusal offers the run's Stop
    assert len(stops) == 1, [b.label for b in at.button]
    assert "Your runs" not in {w.label for w in at.selectbox}  # one run of theirs: no "Your runs" menu

    other = start_training(images=2000, epochs=1, visitor_token="another-visitor")
    queued = "\n".join(i.value for i in other.info)
    assert "Queued: position 1" in queued or other.get("progress"), texts(other)  # next, not 5th in line
    stops[0].click().run()
    wait_for(other, lambda a: [s.value for s in a.success if "Finished" in s.value], what="the second visitor's run")


@pytest.mark.slow
def test_the_best_preset_is_refused_over_a_five_minute_cap_with_its_estimate(with_data, monkeypatch):
    monkeypatch.setenv(MAX_MINUTES_ENV, "5")  # the best preset trains for 8-26 min on the CPUs measured
    at = open_app("train")
    at.segmented_control(key="cfg_preset").set_value("best").run()
    refusal = wait_for(
        at, lambda a: [e.value for e in a.error if "over its cap of 5 min" in e.value], what="the estimate"
    )
    minutes = int(re.search(r"would train for about (\d+) min on this server \(5,616 steps", refusal[0]).group(1))
    assert minutes > 5
    assert "lower the epochs, the training images or the seeds" in refusal[0]
    assert button(at, "Start training").disabled
    at.text_input(key="cfg_train_limit").set_value("1280")
    at.text_input(key="cfg_epochs").set_value("1").run()  # 10 steps, not 5,616: under the cap
    assert not [e.value for e in at.error if "over its cap" in e.value], texts(at)
    assert not button(at, "Start training").disabled
    assert "this server's cap is 5 min per request" in texts(at)


def test_failed_run_shows_its_error(with_data, monkeypatch):
    def broken_training(config, data, stop):
        raise MnistError("the data set is haunted")
        yield  # a generator, like the real one

    monkeypatch.setattr("mnist.jobs.train", broken_training)
    at = open_app("train")
    button(at, "Start training").click().run()
    errors = wait_for(at, lambda a: [e.value for e in a.error if "haunted" in e.value], what="the failure")
    assert errors == ["Training failed: the data set is haunted"]
    assert list_runs(with_data) == []


# --- run history ------------------------------------------------------------------------------


VISITOR = "visitor-token-of-the-tests-0001"  # a browser's token (studio.ownership), set as session state


@pytest.fixture
def saved_run(request, with_data) -> str:
    """The name of a run made by VISITOR in this test's runs folder: the bundled model, else the fallback run."""
    source = None if (BUNDLED_DIR / WEIGHTS_FILE).is_file() else request.getfixturevalue("fallback_run")
    ckpt = load_checkpoint(source)
    save_run(ckpt.model, ckpt.config, ckpt.record.metrics, None, with_data, "saved-run", owner=owner_of(VISITOR))
    return "saved-run"


def test_saved_run_download_and_delete_with_confirmation(saved_run, with_data, monkeypatch):
    monkeypatch.setattr("studio.registry.BUNDLED_DIR", with_data / "no-bundled-model")  # the run is the only model
    name = saved_run
    model_key = ModelRef.run(name)
    at = open_app("train", visitor_token=VISITOR)
    assert at.selectbox(key="manage_run").value == name
    download = at.get("download_button")[0]
    assert download.proto.label == "Download model.safetensors"

    assert at.session_state["active_model"] == model_key  # the only model there is: the default
    assert button(at, "Active model").disabled

    button(at, "Delete…").click().run()
    assert any(name in w.value for w in at.warning)
    assert list_runs(with_data)  # nothing deleted before the confirmation
    button(at, "Yes, delete").click().run()
    assert not at.exception
    assert list_runs(with_data) == []
    assert "No saved runs yet" in "\n".join(i.value for i in at.info)


# --- the explorer -----------------------------------------------------------------------------


@pytest.mark.slow
def test_explorer_shows_the_models_misclassifications(model_key, with_data, mnist_data):
    at = open_app("explore", active_model=model_key)
    assert not at.error, [e.value for e in at.error]

    model = load_checkpoint(model_path(model_key, with_data)).model
    result = evaluate(model, mnist_data.test_images, mnist_data.test_labels)
    mistakes = result.misclassified()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{result.accuracy * 100:.2f}%"
    assert metrics["Mistakes"] == f"{len(mistakes):,} of 10,000"
    assert f"**{len(mistakes):,} misclassified test images**" in texts(at)

    gallery = at.image[-1].captions
    top = mistakes[0]  # most confident mistake first
    assert gallery[0].startswith(f"#{top['index']}: {top['label']}→{top['predicted']} ")
    assert len(gallery) == min(40, len(mistakes))

    # The keyboard fallback of a confusion-matrix click: true and predicted digit.
    at.selectbox(key="mistake_true").set_value(top["label"]).run()
    at.selectbox(key="mistake_pred").set_value(top["predicted"]).run()
    pair = [m for m in mistakes if (m["label"], m["predicted"]) == (top["label"], top["predicted"])]
    noun = "image" if len(pair) == 1 else "images"  # the count agrees with its noun
    assert f"**{len(pair):,} misclassified test {noun}**" in texts(at)
    assert all(c.split(": ")[1].startswith(f"{top['label']}→{top['predicted']} ") for c in at.image[-1].captions)


# --- sketching --------------------------------------------------------------------------------


PREDICTION_RE = re.compile(r"^### Prediction: (\d) \((\d{1,3}\.\d)%\)")


def prediction(at: AppTest) -> str:
    return "\n".join(m.value for m in at.container("prediction").markdown)


def test_sketch_predicts_a_drawn_digit(model_key, mnist_data):
    at = open_app("sketch", active_model=model_key)
    for index in range(5):  # 7, 2, 1, 0, 4
        label = int(mnist_data.test_labels[index])
        at.session_state[CANVAS_KEY] = digit_canvas(mnist_data.test_images[index])
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        match = PREDICTION_RE.match(prediction(at))
        assert match, prediction(at)
        assert int(match.group(1)) == label
        assert 0.0 <= float(match.group(2)) <= 100.0
    assert len(at.image) >= 2  # the 28x28 input and the saliency overlay


def test_blank_canvas_shows_no_prediction(model_key):
    at = open_app("sketch", active_model=model_key)
    assert "Draw a digit" in prediction(at)
    assert "Prediction" not in prediction(at)

    at.session_state[CANVAS_KEY] = np.zeros((280, 280, 4), np.uint8) + np.array([0, 0, 0, 255], np.uint8)
    at.run()
    assert "Draw a digit" in prediction(at)
    assert "Prediction" not in prediction(at)


def test_uploaded_checkpoint_becomes_the_active_model(model_key, with_data, mnist_data):
    weights = checkpoint_file_bytes(model_path(model_key, with_data))
    at = open_app("sketch", active_model=model_key)
    at.file_uploader(key="checkpoint_upload").upload("model.safetensors", weights).run()
    assert not at.exception
    assert at.session_state["active_model"].kind == "upload"
    assert any("now the active model" in m.value for m in at.success)
    model_select = at.sidebar.selectbox(key="active_model")
    assert "uploaded model.safetensors" in model_select.format_func(model_select.value)
    at.session_state[CANVAS_KEY] = digit_canvas(mnist_data.test_images[0])
    at.run()
    assert PREDICTION_RE.match(prediction(at)).group(1) == str(int(mnist_data.test_labels[0]))


def test_upload_with_its_json(model_key, with_data):
    folder = model_path(model_key, with_data)
    meta = load_checkpoint(folder).record.to_json().encode()
    at = open_app("sketch", active_model=model_key)
    at.file_uploader(key="checkpoint_upload_json_0").upload("meta.json", meta, "application/json").run()
    at.file_uploader(key="checkpoint_upload").upload("model.safetensors", checkpoint_file_bytes(folder)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["active_model"].kind == "upload"
    assert any(m.value.startswith("Loaded model.safetensors with meta.json:") for m in at.success)


def test_bad_upload_is_refused_with_a_message(model_key):
    at = open_app("sketch", active_model=model_key)
    at.file_uploader(key="checkpoint_upload").upload("model.safetensors", b"\x80\x04 not a checkpoint").run()
    assert not at.exception
    assert any("cannot be used" in e.value and "pickle" in e.value for e in at.error)
    assert at.session_state["active_model"] == model_key


# --- ensembles --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def two_quick_runs(mnist_data, tmp_path_factory) -> list[Path]:
    """Two mlp runs of different seeds, each trained in a second or two on 4,000 images."""
    from mnist.config import TrainConfig
    from mnist.train import run_training

    folder = tmp_path_factory.mktemp("ensemble-members")
    runs = []
    for seed in (0, 1):
        config = TrainConfig(arch="mlp", epochs=1, train_limit=4_000, batch_size=64, lr=0.002, seed=seed)
        done = run_training(config, mnist_data)
        runs.append(save_run(done.model, config, done.metrics(), done.history, folder, f"quick-{seed}"))
    return runs


@pytest.fixture
def ensemble_key(two_quick_runs, with_data, mnist_data) -> ModelRef:
    """An ensemble of the two quick runs, saved in this test's runs folder (the members beside it)."""
    from mnist.checkpoint import save_ensemble

    members = [load_checkpoint(shutil.copytree(run, with_data / run.name)) for run in two_quick_runs]
    return ModelRef.run(save_ensemble(members, mnist_data, with_data, "duo").name)


@pytest.mark.slow
def test_the_sidebar_and_sketch_name_an_ensemble_and_it_predicts(ensemble_key, mnist_data):
    at = open_app("sketch", active_model=ensemble_key)
    model_select = at.sidebar.selectbox(key="active_model")
    label = model_select.format_func(model_select.value)
    assert label == "duo", label  # short, to fit the sidebar: the caption under it says the rest
    assert any(c.value.startswith(":material/neurology: duo · ensemble of 2 · mlp · ") for c in at.sidebar.caption)
    for index in range(3):  # 7, 2, 1
        at.session_state[CANVAS_KEY] = digit_canvas(mnist_data.test_images[index])
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        match = PREDICTION_RE.match(prediction(at))
        assert match, prediction(at)
        assert int(match.group(1)) == int(mnist_data.test_labels[index])
    captions = [c.value for c in at.main.caption]
    assert any(c.startswith("ensemble of 2 · mlp ") for c in captions), captions
    assert len(at.image) >= 2  # the 28x28 input and the saliency overlay


# --- Sketch: compare with a second model ------------------------------------------------------


def compare_texts(at: AppTest) -> list[str]:
    return [m.value for m in at.container(key="compare").markdown]


def has_compare(at: AppTest) -> bool:
    return any(getattr(block, "key", None) == "compare" for block in at.container)


def alone(folder: Path, drawing: np.ndarray):
    """What a model reads on its own, for the same drawing (no calibration: the quick runs have none stored)."""
    from mnist.verdict import read_drawing

    return read_drawing(load_checkpoint(folder).model.eval(), drawing)


@pytest.fixture
def second_key(two_quick_runs, with_data) -> tuple[ModelRef, Path]:
    """A quick mlp run in this test's runs folder: the second model on offer."""
    run = shutil.copytree(two_quick_runs[0], with_data / two_quick_runs[0].name)
    return ModelRef.run(run.name), run


def guide_ticks(token: str) -> dict[str, bool]:
    """The start guide's flags the process's store holds for the visitor holding `token` (studio.guide)."""
    from studio import remembered

    return dict(remembered.store().recall(owner_of(token)).guide)


@pytest.mark.slow
def test_compare_shows_both_models_answers_and_the_choice_survives_reruns(model_key, second_key, mnist_data):
    from studio import guide

    other, folder = second_key
    token = "visitor-token-of-a-comparer-0002"
    at = open_app("sketch", active_model=model_key, visitor_token=token)
    assert not guide_ticks(token)
    at.session_state[CANVAS_KEY] = digit_canvas(mnist_data.test_images[0])
    at.run()
    assert not has_compare(at), "off by default"
    assert guide_ticks(token) == {guide.Step.DRAW.key: True}, "a drawing that got a verdict ticks step 1 only"
    line = [c.value for c in at.main.caption if "The dashed line is at 60%: the tallest bar, 7 at" in c.value]
    assert len(line) == 1, "the probabilities chart's line is explained under it, with the drawing's numbers"
    picker = at.selectbox(key="compare_picker")
    assert picker.options == ["Off", folder.name], "every other model, by its short name, not the active one"
    picker.set_value(other).run()
    for index in (0, 1):  # a 7, then a 2: the choice holds through strokes
        drawing = digit_canvas(mnist_data.test_images[index])
        at.session_state[CANVAS_KEY] = drawing
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        label = int(mnist_data.test_labels[index])
        assert PREDICTION_RE.match(prediction(at)).group(1) == str(label)  # the active model's, unchanged
        answers = [t.split("  \n") for t in compare_texts(at) if "Prediction:" in t]  # name, then verdict
        assert len(answers) == 2, compare_texts(at)
        assert answers[0][0] == ":gray[Bundled]" and answers[0][1].startswith(f"Prediction: {label} ")
        assert answers[1][0] == f":gray[{plain(folder.name)}]", answers
        assert answers[1][1].startswith(f"Prediction: {alone(folder, drawing).digit} "), answers
    assert guide_ticks(token)[guide.Step.COMPARE.key], "two models on one drawing tick step 3"
    picker = at.selectbox(key="compare_picker")
    picker.set_value("").run()
    assert not has_compare(at)


def test_compare_reads_a_number_with_each_model(model_key, second_key, mnist_data):
    other, folder = second_key
    labels = mnist_data.test_labels
    one, seven = int((labels == 1).nonzero()[0]), int((labels == 7).nonzero()[0])
    drawing = digits_side_by_side([mnist_data.test_images[i].numpy() for i in (one, seven)], gap=18)  # at x 20, 150
    at = open_app("sketch", active_model=model_key, compare_with=other, sketch_canvas_override=drawing)
    assert prediction(at).startswith("### Number: 17")
    texts_ = compare_texts(at)
    assert any("  \nNumber: 17" in t for t in texts_), texts_
    second = alone(folder, drawing)
    read = f"Number: {''.join(map(str, second.digits))}" if second.digits else "Not a digit"
    assert sum(f"  \n{read}" in t for t in texts_) >= 1, (read, texts_)


def test_compare_on_a_test_image_says_which_model_is_right(model_key, second_key, with_data, mnist_data):
    other, _ = second_key
    at = open_app("sketch", active_model=model_key, compare_with=other, sketch_test_image=0)
    label = int(mnist_data.test_labels[0])
    answers = [t for t in compare_texts(at) if "the label is" in t]
    assert len(answers) == 2, compare_texts(at)
    assert answers[0].endswith(f"✓ right: the label is {label}")  # the bundled model reads test image 0
    assert answers[1].endswith((f"✓ right: the label is {label}", f"✗ wrong: the label is {label}"))


def test_inside_the_model_shows_an_ensembles_first_member(ensemble_key, mnist_data):
    at = open_app("sketch", active_model=ensemble_key, inside_on=True)
    at.session_state[CANVAS_KEY] = digit_canvas(mnist_data.test_images[0])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "these views show its first member, mlp (run quick-0)" in texts(at)


def test_train_page_makes_an_ensemble_of_saved_runs(two_quick_runs, with_data):
    for run in two_quick_runs:
        shutil.copytree(run, with_data / run.name)
    at = open_app("train", visitor_token=VISITOR)
    assert button(at, "Make the ensemble").disabled  # no runs chosen yet
    at.multiselect(key="ensemble_runs").set_value(["quick-0", "quick-1"]).run()
    at.text_input(key="ensemble_name").input("pair").run()
    button(at, "Make the ensemble").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Saved the ensemble as `pair`" in s.value for s in at.success)
    record = load_checkpoint(with_data / "pair").record
    assert record.model_text == "ensemble of 2 · mlp" and record.provenance.owner == owner_of(VISITOR)
    assert at.selectbox(key="manage_run").value == "pair"
    assert "ensemble of 2 · mlp" in texts(at)  # the manage caption
    assert "made by you" in texts(at)

    at.multiselect(key="ensemble_runs").set_value(["quick-0", "quick-1"]).run()
    at.text_input(key="ensemble_name").input("pair").run()  # taken: refused in plain words
    button(at, "Make the ensemble").click().run()
    assert not at.exception
    assert any("Could not make the ensemble: a run named 'pair' already exists" in e.value for e in at.error)

    at.multiselect(key="ensemble_runs").set_value(["pair", "quick-0"]).run()  # an ensemble is offered too...
    at.text_input(key="ensemble_name").input("").run()
    button(at, "Make the ensemble").click().run()  # ...but it holds quick-0 already
    assert not at.exception
    assert any("the same model comes twice (quick-0, alone or inside an ensemble)" in e.value for e in at.error)
    assert {r.name for r in list_runs(with_data)} == {"quick-0", "quick-1", "pair"}


def test_explore_evaluates_an_ensemble(ensemble_key, with_data, mnist_data):
    at = open_app("explore", active_model=ensemble_key)
    assert not at.error, [e.value for e in at.error]
    assert any("· ensemble of 2 · mlp" in c.value for c in at.caption)
    accuracy = load_checkpoint(with_data / "duo").record.metrics.test_accuracy
    assert {m.label: m.value for m in at.metric}["Test accuracy"] == f"{accuracy * 100:.2f}%"


@pytest.mark.slow
def test_train_page_trains_seeds_then_saves_their_ensemble(with_data):
    at = open_app("train", visitor_token=VISITOR)
    at.text_input(key="cfg_train_limit").set_value("512")
    at.text_input(key="cfg_epochs").set_value("1")
    at.number_input(key="new_run_seeds").set_value(2)
    at.text_input(key="new_run_name").input("twins")
    at.run()
    button(at, "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    done = wait_for(at, lambda a: [s.value for s in a.success if "saved `twins`" in s.value], what="the ensemble")
    assert f"2 seeds done: saved `twins`, ensemble of 2 · {TrainConfig().arch}" in done[0]  # the form's default
    names = {r.name: r.record for r in list_runs(with_data)}
    assert set(names) == {"twins", "twins-seed0", "twins-seed1"}
    assert [m.name for m in names["twins"].members] == ["twins-seed0", "twins-seed1"]
    assert names["twins"].provenance.owner == owner_of(VISITOR)
    button(at, "Use the ensemble in Sketch and Explore").click().run()
    assert at.session_state["active_model"] == ModelRef.run("twins")
    assert any("Saved as `twins` · the active model" in c.value for c in at.caption)
    stranger = open_app("train", visitor_token="another-visitor")  # no runs of their own: the latest curves
    meanwhile = [c.value for c in stranger.caption if c.value.startswith("Meanwhile")]
    assert meanwhile and "`twins-seed" in meanwhile[0], meanwhile  # a trained run, not the ensemble (no curves)
