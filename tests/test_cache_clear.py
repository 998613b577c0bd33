"""--sslrobust-cache-clear deletes only what the cache wrote, and only in runs that run tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_sslrobust.features.cachedir import MARKER, CacheDirError, clear, mark

KEY = "ab" + "1" * 62


def _entry(cache: Path, key: str = KEY) -> list[Path]:
    shard = cache / key[:2]
    shard.mkdir(parents=True, exist_ok=True)
    files = [
        shard / f"{key}.safetensors",
        shard / f"{key}.safetensors.lock",
        shard / f".{key}.safetensors.4242.{'c' * 32}.tmp",
    ]
    for path in files:
        path.write_bytes(b"x")
    return files


def test_clear_deletes_entries_and_keeps_foreign_files(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mark(cache)
    files = _entry(cache)
    (cache / "notes.txt").write_text("mine, not the cache's")
    (cache / KEY[:2] / "README").write_text("also mine")

    assert clear(cache) == 3

    assert not any(path.exists() for path in files)
    assert (cache / "notes.txt").exists() and (cache / KEY[:2] / "README").exists()
    assert (cache / MARKER).exists()


def test_clear_refuses_a_directory_that_is_not_a_cache(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "setup.py").write_text("print('hello')")
    _entry(project)
    with pytest.raises(CacheDirError, match="is not a pytest-sslrobust cache"):
        clear(project)
    assert (project / "setup.py").exists()
    assert (project / KEY[:2] / f"{KEY}.safetensors").exists()  # nothing deleted at all


def test_clear_accepts_an_unmarked_cache_of_only_entries(tmp_path: Path) -> None:
    cache = tmp_path / "old-cache"  # written before the marker existed
    files = _entry(cache)
    assert clear(cache) == 3
    assert not any(path.exists() for path in files) and not (cache / KEY[:2]).exists()


def test_clear_of_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    assert clear(tmp_path / "nowhere") == 0
    assert not (tmp_path / "nowhere").exists()


def test_cache_dot_is_refused_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    (pytester.path / "data.csv").write_text("keep me")
    result = pytester.runpytest_subprocess("--sslrobust-cache-dir=.", "--sslrobust-cache-clear")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --sslrobust-cache-dir=. is not a pytest-sslrobust cache*"])
    assert (pytester.path / "data.csv").exists() and (pytester.path / "test_one.py").exists()


@pytest.mark.parametrize("looking", ["--collect-only", "--fixtures", "--markers"])
def test_runs_that_only_look_clear_nothing(pytester: pytest.Pytester, looking: str) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    cache = pytester.path / "cache"
    mark(cache)
    files = _entry(cache)
    result = pytester.runpytest_subprocess(
        f"--sslrobust-cache-dir={cache}", "--sslrobust-cache-clear", looking
    )
    assert result.ret == pytest.ExitCode.OK
    assert all(path.exists() for path in files)


def test_a_run_clears_and_the_cache_marks_its_directory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_one="""
        def test_one(sslrobust):
            assert sslrobust.features("original", split="test").features.shape[0] == 10
        """
    )
    cache = pytester.path / "cache"
    mark(cache)
    old = _entry(cache, "cd" + "2" * 62)
    result = pytester.runpytest_subprocess(
        f"--sslrobust-cache-dir={cache}",
        "--sslrobust-cache-clear",
        "--sslrobust-model=random-resnet18",
        "--sslrobust-max-images=10",
    )
    result.assert_outcomes(passed=1)
    assert not any(path.exists() for path in old)
    assert any(cache.glob("*/*.safetensors"))  # this run's entries were written


def test_a_new_cache_gets_its_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_one="""
        def test_one(sslrobust):
            sslrobust.features("original", split="test")
        """
    )
    cache = pytester.path / "fresh"
    result = pytester.runpytest_subprocess(
        f"--sslrobust-cache-dir={cache}",
        "--sslrobust-model=random-resnet18",
        "--sslrobust-max-images=10",
    )
    result.assert_outcomes(passed=1)
    assert (cache / MARKER).exists()
    # and a later clear of it works, leaving the directory usable
    assert clear(cache) > 0 and cache.is_dir()


def test_the_digest_memo_is_the_caches_own(tmp_path: Path) -> None:
    from pytest_sslrobust.features.cachedir import DIGEST_MEMO

    cache = tmp_path / "cache"
    _entry(cache)
    (cache / DIGEST_MEMO).write_text("{}")
    assert clear(cache) == 4
    assert not (cache / DIGEST_MEMO).exists() and cache.is_dir()
