"""Typed text: NFC, and no control or format characters."""

from __future__ import annotations

import pytest

from videochat.kit.text import single_line_name, strip_controls


def test_message_text_keeps_lines_and_drops_tricks() -> None:
    assert strip_controls(" a\u202eb\u200bc\x1b[31m\nnext\tcol ") == "abc[31m\nnext\tcol"
    assert strip_controls("e\u0301") == "\u00e9"


@pytest.mark.parametrize("raw", ["a\x00b", "left\u202eright", "zero\u200bwidth", "a\nb"])
def test_names_refuse_control_and_format_characters(raw: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        single_line_name(raw)


def test_names_are_normalised_and_trimmed() -> None:
    assert single_line_name("  Cafe\u0301 ") == "Caf\u00e9"
