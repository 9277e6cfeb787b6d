"""Explore: the MNIST data set, the mistakes the active model makes on the test set, and the test images that
most saved runs get wrong."""

from __future__ import annotations

import functools

import streamlit as st
import torch

from mnist.constants import NUM_CLASSES
from mnist.data import normalize
from mnist.errors import MnistError
from mnist.hard_digits import HardDigit, rank_hard_digits
from mnist.predict import predict_tensor
from mnist.records import ModelRef
from mnist.stats import class_counts, indices_of, mean_images
from studio import dataset, guide, registry, session, share
from studio.explore_charts import (
    CELL_SELECTION,
    class_distribution_chart,
    confusion_chart,
    per_class_accuracy_chart,
    selected_cell,
)
from studio.explore_state import (
    DEFAULT_SPLIT,
    DIGIT_FILTER_KEYS,
    DIGIT_KEY,
    LINK_PROBLEMS_KEY,
    ORDER_KEY,
    PRED_KEY,
    PREDICTIONS_KEY,
    SPLIT_KEY,
    TRUE_KEY,
    ExploreState,
)
from studio.sketch_state import SketchState
from studio.tiles import make_openable, opened_index
from studio.views import (
    MISTAKE_ORDERS,
    WRONG_FRAME_RGB,
    filter_mistakes,
    framed,
    image_alt,
    paginate,
    prediction_caption,
    upscale,
)

SAMPLES_PER_PAGE = 60
MISTAKES_PER_PAGE = 40
THUMB_SCALE = 2  # 28 -> 56 pixels
ANY = None
DIGIT_OPTIONS = [ANY, *range(NUM_CLASSES)]
SKETCH_PAGE = "pages/sketch.py"
KEEP = {"persist_state": "session"}  # filters survive a visit to another page (and studio.remembered: a reload)
PAGE_PREDICTIONS_CACHE = 64  # pages of training-image predictions kept (60 ints each): a visitor paging back and forth
SAMPLE_TILES, MISTAKE_TILES, HARD_TILES = "sample_tiles", "mistake_tiles", "hard_tiles"  # clickable grids' containers
CONFUSION_BOX = "confusion"  # the matrix's container; the chart inside is keyed by the filter it shows
# Reserved heights (pixels), so the page does not move when the charts arrive (layout shift).
DISTRIBUTION_BOX_PX = 300
MEAN_IMAGE_PX = 64  # the ten mean images: a fixed size, not the column's width (a phone's would be 360 px each)
ACCURACY_BOX_PX = 250
CONFUSION_BOX_PX = 400
MAX_HARD_RUNS = 5  # saved runs compared, the newest: each costs one evaluation on 10,000 images (then cached)
HARD_SHOWN = 40  # hard test images shown
HARD_RANKINGS_CACHE = 8
TABS = (
    ":material/dataset: The data set",
    ":material/bug_report: The model's mistakes",
    ":material/groups: Hard for every model",
)


def read_digit_filter(text: str) -> int | None:
    """A link's digit filter: "any" or 0 to 9."""
    return ANY if text == "any" else share.read_choice(range(NUM_CLASSES), "any or one of")(text)


def write_digit_filter(value: object) -> str:
    return "any" if value is ANY else str(value)


# Explore's filters in a shared link (studio.share): every one written out, so the link shows the same view
# whatever the opener last chose. The page numbers are not shared: they depend on the filters.
LINK_PARAMS = [
    share.Param("split", SPLIT_KEY, share.read_choice(["train", "test"]), label="Split"),
    share.Param("digit", DIGIT_KEY, read_digit_filter, write_digit_filter, "Digit"),
    share.Param("predictions", PREDICTIONS_KEY, share.read_bool, share.write_bool, "Show the model's predictions"),
    share.Param("true", TRUE_KEY, read_digit_filter, write_digit_filter, "True digit"),
    share.Param("predicted", PRED_KEY, read_digit_filter, write_digit_filter, "Predicted digit"),
    share.Param("order", ORDER_KEY, share.read_choice(MISTAKE_ORDERS), label="Sort by confidence"),
]


def open_shared_link() -> None:
    """A session opened with a link: its filters win over the remembered ones; bad values are named."""
    _, problems = share.apply_link("explore", LINK_PARAMS)
    if problems:
        st.session_state[LINK_PROBLEMS_KEY] = problems
    share.show_problems(LINK_PROBLEMS_KEY, "Some of this link's filters could not be used; the page kept its own:")


def share_view() -> None:
    with st.expander("Copy link to this view", icon=":material/share:"):
        st.caption(
            "This link opens Explore with these filters, the samples' and the mistakes', for whoever you send it."
        )
        values = share.current(LINK_PARAMS)
        for key in DIGIT_FILTER_KEYS:  # "any" is written out too: the opener's own filter must not stay
            values[key] = "any" if values[key] is ANY else values[key]
        st.code(share.link(LINK_PARAMS, values), language=None, wrap_lines=True)


def count_text(n: int, noun: str) -> str:
    """ "1 misclassified test image", "2 misclassified test images"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def digit_label(value) -> str:
    return "any" if value is None else str(value)


@st.cache_resource(show_spinner="Counting the data set…", max_entries=2)
def data_stats(root: str, _data) -> dict:
    return {
        "train_counts": class_counts(_data.train_labels),
        "test_counts": class_counts(_data.test_labels),
        "means": mean_images(_data.train_images, _data.train_labels),
    }


def data_set_tab(state: dataset.DataState) -> None:
    data = state.data
    stats = data_stats(str(state.root), data)
    left, right = st.columns([1.2, 1], gap="large")
    with left:
        chart = class_distribution_chart(stats["train_counts"], stats["test_counts"])
        st.altair_chart(
            chart,
            key="distribution",
            height=DISTRIBUTION_BOX_PX,
            alt="Share of each digit in the training and test sets",
        )
    with right:
        st.markdown("**Mean training image per digit**")
        with st.container(horizontal=True, gap="small"):  # wraps: five a row on a desktop, as many as fit on a phone
            for digit in range(NUM_CLASSES):
                mean = stats["means"][digit]
                st.image(
                    upscale(mean / max(float(mean.max()), 1e-6), 3),
                    caption=f"{digit} · {stats['train_counts'][digit]:,}",
                    alt=f"mean training image of digit {digit}",
                    width=MEAN_IMAGE_PX,
                )
        st.caption(
            f"{len(data.train_labels):,} training and {len(data.test_labels):,} test images. "
            "Under each mean: the digit and its number of training images."
        )

    st.markdown("**Samples**")
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1], vertical_alignment="bottom")
    st.session_state.setdefault(SPLIT_KEY, DEFAULT_SPLIT)  # not default=: the value may be a remembered one
    split = c1.segmented_control("Split", ["train", "test"], key=SPLIT_KEY, required=True, **KEEP)
    digit = c2.selectbox("Digit", DIGIT_OPTIONS, format_func=digit_label, placeholder="any", key=DIGIT_KEY, **KEEP)
    images, labels = data.split(split or DEFAULT_SPLIT)
    indices = indices_of(labels, digit)
    pages = paginate(len(indices), 1, SAMPLES_PER_PAGE).count
    number = c3.number_input(f"Page (of {pages:,})", 1, pages, 1, key=f"sample_page_{split}_{digit}")
    page = paginate(len(indices), int(number), SAMPLES_PER_PAGE)
    shown = indices[page.start : page.stop].tolist()
    show_predictions = c4.toggle("Show the model's predictions", key=PREDICTIONS_KEY, **KEEP)
    opens = "click or tap one to open it in Sketch" if split == "test" else "only test images open in Sketch"
    st.caption(
        page.caption(f"{split} images" + ("" if digit is None else f" of {digit}")) + f" · under each: its # · {opens}"
    )
    predicted = sample_predictions(state, split or DEFAULT_SPLIT, shown) if show_predictions and shown else None
    if shown:
        with st.container(key=SAMPLE_TILES):
            show_samples(images, labels, shown, predicted)
            if split == "test":
                names = [f"test image #{i}, a {int(labels[i])}" for i in shown]
                openable_tiles(SAMPLE_TILES, shown, names)
    open_test_image_row(state)


def sample_predictions(state: dataset.DataState, split: str, shown: list[int]) -> list[int] | None:
    """The active model's digit for each shown image, or None (with a message) when there is no model."""
    ref = registry.active_model()
    if ref is None:
        st.info("No model yet: train one on the Train page to see its predictions here.")
        return None
    try:
        if split == "test":  # already known for all 10,000: the shared evaluation
            result, _ = registry.evaluation(ref, state)
            return result.predictions[shown].tolist()
        model = registry.get_checkpoint(ref).model
        return page_predictions(registry.model_identity(ref), str(state.root), tuple(shown), model, state.data)
    except MnistError as exc:
        st.error(f"The active model cannot predict: {exc}")
        return None


@st.cache_resource(show_spinner=False, max_entries=PAGE_PREDICTIONS_CACHE)
def page_predictions(identity: str, root: str, indices: tuple[int, ...], _model, _data) -> list[int]:
    """One batch for one page of training images, shared by all visitors: never the whole training set."""
    images = _data.train_images[torch.tensor(indices)]
    return predict_tensor(_model, normalize(images)).argmax(1).tolist()


def show_samples(images, labels, shown: list[int], predicted: list[int] | None) -> None:
    """The grid: labels only, or with the model's verdict, wrong ones also framed in red."""
    if predicted is None:
        st.image(
            [upscale(images[i], THUMB_SCALE) for i in shown],
            caption=[f"#{i} · {int(labels[i])}" for i in shown],
            alt=[image_alt("sample image", i, int(labels[i])) for i in shown],
            width=THUMB_SCALE * 28,
        )
        return
    truth = [int(labels[i]) for i in shown]
    st.image(
        [
            framed(upscale(images[i], THUMB_SCALE), None if p == t else WRONG_FRAME_RGB)
            for i, t, p in zip(shown, truth, predicted, strict=True)
        ],
        caption=[f"#{i} · {prediction_caption(t, p)}" for i, t, p in zip(shown, truth, predicted, strict=True)],
        alt=[image_alt("sample image", i, t, p) for i, t, p in zip(shown, truth, predicted, strict=True)],
        width=THUMB_SCALE * 28,
    )


def open_in_sketch(index_key: str) -> None:
    """Button callback: Sketch is to show the test image chosen in widget `index_key` instead of the canvas.

    A callback, not `if st.button(...)`: a click's True lasts one script run, and a run may start over
    (session.page_setup) before it reaches the button. switch_to_sketch() does the switch itself.
    """
    open_test_image(int(st.session_state[index_key]))


def open_tile(container_key: str) -> None:
    """Tile callback: the test image clicked or tapped in that container's grid opens in Sketch."""
    index = opened_index(container_key)
    if index is not None:
        open_test_image(index)


def open_test_image(index: int) -> None:
    SketchState.of().test_image = index
    ExploreState.of().ask_switch_to_sketch()


def openable_tiles(container_key: str, indices: list[int], names: list[str]) -> None:
    """The st.image grid just drawn in st.container(key=container_key) opens in Sketch tile by tile."""
    make_openable(container_key, indices, names, on_open=functools.partial(open_tile, container_key))


def switch_to_sketch() -> None:
    if ExploreState.of().take_switch_to_sketch():
        st.switch_page(SKETCH_PAGE)


def open_test_image_row(state: dataset.DataState) -> None:
    count = len(state.data.test_labels)
    c1, c2, _ = st.columns([1, 1, 2], vertical_alignment="bottom")
    c1.number_input(f"Test image # (0 to {count - 1:,})", 0, count - 1, 0, key="open_test_index")
    c2.button(
        "Open in Sketch",
        icon=":material/draw:",
        key="open_test_image",
        width="stretch",
        on_click=open_in_sketch,
        args=("open_test_index",),
    )


def confusion_key(true: int | None, predicted: int | None) -> str:
    """One chart per filter: a new chart has no selection, so a tap on any cell (the chosen one too) is news."""
    return f"confusion_{digit_label(true)}_{digit_label(predicted)}"


def on_confusion_click(chart_key: str) -> None:
    """A tap on a cell filters the gallery to it. The diagonal shows every mistake of that digit."""
    cell = selected_cell(st.session_state.get(chart_key))
    if cell is None:
        return
    true, predicted = cell
    ExploreState.of().mistake_filter = (true, predicted if predicted != true else ANY)


def confusion_matrix(confusion) -> None:
    true, predicted = ExploreState.of().mistake_filter
    key = confusion_key(true, predicted)
    with st.container(key=CONFUSION_BOX):
        st.altair_chart(
            confusion_chart(confusion, (true, predicted)),
            key=key,
            on_select=functools.partial(on_confusion_click, key),
            selection_mode=CELL_SELECTION,
            width="content",
            height=CONFUSION_BOX_PX,
            alt="Confusion matrix of the active model on the test set: true digit by row, predicted digit by column",
        )


def mistakes_tab(state: dataset.DataState, ref: ModelRef) -> None:
    try:
        checkpoint = registry.get_checkpoint(ref)
        result, mistakes = registry.evaluation(ref, state)
    except MnistError as exc:
        st.error(f"The active model cannot be evaluated: {exc}")
        return
    label = registry.model_choices().get(ref)
    shown = label.label if label else registry.model_name(ref)
    st.caption(f"Active model: {shown} (change it in the sidebar) · {checkpoint.record.model_text}")
    n = len(result.labels)
    m1, m2, m3 = st.columns(3)
    m1.metric("Test accuracy", f"{result.accuracy * 100:.2f}%")
    m2.metric("Mistakes", f"{len(mistakes):,} of {n:,}")
    m3.metric("Test loss", f"{result.loss:.4f}")

    st.session_state.setdefault(TRUE_KEY, ANY)
    st.session_state.setdefault(PRED_KEY, ANY)
    left, right = st.columns([1.1, 1], gap="large")
    with left:
        st.markdown("**Confusion matrix** · click or tap a cell to see those mistakes")
        confusion_matrix(result.confusion.numpy())
    with right:
        chart = per_class_accuracy_chart(result.per_class_accuracy)
        st.altair_chart(chart, key="per_class", height=ACCURACY_BOX_PX, alt="Test accuracy of each digit")
        f1, f2 = st.columns(2)
        digit_filter = {"format_func": digit_label, "placeholder": "any"}  # None ("any") shows the placeholder
        true = f1.selectbox("True digit", DIGIT_OPTIONS, key=TRUE_KEY, **digit_filter, **KEEP)
        predicted = f2.selectbox("Predicted digit", DIGIT_OPTIONS, key=PRED_KEY, **digit_filter, **KEEP)
        st.session_state.setdefault(ORDER_KEY, MISTAKE_ORDERS[0])
        order = st.segmented_control("Sort by confidence", MISTAKE_ORDERS, key=ORDER_KEY, required=True, **KEEP)

    rows = filter_mistakes(mistakes, true, predicted, order or MISTAKE_ORDERS[0])
    what = f"true {digit_label(true)}, predicted {digit_label(predicted)}"
    st.markdown(f"**{count_text(len(rows), 'misclassified test image')}** ({what})")
    if not rows:
        st.caption("No mistakes match: pick another cell or digit.")
        return
    pages = paginate(len(rows), 1, MISTAKES_PER_PAGE).count
    number = 1
    if pages > 1:
        number = st.number_input(
            f"Page (of {pages:,})", 1, pages, 1, key=f"mistake_page_{true}_{predicted}_{order}", width=160
        )
    page = paginate(len(rows), int(number), MISTAKES_PER_PAGE)
    st.caption(
        page.caption("mistakes")
        + " · under each image: test index, true → predicted digit, confidence · click or tap one to open it in Sketch"
    )
    shown = rows[page.start : page.stop]
    captions = [f"#{r['index']}: {r['label']}→{r['predicted']} {r['confidence'] * 100:.0f}%" for r in shown]
    alts = [image_alt("test image", r["index"], r["label"], r["predicted"], r["confidence"]) for r in shown]
    indices = [r["index"] for r in shown]
    with st.container(key=MISTAKE_TILES):
        st.image([upscale(state.data.test_images[i], 3) for i in indices], caption=captions, width=84, alt=alts)
        openable_tiles(MISTAKE_TILES, indices, alts)
    open_mistake_row(indices, captions)


def open_mistake_row(indices: list[int], captions: list[str]) -> None:
    """The keyboard's other way in: any mistake of the page by its caption."""
    caption_of = dict(zip(indices, captions, strict=True))
    c1, c2, _ = st.columns([1, 1, 2], vertical_alignment="bottom")
    c1.selectbox("Mistake to open in Sketch", indices, format_func=caption_of.get, key="open_mistake_index")
    c2.button(
        "Open in Sketch",
        icon=":material/draw:",
        key="open_mistake",
        width="stretch",
        on_click=open_in_sketch,
        args=("open_mistake_index",),
    )


# --- hard for every model ---------------------------------------------------------------------


def compared_runs() -> list:
    """The saved runs compared: the newest MAX_HARD_RUNS single models this visitor can see.

    Ensembles are left out: an ensemble answers with its members' mean, and its members are usually saved
    runs too, so it would count the same mistakes twice.
    """
    return [run for run in registry.runs_list() if not run.record.is_ensemble][:MAX_HARD_RUNS]


@st.cache_resource(show_spinner=False, max_entries=HARD_RANKINGS_CACHE)
def hard_ranking(identities: tuple[str, ...], _predictions: list, _labels) -> list[HardDigit]:
    """Shared by every visitor who sees the same runs: computed once per set of runs."""
    return rank_hard_digits(_predictions, _labels)


def hard_digits_tab(state: dataset.DataState) -> None:
    runs = compared_runs()
    if len(runs) < 2:
        st.info(
            "This needs at least two saved runs: train two models on the Train page (a different seed is enough), "
            "then come back to see the test images that every one of them gets wrong."
        )
        return
    predictions = []
    try:
        for run in runs:
            result, _ = registry.evaluation(run.ref, state)
            predictions.append(result.predictions)
    except MnistError as exc:
        st.error(f"A saved run cannot be evaluated: {exc}")
        return
    identities = tuple(registry.model_identity(run.ref) for run in runs)
    ranked = hard_ranking(identities, predictions, state.data.test_labels)
    names = ", ".join(run.name for run in runs)
    by_all = sum(1 for h in ranked if h.missed_by == len(runs))
    every = "both runs" if len(runs) == 2 else f"all {len(runs)} runs"  # "all 2 runs" reads oddly
    st.markdown(f"**{count_text(by_all, 'test image')} missed by {every}** ({names})")
    st.caption(
        f"The test images that most of the {len(runs)} newest saved runs you can see get wrong, most missed first "
        "(ensembles are left out: they repeat their members). Under each: test index, its label, how many runs "
        "missed it and their most common wrong answer · click or tap one to open it in Sketch"
    )
    if not ranked:
        st.caption("No test image is missed by any of these runs.")
        return
    shown = ranked[:HARD_SHOWN]
    captions = [f"#{h.index}: {h.label}→{h.common_answer} · {h.missed_by} of {h.models}" for h in shown]
    alts = [f"test image #{h.index}, a {h.label}, {h.text}, most often read as {h.common_answer}" for h in shown]
    with st.container(key=HARD_TILES):
        st.image([upscale(state.data.test_images[h.index], 3) for h in shown], caption=captions, width=84, alt=alts)
        openable_tiles(HARD_TILES, [h.index for h in shown], alts)


session.page_setup()
open_shared_link()
switch_to_sketch()
st.title("Explore", anchor=False)
data_state = dataset.get_data()
if data_state.data is None:
    dataset.show_data_help(data_state)
    st.stop()

active = registry.active_model()
# on_change="rerun": a tab's .open says whether it is the one shown. The first two always run (their content
# is ready when a visitor switches); the third evaluates several runs, so it runs only when opened.
tab_data, tab_mistakes, tab_hard = st.tabs(TABS, key="explore_tab", on_change="rerun")
with tab_data:
    data_set_tab(data_state)
with tab_mistakes:
    if active is None:
        st.info("No model yet: train one on the Train page, then come back to see its mistakes.")
    else:
        mistakes_tab(data_state, active)
        if tab_mistakes.open:
            guide.mark_done(guide.Step.MISTAKES)
with tab_hard:
    if tab_hard.open:
        hard_digits_tab(data_state)
share_view()
