"""What people type: Unicode normalised, and no control or format characters.

NFC makes the same text the same string, whatever keyboard or platform composed it
(``é`` typed as one code point or as ``e`` plus a combining accent). Control and
format characters (bidi overrides, zero-width tricks, terminal escapes) have no
business in a name or a message: names refuse them with a clear error, message text
drops them (newlines and tabs are kept in messages).
"""

from __future__ import annotations

import unicodedata

_FORBIDDEN = {"Cc", "Cf", "Cs"}


def strip_controls(value: str) -> str:
    """NFC text without control or format characters (newlines and tabs kept), trimmed."""
    text = unicodedata.normalize("NFC", value)
    if text.isprintable():
        # The common case, checked in C: "printable" excludes every Cc, Cf and Cs
        # character (and a few harmless others), so there is nothing to drop.
        return text.strip()
    return "".join(
        char for char in text if char in "\n\t" or unicodedata.category(char) not in _FORBIDDEN
    ).strip()


def single_line_name(value: str) -> str:
    """NFC text for a name or title; a control or format character is refused."""
    text = unicodedata.normalize("NFC", value).strip()
    bad = next((char for char in text if unicodedata.category(char) in _FORBIDDEN), None)
    if bad is not None:
        raise ValueError(f"must not contain control characters (found U+{ord(bad):04X})")
    return text
