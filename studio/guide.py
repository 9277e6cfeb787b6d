"""The "Start here" guide: four steps through the app for a first visitor, ticked off as they are done.

Shown in the sidebar (on a phone the sidebar is folded away, so it never pushes Sketch's canvas down), each
step a link to its page. The progress is remembered per visitor (studio.remembered's store, keyed by the
owner id): a reload or a second tab shows the same ticks, and a dismissed guide stays dismissed.

The pages tick the steps where they happen: `guide.mark_done(guide.Step.DRAW)` when a drawing got a verdict
(Sketch), `Step.COMPARE` when two models' readings of one drawing are shown (Sketch's compare), `Step.MISTAKES`
when the mistakes of a model are shown (Explore). `Step.TRAIN` ticks itself: a run this visitor started has
finished and been saved (any preset counts; the guide suggests the fast one, about 8 s of training).
"""

from __future__ import annotations

from enum import Enum

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from mnist.jobs import DONE
from studio import job_pool, remembered, visitor

DISMISSED = remembered.GUIDE_PREFIX + "dismissed"
TITLE = "Start here"


class Step(Enum):
    """The guide's steps, in order: value = (remembered key's suffix, page, what to do, how).

    The labels are short: a sidebar link is one line, cut at about 24 characters, "(done)" included.
    """

    DRAW = ("draw", "pages/sketch.py", "Draw a digit", "On Sketch: draw one digit and read the model's answer.")
    TRAIN = (
        "train",
        "pages/train.py",
        "Train a model",
        "On Train: press Start with the fast preset (about 8 s of training on this server's kind of CPU).",
    )
    COMPARE = (
        "compare",
        "pages/sketch.py",
        "Compare models",
        "On Sketch: show your new model's answer beside the bundled model's, on the same drawing.",
    )
    MISTAKES = (
        "mistakes",
        "pages/explore.py",
        "See mistakes",
        "On Explore, The model's mistakes: the test images the active model gets wrong, and what it read instead. "
        "To see your new model's, choose it as Active model in the sidebar first.",
    )

    @property
    def key(self) -> str:
        return remembered.GUIDE_PREFIX + self.value[0]

    @property
    def page(self) -> str:
        return self.value[1]

    @property
    def label(self) -> str:
        return self.value[2]

    @property
    def how(self) -> str:
        return self.value[3]


def progress() -> dict[str, bool]:
    """This visitor's guide flags (Step.key and DISMISSED), from the process's store."""
    return dict(remembered.store().recall(visitor.owner_id()).guide)


def is_done(step: Step) -> bool:
    return progress().get(step.key, False)


def is_dismissed() -> bool:
    return progress().get(DISMISSED, False)


def mark_done(step: Step) -> None:
    """Tick a step off for this visitor (cheap when it already is: one look-up, no write), and show the tick now.

    The guide is drawn in the sidebar before the page runs, so a new tick would wait for the next click. In a
    whole-page run the app reruns once (once per step and visitor) to show it. Sketch ticks inside its fragment,
    whose runs never redraw the sidebar (a stroke stays cheap): the sidebar shows that tick at the next page
    run. No toast there: on a phone it covered the canvas's Undo and Clear until it went
    (tests/e2e/test_canvas.py). Nothing when the store did not keep the tick (no rerun loop)."""
    if is_done(step):
        return
    remembered.store().remember(visitor.owner_id(), {step.key: True})
    if not is_done(step):
        return
    if not in_fragment_run():
        st.rerun(scope="app")


def in_fragment_run() -> bool:
    """Whether this script run is a fragment's alone (a stroke on Sketch, a live panel's refresh)."""
    context = get_script_run_ctx()
    return bool(context and context.fragment_ids_this_run)


def set_dismissed(dismissed: bool) -> None:
    """Hide the guide (True) or bring it back (False), for every tab of this visitor."""
    remembered.store().remember(visitor.owner_id(), {DISMISSED: dismissed})


def tick_finished_training() -> None:
    """Step.TRAIN is done once a run this visitor started has finished (checked on every run: the run trains
    in the background, and the visitor may be on another page when it ends)."""
    jobs = job_pool.job_manager().jobs_for(visitor.owner_id())
    if not is_done(Step.TRAIN) and any(job.state == DONE for job in jobs):
        mark_done(Step.TRAIN)


def step_label(number: int, step: Step, done: bool) -> str:
    """A step's link text; a done one says so in words too (a screen reader does not see the tick)."""
    return f"{number}. {step.label}{' (done)' if done else ''}"


def show() -> None:
    """The guide in the sidebar, or, once dismissed, a small button that brings it back."""
    tick_finished_training()
    flags = progress()
    with st.sidebar:
        if flags.get(DISMISSED):
            st.button(
                "Show the start guide",
                icon=":material/school:",
                type="tertiary",
                on_click=set_dismissed,
                args=(False,),
                key="guide_show",
            )
            return
        with st.container(key="start-guide", border=True):
            done = [flags.get(step.key, False) for step in Step]
            st.markdown(f"**:material/school: {TITLE}** · {sum(done)} of {len(done)} done")
            for number, (step, is_ticked) in enumerate(zip(Step, done, strict=True), start=1):
                icon = ":material/check_circle:" if is_ticked else ":material/radio_button_unchecked:"
                st.page_link(step.page, label=step_label(number, step, is_ticked), icon=icon, help=step.how)
            if all(done):
                st.caption("All done: you have drawn, trained, compared and looked at mistakes.")
            st.button(
                "Hide this guide",
                icon=":material/close:",
                type="tertiary",
                on_click=set_dismissed,
                args=(True,),
                key="guide_hide",
            )
