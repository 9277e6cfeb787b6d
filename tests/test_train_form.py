"""The Train form's rules, through AppTest: an invalid value blocks Start with a message naming the field and
its range (the FieldSpec's), nothing typed is replaced, a run can be named, saved-run choices survive a page
switch; and the queue's wording."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import PAGES, open_app
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import load_checkpoint, save_ensemble, save_run
from mnist.config import FIELD_SPECS, TrainConfig, range_text
from mnist.models import build_model
from mnist.records import RunMetrics
from mnist.runs import list_runs
from studio import explain
from studio.views import queue_text

TRAIN_PAGE, SKETCH_PAGE = PAGES["train"], PAGES["sketch"]
RUN_TIMEOUT = 240  # seconds for a run on 600 images, on a shared machine
START = "Start training"
# (field, what a user types): each one is refused, whatever the reason
REFUSED = [
    ("epochs", "0"),
    ("epochs", "2.5"),  # a number input would make it 2
    ("batch_size", "-16"),
    ("lr", "1e9"),
    ("lr", "abc"),  # a number input would make it its minimum
    ("lr", "nan"),
    ("weight_decay", "-0.1"),
    ("train_limit", ""),
    ("seed", "1 000"),
]


def make_run(runs_dir: Path, name: str) -> None:
    save_run(build_model("mlp"), TrainConfig(arch="mlp"), RunMetrics(test_accuracy=0.9), None, runs_dir, name)


def open_train() -> AppTest:
    return open_app("train")


def start_button(at: AppTest):
    return next(b for b in at.button if b.label == START)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def type_into(at: AppTest, key: str, text: str) -> AppTest:
    at.text_input(key=key).set_value(text).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.slow
def test_each_invalid_value_blocks_start_with_the_field_and_its_range(with_data):
    at = open_train()
    assert not start_button(at).disabled and not errors(at)
    for name, text in REFUSED:
        spec, valid = FIELD_SPECS[name], at.text_input(key=f"cfg_{name}").value
        type_into(at, f"cfg_{name}", text)
        assert start_button(at).disabled, (name, text)
        assert at.text_input(key=f"cfg_{name}").value == text  # kept as typed, never replaced
        [message] = errors(at)
        assert message.startswith(spec.label) and range_text(spec) in message, message
        assert f"To start, fix: {spec.label}." in [c.value.removeprefix(":material/block: ") for c in at.caption]

        type_into(at, f"cfg_{name}", valid)
        assert not start_button(at).disabled and not errors(at), (name, errors(at))

    type_into(at, "cfg_epochs", "0")
    assert errors(at) == ["Epochs must be a whole number between 1 and 200, not “0”."]


def test_a_valid_change_is_used_as_typed_and_thousands_separators_are_read(with_data):
    at = open_train()
    type_into(at, "cfg_train_limit", "12,000")  # as the range in the messages writes numbers
    type_into(at, "cfg_lr", " 5e-3 ")
    assert not errors(at) and not start_button(at).disabled
    type_into(at, "cfg_train_limit", "12,00")  # not a thousands separator: refused, not read as 1200
    assert start_button(at).disabled and "“12,00”" in errors(at)[0]


def test_the_rule_between_fields_blocks_start(with_data):
    at = open_train()
    type_into(at, "cfg_train_limit", "100")  # fewer images than one batch of the preset's 256
    assert start_button(at).disabled
    assert errors(at) == [
        "Cannot train with these settings: the batch size (256) is larger than the 100 training images; "
        "lower it or use more images."
    ]
    type_into(at, "cfg_batch_size", "100")
    assert not start_button(at).disabled and not errors(at)


def test_letters_in_learning_rate_are_refused_even_when_start_is_clicked_at_once(with_data):
    at = open_train()
    at.text_input(key="cfg_lr").set_value("abc")
    start_button(at).click().run()  # typed and clicked before a rerun disabled Start: the click checks again
    assert not at.exception
    assert any(i.value.startswith("Start a run to watch it learn") for i in at.info)  # nothing started
    assert at.text_input(key="cfg_lr").value == "abc"
    assert start_button(at).disabled


def test_a_field_that_does_not_apply_does_not_block_start(with_data):
    at = open_train()
    at.selectbox(key="cfg_optimizer").set_value("sgd").run()
    type_into(at, "cfg_momentum", "abc")
    assert start_button(at).disabled
    at.selectbox(key="cfg_optimizer").set_value("adam").run()  # momentum is gone from the form and the run
    assert not start_button(at).disabled and not errors(at)
    at.selectbox(key="cfg_optimizer").set_value("sgd").run()
    assert at.text_input(key="cfg_momentum").value == "abc" and start_button(at).disabled  # still as typed


def test_a_run_name_is_checked_before_training(with_data):
    make_run(with_data, "taken")
    at = open_train()
    type_into(at, "new_run_name", "taken")
    assert start_button(at).disabled
    assert errors(at) == ["Run name: a run named taken already exists; choose another name or leave it empty."]

    type_into(at, "new_run_name", "../escape")
    assert start_button(at).disabled
    [message] = errors(at)
    assert message.startswith("Run name: invalid run name '../escape': use up to 100 letters"), message

    type_into(at, "new_run_name", "")  # empty: an automatic name
    assert not start_button(at).disabled and not errors(at)


@pytest.mark.slow
def test_a_named_run_is_saved_under_its_name_with_the_values_typed(with_data):
    at = open_train()
    for key, text in {"cfg_train_limit": "600", "cfg_epochs": "1", "cfg_lr": "0.005", "new_run_name": "tiny"}.items():
        type_into(at, key, text)
    start_button(at).click().run()
    assert at.text_input(key="new_run_name").value == ""  # the name is taken now: the next run gets another
    type_into(at, "new_run_name", "tiny")  # refused while it trains, not when its model is saved
    assert start_button(at).disabled and "a run named tiny already exists" in errors(at)[0]

    deadline = time.monotonic() + RUN_TIMEOUT
    while not any("Finished" in s.value for s in at.success):
        assert time.monotonic() < deadline, f"the run did not finish: {errors(at)}"
        time.sleep(0.5)
        at.run()  # as the live panel would
    [run] = list_runs(with_data)
    assert run.name == "tiny"
    assert (run.record.config.lr, run.record.config.epochs, run.record.config.train_limit) == (0.005, 1, 600)
    at.run()
    trained = next(link for link in at.sidebar.get("page_link") if link.proto.label.startswith("2."))
    assert trained.proto.icon == ":material/check_circle:"  # the start guide's step 2: a run trained and saved
    assert any("The loss measures how wrong the model is" in c.value for c in at.caption)  # the curves explained


@pytest.mark.slow
def test_saved_run_choices_survive_a_page_switch(with_data):
    for name in ("run-a", "run-b", "run-c"):
        make_run(with_data, name)
    at = open_train()
    names = at.selectbox(key="manage_run").options
    assert at.multiselect(key="compare_runs").value == names[:2]  # the default: the two newest
    at.multiselect(key="compare_runs").set_value([names[2]]).run()
    at.selectbox(key="manage_run").set_value(names[1]).run()

    at.switch_page(SKETCH_PAGE).run()
    at.switch_page(TRAIN_PAGE).run()
    assert not at.exception
    assert at.multiselect(key="compare_runs").value == [names[2]]
    assert at.selectbox(key="manage_run").value == names[1]


def test_the_queue_message_fits_one_slot_and_several():
    assert queue_text(2, 1, 1) == (
        "Queued: position 2 in line. It starts when the training slot frees up (the server trains one run at a time)."
    )
    assert queue_text(1, 3, 3) == (
        "Queued: position 1 in line. It starts when one of the 3 training slots frees up (3 of 3 in use)."
    )


def test_each_fields_tooltip_explains_it_in_plain_words_then_gives_its_range(with_data):
    at = open_train()
    epochs = at.text_input(key="cfg_epochs").proto.help
    assert epochs.startswith(explain.field_text("epochs"))
    assert range_text(FIELD_SPECS["epochs"]) in epochs
    assert at.selectbox(key="cfg_arch").proto.help.startswith(explain.field_text("arch"))
    assert at.toggle(key="cfg_augment").proto.help.startswith(explain.field_text("augment"))


@pytest.mark.slow
def test_an_ensembles_accuracy_is_explained_beside_its_members(with_data, mnist_data):
    for name, accuracy in (("weak", 0.9834), ("strong", 0.9923)):
        save_run(build_model("mlp"), TrainConfig(arch="mlp"), RunMetrics(test_accuracy=accuracy), None, with_data, name)
    members = [load_checkpoint(with_data / name) for name in ("weak", "strong")]
    save_ensemble(members, mnist_data, with_data, "both")  # untrained: it scores far below its members
    at = open_train()
    at.selectbox(key="manage_run").set_value("both").run()
    shown = "\n".join(c.value for c in at.caption)
    assert "An ensemble averages its models' probabilities: 98.34% + 99.23% →" in shown
    assert "below its best model (99.23%)" in shown
