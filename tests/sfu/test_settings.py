"""The SFU settings: one admin (and public) URL per Janus, secrets required with them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from videochat.config import Settings, SfuSettings
from videochat.security.headers import CONTENT_SECURITY_POLICY, content_security_policy


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


def test_the_csp_lets_browsers_reach_a_janus_on_another_origin(
    make_settings: Callable[..., Settings],
) -> None:
    sfu = {"admin_url": "http://j1:7088/admin,http://j2:7088/admin", "admin_secret": "s"}
    sfu |= {"room_admin_key": "k", "janus_url": "http://j1:8088/janus,http://j2:8088/janus"}
    elsewhere = make_settings(
        sfu={**sfu, "public_url": "https://sfu.example.org:8089/janus,/janus/2"}
    )
    policy = content_security_policy(elsewhere)
    assert "connect-src 'self' ws: wss: https://sfu.example.org:8089;" in policy
    # Behind the app's own proxy (a path), or no SFU at all: 'self' covers it.
    same_origin = make_settings(sfu={**sfu, "public_url": "/janus/1,/janus/2"})
    assert content_security_policy(same_origin) == CONTENT_SECURITY_POLICY
    assert content_security_policy(make_settings()) == CONTENT_SECURITY_POLICY
