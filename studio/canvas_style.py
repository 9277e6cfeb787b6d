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

TOOLBAR_HEIGHT_REM = 2.4  # the toolbar's card with touch-sized buttons (1rem icon + padding)
HIDDEN_CONTAINER_KEY = "canvas_style"  # the script's element: hidden, it takes no room in the layout
PHONE_MAX_WIDTH_PX = 640  # Streamlit stacks columns below this width: the phone layout's breakpoint
TITLE_INDENT_REM = 2.25  # on a phone the title sits beside the header's menu button, not under it
FOCUS_RING_PX = 3  # keyboard focus outline: Streamlit's own ring on Undo and the page links was faint
CANVAS_LABEL = "Drawing canvas: draw one digit, 0 to 9, with the mouse or a finger"
SKETCH_LAYOUT_KEY = "sketch-layout"  # Sketch's canvas and answer columns
CONTROLS_KEY = "sketch-controls"  # the stroke width and Clear, one row even on a phone

# Every page. Phone: Streamlit's header is 60 px tall and the content starts 96 px down, which left about
# 110 px of empty header above the title; the title now sits in the header's row, beside its menu button.
# Focus: an outline in the theme's accent colour on whatever the keyboard reaches (buttons, links, the
# sidebar's page links). Code in captions
# (the sidebar's folders) gets the caption's own colour: Streamlit's failed the contrast check on the dark theme.
# Text on the accent (Start, the chosen preset): Streamlit's white on #FF8C42 is 2.3:1, under WCAG's 4.5:1;
# the theme's background colour on it is 8.2:1.
ON_ACCENT_TEXT = "#0E1117"
PAGE_CSS = f"""
<style>
:is(button, a, [role="button"], [role="tab"], [role="option"], input, [tabindex]):focus-visible {{
  outline: {FOCUS_RING_PX}px solid #FF8C42 !important;
  outline-offset: 2px !important;
}}
[data-testid="stSidebarNav"] a:focus-visible {{ background: rgba(255, 140, 66, 0.18) !important; }}
[data-testid="stCaptionContainer"] code {{ color: inherit; background: rgba(255, 255, 255, 0.08); }}
:is([data-testid="stBaseButton-primary"], [data-testid="stBaseButton-segmented_controlActive"],
    [data-testid="stBaseButton-pillsActive"]) :is(p, span, svg) {{ color: {ON_ACCENT_TEXT} !important; }}
@media (pointer: coarse) {{
  .modebar-container {{ display: none !important; }}
}}
@media (max-width: {PHONE_MAX_WIDTH_PX}px) {{
  [data-testid="stHeader"] {{ height: 2.75rem !important; min-height: 0 !important; background: transparent; }}
  [data-testid="stMainBlockContainer"] {{ padding-top: 0.4rem !important; }}
  h1 {{ font-size: 1.6rem !important; padding: 0.25rem 0 0 {TITLE_INDENT_REM}rem !important; }}
  h3 {{ font-size: 1.35rem !important; padding: 0.25rem 0 !important; }}
  .st-key-{SKETCH_LAYOUT_KEY} [data-testid="stHorizontalBlock"] {{ row-gap: 0.5rem !important; }}
  .st-key-{CONTROLS_KEY} [data-testid="stHorizontalBlock"] {{ flex-wrap: nowrap !important; }}
  .st-key-{CONTROLS_KEY} [data-testid="stColumn"] {{ min-width: 0 !important; }}
}}
[data-testid="stElementContainer"]:has(.sr-only) {{ position: absolute !important; }}
.sr-only {{
  position: absolute !important; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;
}}
</style>
"""

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
