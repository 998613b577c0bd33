"""An installed plugin costs nothing to a project that does not use it, and the layers keep
their boundaries: the vocabulary is stdlib only, metrics do not import variants, and variant
ids are formatted in one place."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_sslrobust"
# Libraries that must wait until a sslrobust fixture or facade method is used.
HEAVY = (
    "torch",
    "torchvision",
    "timm",
    "sklearn",
    "skimage",
    "scipy",
    "matplotlib",
    "cv2",
    "pytorch_grad_cam",
    "safetensors",
    "jinja2",
    "PIL",
    "fsspec",  # only for a cache URL (features/objectstore.py)
    "s3fs",
)

REPORTER = """
import json, os, sys

def pytest_unconfigure(config):
    names = json.loads(os.environ["HEAVY_NAMES"])
    with open(os.environ["HEAVY_OUT"], "w") as handle:
        json.dump(sorted(name for name in names if name in sys.modules), handle)
"""

HELPERS_FILE = """
import pytest
from pytest_sslrobust import DataError, assert_cka_between, assert_mce_below, register_backbone


def test_similarity(sslrobust):
    assert_cka_between(sslrobust.features(), sslrobust.features("center"), 0.5, 1.0)


@pytest.mark.sslrobust(corruptions="noise", severities=[1, 2])
def test_sweep(sslrobust_corruption):
    pass


def test_variant(sslrobust_variant):
    pass
"""


def loaded_after(tmp_path: Path, args: list[str], files: dict[str, str]) -> list[str]:
    """Run pytest in a fresh process on ``files``; the HEAVY modules it had imported."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "heavy_reporter.py").write_text(REPORTER)
    out = tmp_path / "loaded.json"
    env = {
        "PYTHONPATH": f"{tmp_path}:{PACKAGE.parent}",
        "HEAVY_NAMES": json.dumps([*HEAVY, "numpy"]),
        "HEAVY_OUT": str(out),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    command = [sys.executable, "-m", "pytest", "-p", "heavy_reporter", "-p", "no:randomly"]
    done = subprocess.run(
        [*command, "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 5), done.stdout + done.stderr
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_pytest_help_imports_nothing_heavy(tmp_path: Path) -> None:
    assert loaded_after(tmp_path, ["--help"], {}) == []


def test_an_unrelated_project_imports_nothing_heavy(tmp_path: Path) -> None:
    files = {"test_plain.py": "def test_one():\n    assert 1 + 1 == 2\n"}
    assert loaded_after(tmp_path, ["-q"], files) == []


def test_collecting_a_suite_that_imports_contracts_imports_no_model_stack(tmp_path: Path) -> None:
    loaded = loaded_after(tmp_path, ["--collect-only", "-q"], {"test_suite.py": HELPERS_FILE})
    # numpy may come with the variant objects a sweep parametrizes over; nothing heavier.
    assert [name for name in loaded if name != "numpy"] == []


def test_the_vocabulary_imports_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import pytest_sslrobust.vocabulary; "
        "new = sorted(set(sys.modules) - before); "
        "print(','.join(m for m in new if not m.startswith('pytest_sslrobust') "
        "and m.split('.')[0] not in sys.stdlib_module_names))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", done.stdout


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "metrics").glob("*.py")), ids=lambda p: p.name)
def test_metrics_do_not_import_variants(path: Path) -> None:
    assert not [m for m in _imports(path) if m.startswith("pytest_sslrobust.variants")]


def test_the_vocabulary_imports_no_other_plugin_module() -> None:
    assert not [m for m in _imports(PACKAGE / "vocabulary.py") if m.startswith("pytest_sslrobust")]


def test_variant_ids_are_formatted_only_by_the_vocabulary() -> None:
    pattern = re.compile(r"""f["'][^"']*\}-s\{|f["'][^"']*-r\{|f["']augment-v\{""")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "vocabulary.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_deferred_contracts_behave_like_the_functions() -> None:
    import inspect

    import pytest_sslrobust
    from pytest_sslrobust import assertions

    deferred = pytest_sslrobust.assert_cka_between
    assert deferred.__doc__ == assertions.assert_cka_between.__doc__
    assert inspect.signature(deferred) == inspect.signature(assertions.assert_cka_between)
    assert pytest_sslrobust.assert_cka_between is deferred  # one object per name
    with pytest.raises(ValueError, match="Expected"):
        deferred([[1.0]], [[1.0], [2.0]], 0.0, 1.0)


def test_strategies_without_hypothesis_say_which_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n    import pytest_sslrobust.strategies\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert "pip install 'pytest-sslrobust[hypothesis]'" in done.stdout, done.stdout + done.stderr


def test_no_private_name_is_imported_across_modules():
    """Each module's private names stay its own; ``metrics/_checks.py`` is the one shared
    argument-check vocabulary (a private module of the package, imported by name)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "pytest_sslrobust"
            ):
                found += [
                    f"{path.relative_to(PACKAGE)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and alias.name != "_checks"
                ]
    assert found == []
