from __future__ import annotations

import pytest

from orchestrator.etags import etag, if_match_allows


def test_etag_is_a_quoted_version():
    assert etag(7) == '"7"'


@pytest.mark.parametrize(
    ("header", "allowed"),
    [(None, True), ('"3"', True), ('"2"', False), ("*", True), ('"1", "3"', True), ('W/"3"', False)],
)
def test_if_match(header, allowed):
    assert if_match_allows(header, 3) is allowed
