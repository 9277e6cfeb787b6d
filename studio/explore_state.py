"""The Explore page's session state: each key named once, the filters read and written through ExploreState.

studio/remembered.py keeps FILTER_KEYS across reloads and tabs, and a shared link (pages/explore.py's
LINK_PARAMS) sets them; the page numbers are not kept: they depend on the filters.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

SPLIT_KEY = "sample_split"  # the samples' split: "train" or "test"
DIGIT_KEY = "sample_digit"  # the samples' digit, None for any
PREDICTIONS_KEY = "sample_predictions"  # whether the samples show the active model's predictions
TRUE_KEY = "mistake_true"  # the mistakes' true digit, None for any; a confusion-matrix click sets it
PRED_KEY = "mistake_pred"  # the mistakes' predicted digit, None for any
ORDER_KEY = "mistake_order"  # the mistakes' sort by confidence (studio.views.MISTAKE_ORDERS)
FILTER_KEYS = (SPLIT_KEY, DIGIT_KEY, PREDICTIONS_KEY, TRUE_KEY, PRED_KEY, ORDER_KEY)
DIGIT_FILTER_KEYS = (DIGIT_KEY, TRUE_KEY, PRED_KEY)  # None is "any"
SWITCH_KEY = "explore_open_in_sketch"  # set by an Open in Sketch callback; the page then switches to Sketch
DEFAULT_SPLIT = "train"
LINK_PROBLEMS_KEY = "explore_link_problems"  # what the link this session was opened with could not set


@dataclass
class ExploreState:
    """Typed access to the Explore page's keys in a session's state (st.session_state, or any mapping)."""

    store: MutableMapping[str, Any]

    @classmethod
    def of(cls) -> ExploreState:
        return cls(st.session_state)

    @property
    def mistake_filter(self) -> tuple[int | None, int | None]:
        """The mistakes' (true digit, predicted digit), None for any."""
        return self.store.get(TRUE_KEY), self.store.get(PRED_KEY)

    @mistake_filter.setter
    def mistake_filter(self, cell: tuple[int | None, int | None]) -> None:
        self.store[TRUE_KEY], self.store[PRED_KEY] = cell

    def ask_switch_to_sketch(self) -> None:
        self.store[SWITCH_KEY] = True

    def take_switch_to_sketch(self) -> bool:
        """Whether a callback asked for Sketch since the last run (asked once: the request is used up)."""
        return bool(self.store.pop(SWITCH_KEY, False))
