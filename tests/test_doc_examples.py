"""Every Python example of the README and ``docs/`` runs, as written, at a tiny size, and every
``contrastkit`` command of their shell examples is valid (parses, names a shipped recipe, sets only
keys and values the recipe takes).

Our own runner rather than pytest-markdown-docs: each block runs in a fresh interpreter (several
pages register methods under one name, and the zoo reads ``$CONTRASTKIT_HOME``), in an empty
folder, after the page's hidden set-up when it has one: an HTML comment right before the block,
``<!-- example setup: ... -->``, which the site does not show (the reader's own loader, a file the
example reads). A block fenced as ``python`` runs; a sketch that cannot run must be fenced
otherwise (``text``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!-- example setup:\n(?P<setup>.*?)-->\n)?```python\n(?P<code>.*?)```", re.S)


def _examples() -> list[tuple[str, str, str]]:
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, m in enumerate(BLOCK.finditer(page.read_text()), 1):
            out.append((f"{page.relative_to(ROOT)}#{number}", m.group("setup") or "", m.group("code")))
    return out


EXAMPLES = _examples()


def test_the_pages_have_examples_to_run():
    assert len(EXAMPLES) >= 7
    assert sum(1 for _, setup, _ in EXAMPLES if setup) >= 3  # the set-ups are found, not skipped


@pytest.mark.parametrize(("where", "setup", "code"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_the_example_runs(where, setup, code, tmp_path):
    env = {**os.environ, "CONTRASTKIT_HOME": str(tmp_path / "home"), "CONTRASTKIT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", setup + "\n" + code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{where}:\n{done.stderr[-3000:]}"


SHELL = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)


def _commands() -> list[tuple[str, str]]:
    """Every ``contrastkit ...`` line of the shell examples (continuations joined, comments cut)."""
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in SHELL.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split(" #")[0].strip()
                if command.startswith("contrastkit "):
                    out.append((str(page.relative_to(ROOT)), command))
    return out


COMMANDS = _commands()


def test_the_pages_have_commands_to_check():
    assert len(COMMANDS) >= 60


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w}:{c[:60]}" for w, c in COMMANDS])
def test_the_shell_example_is_a_valid_command(where, command):
    """What a newcomer types parses, names a shipped recipe and only keys and values it takes. The
    runs themselves: the recipes' smoke tests (tests/pipeline/test_runs.py); the commands that
    need the user's data, a finished run or a GPU stop here."""
    import shlex

    from contrastkit.cli import _parser
    from contrastkit.config import apply_overrides, list_recipes, load_recipe, validate

    argv = shlex.split(command.replace("<timestamp>", "T").replace("<stamp>", "T"))[1:]
    args = _parser().parse_args(argv)
    recipe = getattr(args, "recipe", None)
    if args.command in ("train", "federate") and recipe:
        assert recipe in list_recipes(), f"{where}: no shipped recipe {recipe!r}"
        raw = apply_overrides(load_recipe(recipe), list(getattr(args, "overrides", [])))
        if args.command == "train":
            validate(raw)
        else:
            from contrastkit.federated.run import validate_federated

            validate_federated(raw)
