"""Hosting files: the README's Spaces front matter, the Dockerfile's essentials, Streamlit settings."""

import re
import subprocess
import tomllib

from helpers import REPO


def front_matter() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with YAML front matter for Hugging Face Spaces"
    pairs = {}
    for line in match.group(1).splitlines():
        key, _, value = line.partition(":")
        pairs[key.strip()] = value.strip()
    return pairs


def test_readme_front_matter_describes_a_docker_space():
    meta = front_matter()
    assert meta["sdk"] == "docker"
    assert meta["app_port"].isdigit()
    assert meta["title"] and meta["emoji"]
    assert 0 < len(meta["short_description"]) <= 60  # the Hub's limit
    assert meta["tags"].startswith("[") and "mnist" in meta["tags"]


def test_dockerfile_follows_the_spaces_rules():
    docker = (REPO / "Dockerfile").read_text()
    port = front_matter()["app_port"]
    assert re.search(r"useradd .*--uid 1000 user", docker)
    assert re.search(r"^USER user$", docker, re.M)
    assert "HOME=/home/user" in docker
    assert "MNIST_DATA_DIR=/home/user/" in docker and "MNIST_RUNS_DIR=/home/user/" in docker
    assert f"EXPOSE {port}" in docker
    assert re.search(rf"HEALTHCHECK .*\n?.*localhost:{port}/_stcore/health", docker)
    cmd = re.search(r"^CMD (\[.*\])$", docker, re.M).group(1)
    # One Streamlit process per core behind nginx (studio.serve), listening on the Space's port.
    assert cmd.startswith('["python", "-m", "studio.serve"')
    assert '"--address", "0.0.0.0"' in cmd and f'"--port", "{port}"' in cmd
    assert re.search(r"apt-get install .*nginx", docker)
    assert "requirements.txt" in docker
    assert "data" in (REPO / ".dockerignore").read_text().split()


CPU_WHEEL_INDEX = "https://download.pytorch.org/whl/cpu"


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_installs_cpu_torch_by_default_from_a_build_argument():
    lines = dockerfile_lines()
    arg = next(line for line in lines if line.startswith("ARG TORCH_INDEX_URL"))
    assert arg == f"ARG TORCH_INDEX_URL={CPU_WHEEL_INDEX}"  # the default is the CPU build
    torch_run = next(line for line in lines if '--index-url "$TORCH_INDEX_URL"' in line)
    assert lines.index(arg) < lines.index(torch_run) and torch_run.startswith("RUN pip install")
    # The rest of requirements.txt comes after torch, from the ordinary index (no --index-url of its own).
    rest = torch_run.split("&&")[-1]
    assert "-r requirements.txt" in rest and "--index-url" not in rest


def test_dockerfile_reads_the_torch_pins_from_requirements_txt():
    docker = (REPO / "Dockerfile").read_text()
    pins = [
        line for line in (REPO / "requirements.txt").read_text().splitlines() if re.match(r"torch(vision)?==", line)
    ]
    assert len(pins) == 2
    for pin in pins:  # said once, in requirements.txt: the Dockerfile never repeats a version
        assert pin.partition("==")[2] not in docker
    # The command substitution the RUN uses, run here against the real requirements.txt.
    substitution = re.search(r"\$\((grep .*?requirements\.txt)\)", docker).group(1)
    found = subprocess.run(["sh", "-c", substitution], cwd=REPO, capture_output=True, text=True, check=True)
    assert found.stdout.split() == pins


def test_dockerfile_gives_the_app_folder_to_the_user_before_workdir():
    """The classic builder creates a WORKDIR as root, so `pip install -e .` could not write its egg-info."""
    lines = dockerfile_lines()
    user = lines.index("USER user")
    workdir = next(line for line in lines if line.startswith("WORKDIR "))
    folder = workdir.split(maxsplit=1)[1].replace("$HOME", "/home/user")
    assert lines.index(workdir) > user
    made = [line for line in lines[:user] if line.startswith("RUN ") and "chown user" in line]
    assert made, "no RUN before USER gives a folder to the user"
    command = made[0].replace('"$HOME', '"/home/user').replace("$HOME", "/home/user")
    assert f"mkdir {folder}" in command.replace('"', "") and f"chown user:user {folder}" in command.replace('"', "")


def test_streamlit_config_works_behind_the_spaces_proxy():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is False  # else st.file_uploader answers 403 on Spaces
    assert config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert 0 < config["server"]["maxUploadSize"] <= 200


def test_community_cloud_entry_points_are_at_the_root():
    assert (REPO / "streamlit_app.py").is_file()
    requirements = (REPO / "requirements.txt").read_text()
    for package in ("torch==", "torchvision==", "streamlit==", "streamlit-drawable-canvas=="):
        assert package in requirements


def test_the_image_caps_a_requests_cost_and_the_visitors_disk():
    """Settings the code reads, with values it accepts: a renamed variable would silently cap nothing."""
    from mnist.cost import MAX_MINUTES_ENV, read_max_minutes
    from mnist.disk import BUDGET_ENV

    docker = (REPO / "Dockerfile").read_text()
    settings = dict(re.findall(r"\b(MNIST_[A-Z_]+)=(\S+)", docker))
    assert read_max_minutes({MAX_MINUTES_ENV: settings[MAX_MINUTES_ENV]}) >= 26  # the best preset fits
    assert int(settings[BUDGET_ENV]) > 0
