"""The project's layout rules, checked: a UI-free library, no sys.path edits, bench independent of tests."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import mnist

REPO = Path(__file__).resolve().parent.parent
UI_PACKAGES = ("streamlit", "plotly")


def imported_names(path: Path) -> set[str]:
    """Top-level names of every module a Python file imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((REPO / folder).rglob("*.py"))]


def test_library_source_imports_no_ui_package():
    offenders = {str(p.relative_to(REPO)): imported_names(p) & set(UI_PACKAGES) for p in python_files("mnist")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_importing_every_library_module_loads_no_ui_package():
    """Also catches a UI import hidden behind a third-party module or a dynamic import."""
    modules = [f"mnist.{m.name}" for m in pkgutil.iter_modules(mnist.__path__) if m.name != "__main__"]
    assert "mnist.train" in modules and "mnist.checkpoint" in modules  # the walk found the package
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {UI_PACKAGES!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_no_file_edits_sys_path():
    """The project installs as a package (pip install -e .): nothing may patch the import path."""
    files = [REPO / "streamlit_app.py", *python_files("mnist", "studio", "pages", "bench", "tests")]
    patched = [str(p.relative_to(REPO)) for p in files if "sys.path." in p.read_text() and p != Path(__file__)]
    assert patched == []


def test_bench_does_not_import_tests():
    assert [str(p.relative_to(REPO)) for p in python_files("bench") if "tests" in imported_names(p)] == []


def test_pages_hold_only_page_scripts():
    """Every .py in pages/ is a page that streamlit_app.py routes to; helpers live in studio/."""
    routed = {node.args[0].value for node in ast.walk(ast.parse((REPO / "streamlit_app.py").read_text()))
              if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Page" and node.args}  # fmt: skip
    assert routed == {f"pages/{p.name}" for p in (REPO / "pages").glob("*.py")}


HEADING_CALLS = ("title", "header", "subheader")  # Streamlit gives each a hidden "link to heading" Tab stop


def test_page_headings_have_no_link_anchor():
    """A keyboard user tabbed through four invisible heading links on Sketch: every heading says anchor=False."""
    linked = []
    for path in python_files("pages", "studio") + [REPO / "streamlit_app.py"]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            if call and node.func.attr in HEADING_CALLS and getattr(node.func.value, "id", None) == "st":
                anchor = next((k.value for k in node.keywords if k.arg == "anchor"), None)
                if not (isinstance(anchor, ast.Constant) and anchor.value is False):
                    linked.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not linked, f"headings with a link anchor (add anchor=False): {linked}"
