"""The README and docs/ stay true: every relative link resolves, every `epx` command shown in a
bash block still parses (a recipe file runs `--dry-run`, anything else `--help`, which checks
every option name), the recipe reference is what the schema generates, and the README fits on a
screen or two."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def shown_commands(page: Path) -> list[str]:
    """The `epx ...` and `... -m epx.cli ...` lines of a page's bash blocks (continuations
    joined, comments cut)."""
    commands = []
    for block in BASH_BLOCK.findall(page.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("epx ") or " -m epx.cli " in line:
                commands.append(line)
    return commands


def epx_arguments(command: str) -> list[str]:
    """What the command hands `epx` (a launcher in front is left out)."""
    words = shlex.split(command)
    if "epx.cli" in words:
        return words[words.index("epx.cli") + 1 :]
    return words[1:]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = [target for target in LINK.findall(page.read_text(encoding="utf-8"))
              if "://" not in target and not (page.parent / target).exists()]  # fmt: skip
    assert broken == []


COMMANDS = [(page, command) for page in PAGES for command in shown_commands(page)]


def test_the_pages_show_commands():
    assert len(COMMANDS) >= 15 and {p.name for p, _ in COMMANDS} >= {"README.md", "train.md"}


@pytest.mark.parametrize(("page", "command"), COMMANDS,
                         ids=[f"{p.name}:{c[:60]}" for p, c in COMMANDS])  # fmt: skip
def test_every_command_shown_parses(page, command):
    arguments = epx_arguments(command)
    is_recipe = len(arguments) > 1 and arguments[0] == "train" and (REPO / arguments[1]).is_file()
    check = ["--dry-run"] if is_recipe and "--resume" not in arguments else ["--help"]
    done = subprocess.run([sys.executable, "-m", "epx.cli", *arguments, *check], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, f"{page.name}: {command}\n{done.stderr[-2000:]}"


def test_the_recipe_reference_is_what_the_schema_generates():
    done = subprocess.run([sys.executable, "scripts/recipe_reference.py", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_fits_on_a_screen_or_two():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 150
