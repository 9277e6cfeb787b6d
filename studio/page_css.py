"""Every page's CSS, as text (no Streamlit here): studio.canvas_style adds it to each page (st.html), and
studio.serve's nginx puts it in the page's <head> too, so through studio.serve it applies before the first
paint and the page does not move when the script's copy arrives (layout shift).
"""

PHONE_MAX_WIDTH_PX = 640  # Streamlit stacks columns below this width: the phone layout's breakpoint
TITLE_INDENT_REM = 2.25  # on a phone the title sits beside the header's menu button, not under it
FOCUS_RING_PX = 3  # keyboard focus outline: Streamlit's own ring on Undo and the page links was faint
SKETCH_LAYOUT_KEY = "sketch-layout"  # Sketch's canvas and answer columns
CONTROLS_KEY = "sketch-controls"  # the stroke width and Clear, one row even on a phone
INPUT_TABS_KEY = "sketch_input"  # Sketch's Draw / Picture tabs (their state: the input the model reads)
TAB_LIST_REM = 2.5  # Streamlit's tab list height: on a phone, the canvas's toolbar row shares it

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
  /* Compare with: the two models' answers side by side on a phone too */
  .st-key-compare [data-testid="stHorizontalBlock"] {{ flex-wrap: nowrap !important; }}
  .st-key-compare [data-testid="stColumn"] {{ min-width: 0 !important; }}
  /* The Draw tab's canvas starts level with the tab names: its Undo / Redo row is at the right end of the tab
     list's row, so the verdict and its probabilities still fit under the canvas on a phone's screen. The list
     stays on top for its tabs' taps and lets the rest of its row through to the toolbar. */
  .st-key-{INPUT_TABS_KEY} [role="tablist"] {{ position: relative; z-index: 1; pointer-events: none; }}
  .st-key-{INPUT_TABS_KEY} [role="tab"] {{ pointer-events: auto; }}
  .st-key-{INPUT_TABS_KEY} [role="tablist"] + [data-testid="stTabPanel"] {{
    margin-top: -{TAB_LIST_REM}rem !important; padding-top: 0 !important;
  }}
}}
/* the comparison table on Sketch (studio.compare): eleven narrow columns that fit a 390 px phone */
.compare-probabilities {{ width: 100%; font-size: 0.8rem; text-align: center; border-collapse: collapse; }}
.compare-probabilities :is(td, th) {{ padding: 0.15rem 0.1rem !important; border: none !important; }}
.compare-probabilities caption {{ caption-side: top; text-align: left; font-size: 0.8rem; opacity: 0.7; }}
[data-testid="stElementContainer"]:has(.sr-only) {{ position: absolute !important; }}
.sr-only {{
  position: absolute !important; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;
}}
</style>
"""
