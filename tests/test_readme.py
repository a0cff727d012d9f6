"""The README's settings table matches config.py, and what the README cites exists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from videochat.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PREFIX = Settings.model_config.get("env_prefix", "")
NESTING = Settings.model_config.get("env_nested_delimiter") or "__"
# Linked before they are written (issue 12); a link to one that exists is checked as usual.
UNITS = {"min": 60, "h": 3600, "days": 86400, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
NUMBER = re.compile(r"^(\d+(?:\.\d+)?)(?:\s+(" + "|".join(UNITS) + r"))?$")
NOT_COMPARED = object()


def settings_fields(
    model: type[BaseModel] = Settings, prefix: str = PREFIX
) -> Iterator[tuple[str, Any]]:
    """(environment variable, default) of every leaf field, nested models walked."""
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from settings_fields(field.annotation, variable + NESTING)
        else:
            yield variable, field.get_default(call_default_factory=True)


def section(text: str, heading: str) -> list[str]:
    """The lines under a level-2 heading, up to the next one."""
    lines = text.splitlines()
    start = lines.index(f"## {heading}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def split_cell(cell: str) -> list[str]:
    """Comma-separated parts of a cell, leaving commas inside backticks alone."""
    return [part.strip() for part in re.split(r",(?=(?:[^`]*`[^`]*`)*[^`]*$)", cell)]


def expand(cell: str) -> list[str]:
    """Variables named in a cell; `__NAME` repeats the previous variable's prefix."""
    names: list[str] = []
    for token in re.findall(r"`([A-Z0-9_]+)`", cell):
        if token.startswith(NESTING):
            assert names, f"{token} has no variable before it to take its prefix from"
            token = names[-1].rsplit(NESTING, 1)[0] + token
        names.append(token)
    return names


def literal(text: str) -> Any:
    """The value a default cell states, or NOT_COMPARED for prose."""
    if text == "unset":
        return None
    if text.startswith("`") and text.endswith("`") and text.count("`") == 2:
        inner = text[1:-1]
        try:
            return json.loads(inner)
        except ValueError:
            return inner
    match = NUMBER.match(text)
    if match:
        return float(match.group(1)) * UNITS.get(match.group(2) or "", 1)
    return NOT_COMPARED


def same(documented: Any, default: Any) -> bool:
    if documented is None:
        return default is None or default == []
    if isinstance(default, SecretStr):
        return False
    if isinstance(default, bool) or isinstance(documented, bool):
        return documented is default
    if isinstance(default, Path):
        return Path(str(documented)) == default
    if isinstance(default, int | float):
        return isinstance(documented, int | float) and float(documented) == float(default)
    return bool(documented == default or str(default) == str(documented))


def settings_table() -> dict[str, Any]:
    """Variable -> documented default (or NOT_COMPARED), from the README's table."""
    rows: dict[str, Any] = {}
    for line in section(README.read_text(), "Settings"):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or cells[0] in ("variable", "---"):
            continue
        names = expand(cells[0])
        assert names, f"a settings row names no variable: {line}"
        defaults = split_cell(cells[1])
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(defaults) == len(names), f"give one default per variable: {line}"
        for name, default in zip(names, defaults, strict=True):
            assert name not in rows, f"{name} is documented twice"
            rows[name] = literal(default)
    return rows


@pytest.fixture(scope="module")
def documented() -> dict[str, Any]:
    return settings_table()


def test_every_setting_has_a_row(documented: dict[str, Any]) -> None:
    fields = dict(settings_fields())
    assert len(fields) > 50
    missing = sorted(set(fields) - set(documented))
    assert not missing, f"add these to the README's settings table: {missing}"


def test_every_row_names_a_setting(documented: dict[str, Any]) -> None:
    unknown = sorted(set(documented) - dict(settings_fields()).keys())
    assert not unknown, f"the README's settings table names unknown settings: {unknown}"


def test_documented_defaults_are_the_real_ones(documented: dict[str, Any]) -> None:
    compared = 0
    wrong = []
    for name, default in settings_fields():
        shown = documented.get(name, NOT_COMPARED)
        if shown is NOT_COMPARED:
            continue
        compared += 1
        if not same(shown, default):
            wrong.append(f"{name}: README says {shown!r}, config.py has {default!r}")
    assert compared > 50
    assert not wrong, "\n".join(wrong)


def test_shorthand_takes_the_previous_prefix() -> None:
    cell = "`VIDEOCHAT_TURN__URLS`, `__SECRET`, `VIDEOCHAT_STUN__URLS`"
    assert expand(cell) == [
        "VIDEOCHAT_TURN__URLS",
        "VIDEOCHAT_TURN__SECRET",
        "VIDEOCHAT_STUN__URLS",
    ]
    assert split_cell("`a, b`, 30 days, unset") == ["`a, b`", "30 days", "unset"]
    assert literal("30 days") == 30 * 86400
    assert literal("a development value") is NOT_COMPARED


def test_linked_files_exist() -> None:
    links = re.findall(r"\]\(([^)#\s]+)", README.read_text())
    assert "docs/BENCHMARKS.md" in links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"the README links files that do not exist: {missing}"


def test_cited_modules_exist() -> None:
    cited = set(re.findall(r"`([\w/.-]+\.(?:py|sh))`", README.read_text()))
    assert "chat/writer.py" in cited
    places = (ROOT, ROOT / "src" / "videochat")
    missing = sorted(path for path in cited if not any((base / path).exists() for base in places))
    assert not missing, f"the README cites files that do not exist: {missing}"
