"""The README's Python block runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.skipif(not README.is_file(), reason="not run from a source tree")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_a_python_block() -> None:
    assert python_blocks(README.read_text())


def test_the_readme_python_block_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # nothing it might write lands in the tree
    for block in python_blocks(README.read_text()):
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})  # noqa: S102
