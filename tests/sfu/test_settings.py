"""The SFU settings: one admin (and public) URL per Janus, secrets required with them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from videochat.config import SfuSettings


def test_urls_are_lists_in_the_same_order() -> None:
    settings = SfuSettings(
        janus_url="http://a:8088/janus, http://b:8088/janus/",
        admin_url="http://a:7088/admin,http://b:7088/admin",
        admin_secret="s",
        room_admin_key="k",
    )
    assert settings.enabled
    assert settings.janus_urls == ["http://a:8088/janus", "http://b:8088/janus"]
    assert settings.public_urls == settings.janus_urls  # unset: the same


def test_unset_is_off() -> None:
    assert not SfuSettings().enabled


@pytest.mark.parametrize(
    "values",
    [
        {"admin_url": "http://a:7088/admin"},  # two instances, one admin URL
        {"admin_url": "http://a/admin,http://b/admin", "public_url": "https://x/janus/1"},
        {"admin_url": "http://a/admin,http://b/admin", "admin_secret": None},
    ],
)
def test_incomplete_settings_are_refused(values: dict[str, object]) -> None:
    base: dict[str, object] = {
        "janus_url": "http://a/janus,http://b/janus",
        "admin_secret": "s",
        "room_admin_key": "k",
    }
    with pytest.raises(ValidationError):
        SfuSettings(**{**base, **values})
