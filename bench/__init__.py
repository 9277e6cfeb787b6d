"""Benchmarks (python bench/NAME.py) and the harness that starts the app and drives Chromium."""
