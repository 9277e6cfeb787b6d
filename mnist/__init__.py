"""MNIST Studio's library: data, models, training, checkpoints and canvas prediction. No Streamlit here."""

__version__ = "0.1.0"
