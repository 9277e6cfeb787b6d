"""The app's own CSS: every page's (style_page), and the Sketch canvas's (style_canvas_toolbar).

Every page: on a phone, a header trimmed to its menu button and a smaller title; visible keyboard focus; no Plotly
mode bar on touch screens (it covered the charts' titles and legends, and a confusion-matrix cell took two taps).

The Sketch canvas's toolbar, made usable without a mouse: always shown, above the drawing area, no hidden buttons.

streamlit-drawable-canvas shows its toolbar only on hover, 1rem above the canvas's top-right corner: on a touch
screen it never appears yet still takes taps over the top ~30 px of the drawing, so strokes started there draw
nothing and a tap in the corner presses its invisible Reset. The component renders in a shadow root
(isolate_styles=True), out of reach of the page's CSS, so a small script adds a stylesheet to each such root.
"""

from __future__ import annotations

import json

import streamlit as st

from studio.page_css import CONTROLS_KEY, INPUT_TABS_KEY, PAGE_CSS, SKETCH_LAYOUT_KEY  # noqa: F401 - the page's keys

TOOLBAR_HEIGHT_REM = 2.4  # the toolbar's card with touch-sized buttons (1rem icon + padding)
HIDDEN_CONTAINER_KEY = "canvas_style"  # the script's element: hidden, it takes no room in the layout
CANVAS_LABEL = "Drawing canvas: draw one digit, 0 to 9, with the mouse or a finger"


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
    label();
    if (pending && frames > 0) requestAnimationFrame(() => inject(frames - 1));
  };
  // The verdict's container is kept across reruns (a keyed container): a live region there is announced
  // whenever its text changes. The canvas (and its component's host) gets a name.
  const label = () => {
    document.querySelectorAll('.st-key-prediction:not([aria-live])').forEach((box) => {
      box.setAttribute('aria-live', 'polite');
      box.setAttribute('role', 'status');
    });
    document.querySelectorAll('[data-testid="stBidiComponentIsolated"]').forEach((host) => {
      const canvas = host.shadowRoot && host.shadowRoot.querySelector('canvas.upper-canvas');
      if (!canvas || canvas.getAttribute('aria-label')) return;
      canvas.setAttribute('aria-label', %s);
      canvas.setAttribute('role', 'img');  // a canvas has no role of its own, and a name needs one
      host.setAttribute('role', 'group');
      host.setAttribute('aria-label', %s);
    });
  };
  new MutationObserver(() => { label(); inject(MAX_FRAMES); }).observe(document.body, {childList: true, subtree: true});
  label();
  inject(MAX_FRAMES);
})();
</script>
<style>.st-key-%s { display: none; }</style>
"""


def inject_js() -> str:
    label = json.dumps(CANVAS_LABEL)
    return INJECT_JS % (json.dumps(TOOLBAR_CSS), label, label, HIDDEN_CONTAINER_KEY)


def style_page() -> None:
    """Every page's CSS (see the module's docstring); once per run, before the page. Style only: takes no room."""
    st.html(PAGE_CSS)


def style_canvas_toolbar() -> None:
    """Restyle the canvas toolbar (see the module's docstring); call it once per run, anywhere on the page."""
    with st.container(key=HIDDEN_CONTAINER_KEY):
        st.html(inject_js(), unsafe_allow_javascript=True)
