"""Every ``pip install`` command in the README and docs works from a clone: the
distributions of this repository are not on a package index, so each is named
by its path in the repository (with extras it declares), never by its name."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A command at the start of a line of a code block or of an inline code span.
_COMMAND = re.compile(r"(?:^|`)\s*((?:python3? -m )?pip install [^`\n#]*)", re.MULTILINE)


def _commands() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for match in _COMMAND.finditer(document.read_text(encoding="utf-8")):
            command = match.group(1).split("&&")[0].strip()
            found.append((document.name, command))
    return found


def _distributions() -> dict[str, Path]:
    projects = [
        ROOT / "pyproject.toml",
        *ROOT.glob("plugins/*/pyproject.toml"),
        *ROOT.glob("examples/*/pyproject.toml"),
    ]
    return {tomllib.loads(path.read_text())["project"]["name"]: path.parent for path in projects}


def _extras(project: Path) -> set[str]:
    return set(tomllib.loads((project / "pyproject.toml").read_text())["project"].get("optional-dependencies", {}))


@pytest.mark.parametrize(("document", "command"), _commands())
def test_install_command_names_this_repositorys_distributions_by_path(document: str, command: str) -> None:
    ours = _distributions()
    arguments = [word for word in shlex.split(command)[command.split().index("install") + 1 :] if word != "-e"]
    for argument in arguments:
        if argument.startswith(("-", "path/to/")):
            continue
        target, _, extras = argument.partition("[")
        if target.startswith(".") or "/" in target:
            project = (ROOT / target).resolve()
            assert (project / "pyproject.toml").is_file(), f"{document}: {command!r}: {target} is not a project"
            for extra in filter(None, extras.rstrip("]").split(",")):
                assert extra in _extras(project), f"{document}: {command!r}: {target} has no extra {extra!r}"
        else:
            assert target not in ours, f"{document}: {command!r} asks a package index for {target}; use its path"


def test_the_docs_have_install_commands() -> None:
    assert {document for document, _ in _commands()} >= {"README.md", "quickstart.md", "s3.md", "writing-a-backend.md"}
