"""Hosting files: the README's Spaces front matter, the Dockerfile's essentials, Streamlit settings."""

import re
import tomllib

from conftest import REPO


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
