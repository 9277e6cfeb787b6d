"""The Sketch canvas's toolbar, made usable without a mouse: always shown, above the drawing area, no hidden buttons.

streamlit-drawable-canvas shows its toolbar only on hover, 1rem above the canvas's top-right corner: on a touch
screen it never appears yet still takes taps over the top ~30 px of the drawing, so strokes started there draw
nothing and a tap in the corner presses its invisible Reset. The component renders in a shadow root
(isolate_styles=True), out of reach of the page's CSS, so a small script adds a stylesheet to each such root.
"""

from __future__ import annotations

import json

import streamlit as st

TOOLBAR_HEIGHT_REM = 2.4  # the toolbar's card with touch-sized buttons (1rem icon + padding)
HIDDEN_CONTAINER_KEY = "canvas_style"  # the script's element: hidden, it takes no room in the layout

# Inside the component's shadow root. The toolbar sits in room of its own above the canvas, always visible.
# !important throughout: the component may add its own stylesheet after this one, with selectors as specific.
# Kept: Undo and Redo. Hidden: "Update the app" (every stroke is sent anyway), the edit-mode pencil (it turns
# drawing off, with nothing to say so) with its contextual buttons, and Reset (the page's Clear does that, and
# clears the prediction with it).
TOOLBAR_CSS = f"""
.dc-root {{ padding-top: {TOOLBAR_HEIGHT_REM + 0.25}rem !important; }}
.dc-toolbar {{ opacity: 1 !important; top: 0 !important; padding: 0 !important; transition: none !important; }}
.dc-icon-button {{ padding: .45rem !important; }}
.dc-icon-button svg {{ width: 1rem !important; height: 1rem !important; }}
.dc-icon-button[aria-label="Update the app with this drawing"], .dc-icon-button[aria-label="Edit"],
.dc-toolbar-separator, .dc-toolbar-contextual, .dc-icon-button[aria-label="Reset canvas & history"] {{
  display: none !important;
}}
"""

# Once per page: an observer adds the stylesheet to every isolated component's shadow root, including those
# mounted later (Clear remounts the canvas). The shadow root is attached after its host enters the DOM, so a
# host without one yet is retried on the next frames.
INJECT_JS = """
<script>
(() => {
  if (window.__studioCanvasStyle) return;
  window.__studioCanvasStyle = true;
  const css = %s;
  const MAX_FRAMES = 120;
  const inject = (frames) => {
    let pending = false;
    document.querySelectorAll('[data-testid="stBidiComponentIsolated"]').forEach((host) => {
      const root = host.shadowRoot;
      if (!root) { pending = true; return; }
      if (root.querySelector('style[data-studio-canvas]')) return;
      const style = document.createElement('style');
      style.dataset.studioCanvas = '';
      style.textContent = css;
      root.appendChild(style);
    });
    if (pending && frames > 0) requestAnimationFrame(() => inject(frames - 1));
  };
  new MutationObserver(() => inject(MAX_FRAMES)).observe(document.body, {childList: true, subtree: true});
  inject(MAX_FRAMES);
})();
</script>
<style>.st-key-%s { display: none; }</style>
"""


def inject_js() -> str:
    return INJECT_JS % (json.dumps(TOOLBAR_CSS), HIDDEN_CONTAINER_KEY)


def style_canvas_toolbar() -> None:
    """Restyle the canvas toolbar (see the module's docstring); call it once per run, anywhere on the page."""
    with st.container(key=HIDDEN_CONTAINER_KEY):
        st.html(inject_js(), unsafe_allow_javascript=True)
