# Hugging Face Spaces (Docker SDK) image for MNIST Studio. Spaces runs the container as user 1000
# and routes traffic to app_port (7860, set in README.md's front matter).
FROM python:3.11-slim

# nginx spreads visitors over one Streamlit process per CPU given (python -m studio.serve, see README).
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light && rm -rf /var/lib/apt/lists/*
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MNIST_DATA_DIR=/home/user/data \
    MNIST_RUNS_DIR=/home/user/runs \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
# The app folder is made here, as root, and given to the user: the classic builder (DOCKER_BUILDKIT=0)
# creates a WORKDIR as root, and `pip install -e .` then cannot write mnist_studio.egg-info into it.
RUN useradd --create-home --uid 1000 user && mkdir "$HOME/app" && chown user:user "$HOME/app"
USER user
WORKDIR $HOME/app

# Where torch and torchvision come from. Default: PyTorch's CPU wheels (version V+cpu satisfies ==V),
# which leave out the ~4.9 GB of CUDA libraries that CPU hardware never loads and import in less memory.
# For a GPU host: --build-arg TORCH_INDEX_URL=https://pypi.org/simple (PyPI's torch is the CUDA build).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY --chown=user requirements.txt .
# Their versions are requirements.txt's (read from it, so the pins live in one place); then the rest of
# requirements.txt from PyPI, where pip keeps the torch already installed since it satisfies the pin.
RUN pip install --no-cache-dir --user --index-url "$TORCH_INDEX_URL" \
        $(grep -E '^(torch|torchvision)==' requirements.txt) \
    && pip install --no-cache-dir --user -r requirements.txt

COPY --chown=user . .
RUN pip install --no-cache-dir --user --no-deps -e .
# The data set is fetched at build time when the builder has internet; if not, the app downloads it
# at first use into the writable $MNIST_DATA_DIR (and Sketch works without it meanwhile).
RUN mkdir -p "$MNIST_DATA_DIR" "$MNIST_RUNS_DIR" \
    && (python -c "from mnist.data import load_mnist; load_mnist()" \
        || echo "MNIST download failed at build time: the app will try again at first use")

# Strangers share this server. One request may train for at most 30 estimated minutes: the best preset
# (about 26 min on a 2-vCPU AVX2 host) fits, five seeds of it (2 hours of the only training slot) do not.
# Visitors' runs may use 2,000 MB: about 28 runs with their Explore caches (70 MB each), or 16,000 without,
# on a host disk that is 50 GB and not persistent on Spaces. Override either with docker run -e.
# (Set late: changing them rebuilds no layer above.)
ENV MNIST_MAX_RUN_MINUTES=30 \
    MNIST_RUNS_MAX_MB=2000

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:7860/_stcore/health', timeout=4)"
# One Streamlit process per CPU given behind nginx on 7860 (50 sketching visitors on 2 vCPU: README, Hosting).
CMD ["python", "-m", "studio.serve", "--address", "0.0.0.0", "--port", "7860"]
