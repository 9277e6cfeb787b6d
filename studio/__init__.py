"""The app's non-page code: shared state and caches, the sidebar, figures and page helpers (Streamlit, Plotly).

`mnist/` stays plain PyTorch; everything that knows about Streamlit or Plotly and is not a page lives here.
"""
