"""Where callbacks may go: the allowlist, read by the client that sends them, and the pattern
the OpenAPI document states, every match of which the check takes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.callbacks.targets import NotAllowed, allowed_host, url_pattern

ALLOWED = ["hooks.example.com", "*.example.org", "127.0.0.1", "::1"]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://hooks.example.com/in", "hooks.example.com"),
        ("https://HOOKS.Example.COM./in?x=1", "hooks.example.com"),
        ("http://a.b.example.org:8443/", "a.b.example.org"),
        ("http://127.0.0.1:9/x", "127.0.0.1"),
        ("http://[::1]:9/x", "::1"),
    ],
)
def test_listed_hosts_are_taken(url, host):
    assert allowed_host(url, ALLOWED) == host


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/",  # the wildcard is for hosts under it
        "https://evil-example.org/",
        "https://hooks.example.com.evil.net/",
        "http://127.0.0.1@evil.net/",
        "http://hooks.example.com:x@evil.net/",
        "http://evil.net#@hooks.example.com/",
        "http://evil.net\\@hooks.example.com/",
        "http://2130706433/",  # 127.0.0.1 spelt as a number is not what was listed
        "ftp://hooks.example.com/",
        "//hooks.example.com/",
        "http://hooks.example.com:99999/",
    ],
)
def test_anything_else_is_refused(url):
    with pytest.raises(NotAllowed):
        allowed_host(url, ALLOWED)


def test_with_no_host_listed_every_url_is_refused():
    with pytest.raises(NotAllowed, match="callbacks are off"):
        allowed_host("https://hooks.example.com/", [])


@settings(max_examples=300, deadline=None)
@given(st.from_regex(re.compile(url_pattern(ALLOWED)), fullmatch=True).filter(lambda url: len(url) <= 2048))
def test_every_url_the_document_states_is_taken(url):
    allowed_host(url, ALLOWED)
