"""Image tiles that open with a click, a tap or the keyboard: an st.image grid made into buttons.

The grid stays an ordinary st.image list (its pictures, captions and alt text as before, served as media
files the browser caches); a small components.v2 script placed in the same keyed container turns each
picture into a button: role "button", in the Tab order, Enter or Space or a click or a single tap opens it.
It reports the chosen tile's number (its test index) as a trigger value, so the page's callback runs once
per click.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

IMAGE_SELECTOR = '[data-testid="stImageContainer"]'  # one per picture of an st.image list, in order
TRIGGER = "open"  # the trigger value's name: the callback is on_open_change
# Runs in the page (isolate_styles=False: no shadow root, it reaches the st.image grid beside it). Idempotent:
# Streamlit calls it again with new data after a rerun; the observer marks pictures as they arrive.
TILE_OPENER_JS = """
export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  const box = parentElement.closest(".st-key-" + data.container);
  if (!box) return;
  const tiles = () => Array.from(box.querySelectorAll('IMAGE_SELECTOR'));
  const mark = () => tiles().forEach((tile, i) => {
    if (i >= data.indices.length || tile.dataset.tileIndex === String(data.indices[i])) return;
    tile.dataset.tileIndex = String(data.indices[i]);
    tile.setAttribute("role", "button");
    tile.setAttribute("tabindex", "0");
    tile.setAttribute("aria-label", data.verb + " " + data.labels[i]);
    tile.style.cursor = "pointer";
  });
  const open = (event) => {
    const tile = event.target.closest('IMAGE_SELECTOR');
    if (!tile || !box.contains(tile) || tile.dataset.tileIndex === undefined) return;
    if (event.type === "keydown") {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
    }
    setTriggerValue("TRIGGER", Number(tile.dataset.tileIndex));
  };
  mark();
  const observer = new MutationObserver(mark);
  observer.observe(box, { childList: true, subtree: true });
  box.addEventListener("click", open);
  box.addEventListener("keydown", open);
  return () => {
    observer.disconnect();
    box.removeEventListener("click", open);
    box.removeEventListener("keydown", open);
  };
}
""".replace("IMAGE_SELECTOR", IMAGE_SELECTOR.replace('"', '\\"')).replace("TRIGGER", TRIGGER)
_tile_opener = st.components.v2.component("tile_opener", js=TILE_OPENER_JS, isolate_styles=False)


def opener_key(container_key: str) -> str:
    return f"{container_key}_opener"


def make_openable(container_key: str, indices: list[int], labels: list[str], on_open: Callable[[], None]) -> None:
    """Turn the st.image grid in st.container(key=container_key) into buttons, one per index, in order.

    Call it inside that container. `labels` name each tile for a screen reader ("test image #12, a 7");
    on_open runs when one is chosen: opened_index(container_key) then says which.
    """
    _tile_opener(
        key=opener_key(container_key),
        data={"container": container_key, "indices": indices, "labels": labels, "verb": "Open in Sketch:"},
        on_open_change=on_open,
    )


def opened_index(container_key: str) -> int | None:
    """The index of the tile just chosen in that container's grid (read it in the on_open callback)."""
    value = (st.session_state.get(opener_key(container_key)) or {}).get(TRIGGER)
    return None if value is None else int(value)
