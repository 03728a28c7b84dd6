"""The README's Python snippets run as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_snippets():
    assert python_blocks()


def test_readme_snippets_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write under runs/
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    assert "{'W': (64, 128), 'b': (128,)}" in capsys.readouterr().out
