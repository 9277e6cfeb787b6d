"""bench/hosting.py's pure helpers: the Debian mirror (bench/stand_in_image.py), process kinds, the CPU quota,
the CUDA byte count.

The script itself builds and runs the Docker image (minutes), so it is not run here.
"""

import pytest

from bench import hosting, stand_in_image

DEB822 = """\
Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security

Types: deb
URIs: http://mirror.example.org/debian/
Suites: bookworm bookworm-updates
"""


def test_the_mirror_is_the_first_debian_archive_not_the_security_one():
    assert stand_in_image.debian_mirror(DEB822) == "http://mirror.example.org/debian"
    one_line = (
        "deb https://packages.example.com/apt stable main\ndeb [arch=amd64] http://ftp.de.debian.org/debian bookworm"
    )
    assert stand_in_image.debian_mirror(one_line) == "http://ftp.de.debian.org/debian"
    assert stand_in_image.debian_mirror("# deb http://deb.debian.org/debian bookworm main\n") is None


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["/usr/local/bin/python", "-m", "streamlit", "run", "streamlit_app.py"], "streamlit backend"),
        (["/home/user/.local/bin/streamlit", "run", "streamlit_app.py"], "streamlit backend"),
        (["python", "-m", "studio.serve", "--port", "7860"], "studio.serve"),
        (["nginx: master process /usr/sbin/nginx -c /tmp/x/nginx.conf"], "nginx master"),
        (["nginx: worker process"], "nginx worker"),
        (["/usr/sbin/nginx", "-c", "/tmp/x/nginx.conf"], "nginx"),
        (["python", "-c", "print('streamlit run')"], "python"),
    ],
)
def test_process_kinds(argv, kind):
    assert hosting.process_kind(argv) == kind
    assert hosting.is_backend(argv) == (kind == "streamlit backend")


def test_the_quota_in_cpus_from_docker_inspect():
    assert hosting.quota_cpus(hosting.NANO, 0, 0) == 1.0
    assert hosting.quota_cpus(0, 150_000, 100_000) == 1.5
    assert hosting.quota_cpus(0, -1, 100_000) is None


def test_backends_fit_the_quota_rounded_up():
    assert hosting.backends_fit(1, 1.0)
    assert not hosting.backends_fit(2, 1.0)
    assert hosting.backends_fit(2, 1.5)
    assert not hosting.backends_fit(0, None)
    assert hosting.backends_fit(16, None)


def test_cuda_bytes_count_a_torch_lib_file_once():
    sizes = {
        "nvidia": 1000,
        "triton": 300,
        "torch": 500,  # holds torch/lib/*
        "torch/lib/libtorch_cuda.so": 200,
        "torch/lib/libtorch_cpu.so": 100,
        "numpy": 50,
    }
    assert hosting.bytes_matching(sizes, hosting.CUDA_PATTERNS) == 1000 + 300 + 200
    assert hosting.bytes_matching(sizes, hosting.TORCH_STACK_PATTERNS) == 1000 + 300 + 500
    stack = hosting.bytes_matching(sizes, hosting.TORCH_STACK_PATTERNS)
    assert hosting.cpu_image_estimate(5000, stack, 120) == 5000 - stack + 120


def test_the_last_json_line_of_a_report():
    text = 'RESULT load: errors=0\n{"errors": 0}\nnot json\n{"errors": 2, "strokes": 9}\ntrailing words\n'
    assert hosting.last_json_line(text) == {"errors": 2, "strokes": 9}
    assert hosting.last_json_line("no json here\n{broken") is None
