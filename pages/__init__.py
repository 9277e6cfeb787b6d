"""The app's pages (run by st.navigation in streamlit_app.py) and their shared helpers in common.py."""
