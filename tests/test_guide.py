"""The "Start here" guide (studio.guide), through AppTest: four steps linking to their pages, ticked off as the
visitor does them, the same in a new session of that visitor (a reload, a second tab) and only for them; a
dismissed guide stays dismissed and can be brought back."""

from __future__ import annotations

from helpers import open_app
from streamlit.testing.v1 import AppTest

from studio import guide, remembered
from studio.ownership import owner_of
from studio.views import digit_canvas

PAGES = {guide.Step.DRAW: "", guide.Step.TRAIN: "train", guide.Step.COMPARE: "", guide.Step.MISTAKES: "explore"}


def session(token: str) -> AppTest:
    """A new Streamlit session (on Sketch) of the browser holding `token`."""
    return open_app(token=token)


def step_links(at: AppTest) -> list:
    return [link for link in at.sidebar.get("page_link") if link.proto.label[:2] in ("1.", "2.", "3.", "4.")]


def ticked(at: AppTest) -> list[bool]:
    return [link.proto.icon == ":material/check_circle:" for link in step_links(at)]


def test_a_first_visitor_sees_four_steps_each_linking_to_its_page():
    at = session("visitor-token-of-guide-first-001")
    links = step_links(at)
    assert [link.proto.page for link in links] == list(PAGES.values())
    assert [link.proto.label for link in links] == [f"{n}. {s.label}" for n, s in enumerate(guide.Step, start=1)]
    assert ticked(at) == [False] * 4
    assert "0 of 4 done" in "\n".join(m.value for m in at.sidebar.markdown)


def test_done_steps_are_ticked_in_every_session_of_that_visitor_only():
    token = "visitor-token-of-guide-ticks-002"
    first = session(token)
    store = remembered.store()  # the process's store, shared with the app's sessions
    store.remember(owner_of(token), {guide.Step.DRAW.key: True, guide.Step.MISTAKES.key: True})
    first.run()  # the open tab: at its next rerun
    assert ticked(first) == [True, False, False, True]
    assert step_links(first)[0].proto.label.endswith("(done)")
    assert "2 of 4 done" in "\n".join(m.value for m in first.sidebar.markdown)
    assert ticked(session(token)) == [True, False, False, True]  # a reload, a second tab
    assert ticked(session("visitor-token-of-someone-else-03")) == [False] * 4


def test_a_dismissed_guide_stays_dismissed_and_can_come_back():
    token = "visitor-token-of-guide-hides-004"
    at = session(token)
    at.sidebar.button(key="guide_hide").click().run()
    assert not step_links(at)
    again = session(token)  # a new session of the same visitor
    assert not step_links(again)
    again.sidebar.button(key="guide_show").click().run()
    assert len(step_links(again)) == 4
    assert len(step_links(session(token))) == 4


def test_a_drawing_ticks_step_one_in_the_sidebar_of_the_same_run(mnist_data):
    """The guide is drawn before the page runs and Sketch ticks inside its fragment: in Chromium a visitor who
    had just drawn still read "0 of 4 done" until some other click reran the app."""
    token = "visitor-token-of-guide-at-once-05"
    at = open_app(token=token)
    assert ticked(at) == [False] * 4
    at.session_state["sketch_canvas_override"] = digit_canvas(mnist_data.test_images[0])
    at.run()
    assert not at.exception, at.exception
    assert remembered.store().recall(owner_of(token)).guide.get(guide.Step.DRAW.key)
    assert ticked(at) == [True, False, False, False], "the sidebar shows the tick the drawing just earned"
    assert step_links(at)[0].proto.label == "1. Draw a digit (done)"
    assert "1 of 4 done" in "\n".join(m.value for m in at.sidebar.markdown)
    at.run()  # the next stroke: the step is done already, nothing more happens
    assert ticked(at) == [True, False, False, False]
