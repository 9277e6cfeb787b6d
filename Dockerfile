# Hugging Face Spaces (Docker SDK) image for MNIST Studio. Spaces runs the container as user 1000
# and routes traffic to app_port (7860, set in README.md's front matter).
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MNIST_DATA_DIR=/home/user/data \
    MNIST_RUNS_DIR=/home/user/runs \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
WORKDIR $HOME/app

COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt

COPY --chown=user . .
RUN pip install --no-cache-dir --user --no-deps -e .
# The data set is fetched at build time when the builder has internet; if not, the app downloads it
# at first use into the writable $MNIST_DATA_DIR (and Sketch works without it meanwhile).
RUN mkdir -p "$MNIST_DATA_DIR" "$MNIST_RUNS_DIR" \
    && (python -c "from mnist.data import load_mnist; load_mnist()" \
        || echo "MNIST download failed at build time: the app will try again at first use")

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:7860/_stcore/health', timeout=4)"
CMD ["streamlit", "run", "streamlit_app.py", "--server.address=0.0.0.0", "--server.port=7860"]
