from __future__ import annotations

from orchestrator.leads.services import merge_patch


def test_merge_patch_follows_rfc_7396():
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    patch = {"a": "z", "c": {"f": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}}


def test_merge_patch_replaces_non_objects_and_leaves_target_untouched():
    target = {"list": [1, 2], "x": {"y": 1}}
    assert merge_patch(target, {"list": [3], "x": 5}) == {"list": [3], "x": 5}
    assert target == {"list": [1, 2], "x": {"y": 1}}
