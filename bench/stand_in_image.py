"""A stand-in for python:3.11-slim when the engine has none (Docker Hub is out of reach on the development machines).

`debootstrap --variant=minbase bookworm` from the Debian mirror apt uses, Debian's CPython 3.11 with pip and
venv, python/python3/pip in /usr/local/bin, then `docker import`. Only the stand-in gets this machine's extra
CA certificates (a TLS-inspecting proxy); the Dockerfile never does. Used by bench/hosting.py.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import time
from pathlib import Path

from bench.docker_engine import BUILD_TIMEOUT_S, MB, docker, docker_cli, image_inspect

BASE_IMAGE = "python:3.11-slim"
STAND_IN_LABEL = "mnist-studio.stand-in"  # set on the stand-in base image, so a report can say what it ran on
DEBIAN_SUITE = "bookworm"  # python:3.11-slim's Debian; its python3 is CPython 3.11
STAND_IN_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates", "passwd")
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
STAND_IN_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # the bundle update-ca-certificates writes


def debian_mirror(sources: str) -> str | None:
    """The first Debian archive (not -security) that an apt sources text names, deb822 or one-line style."""
    for line in sources.splitlines():
        words = line.split()
        if words[:1] == ["URIs:"]:
            uris = words[1:]
        elif words[:1] == ["deb"]:
            uris = [w for w in words[1:] if "://" in w][:1]
        else:
            continue
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return None


def read_apt_sources() -> str:
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    return "\n".join(f.read_text(errors="replace") for f in files if f.is_file())


def debootstrap(rootfs: Path, mirror: str) -> None:
    include = ",".join(STAND_IN_PACKAGES)
    command = ["debootstrap", "--variant=minbase", f"--include={include}", DEBIAN_SUITE, str(rootfs), mirror]
    subprocess.run(command, check=True, timeout=BUILD_TIMEOUT_S, stdout=subprocess.DEVNULL)


def trust_extra_cas(rootfs: Path) -> list[str]:
    """This machine's extra CAs into the stand-in (its TLS proxy), and pip told to use the bundle."""
    names = []
    target = rootfs / EXTRA_CA_DIR.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    for cert in sorted(EXTRA_CA_DIR.glob("*.crt")):
        shutil.copy2(cert, target / cert.name)
        names.append(cert.name)
    subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True)
    pip_conf = configparser.ConfigParser()
    pip_conf["global"] = {"cert": STAND_IN_BUNDLE}
    with (rootfs / "etc" / "pip.conf").open("w") as f:
        pip_conf.write(f)
    return names


def make_python_like_the_official_image(rootfs: Path) -> None:
    """python, python3 and pip in /usr/local/bin, and pip free to install (no EXTERNALLY-MANAGED)."""
    local_bin = rootfs / "usr" / "local" / "bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    for name, target in (("python", "/usr/bin/python3"), ("python3", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        (local_bin / name).unlink(missing_ok=True)
        (local_bin / name).symlink_to(target)
    for marker in (rootfs / "usr" / "lib").glob("python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    # The official image ships no apt lists or downloaded packages; the Dockerfile runs apt-get update.
    for leftover in (rootfs / "var/lib/apt/lists", rootfs / "var/cache/apt/archives"):
        for path in leftover.glob("*"):
            if path.is_file():
                path.unlink()


def import_rootfs(rootfs: Path) -> None:
    changes = [
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"LABEL {STAND_IN_LABEL}=debootstrap-{DEBIAN_SUITE}",
        'CMD ["python3"]',
    ]
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    args = [docker_cli(), "import", *[a for c in changes for a in ("--change", c)], "-", BASE_IMAGE]
    done = subprocess.run(args, stdin=tar.stdout, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    tar.stdout.close()
    if tar.wait() != 0 or done.returncode != 0:
        raise RuntimeError(f"docker import failed: {done.stderr.strip()}")


def ensure_base_image(work: Path) -> dict:
    """python:3.11-slim: the engine's own, else a stand-in built here; what it is."""
    found = image_inspect(BASE_IMAGE)
    if found is None:
        mirror = debian_mirror(read_apt_sources()) or "http://deb.debian.org/debian"
        rootfs = work / "rootfs"
        if rootfs.exists():
            shutil.rmtree(rootfs)
        print(f"base: no {BASE_IMAGE}: building a stand-in from {mirror} ({DEBIAN_SUITE}, minbase) ...", flush=True)
        started = time.perf_counter()
        debootstrap(rootfs, mirror)
        cas = trust_extra_cas(rootfs)
        make_python_like_the_official_image(rootfs)
        import_rootfs(rootfs)
        shutil.rmtree(rootfs)
        print(f"base: stand-in imported in {time.perf_counter() - started:.0f} s (extra CAs: {', '.join(cas)})")
        found = image_inspect(BASE_IMAGE)
    labels = (found.get("Config") or {}).get("Labels") or {}
    python = docker("run", "--rm", "--network", "host", BASE_IMAGE, "python", "--version").strip()
    return {
        "image": BASE_IMAGE,
        "stand_in": STAND_IN_LABEL in labels,
        "python": python,
        "size_mb": round(found["Size"] / MB),
    }
