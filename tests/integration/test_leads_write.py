"""PUT, PATCH and DELETE /leads/{id}, with optimistic concurrency through ETag / If-Match."""

from __future__ import annotations

import uuid

from tests.factories import lead_body


async def _lead(client, **fields):
    response = await client.post("/leads", json=lead_body(**fields))
    assert response.status_code == 201
    return response.json(), response.headers["etag"]


async def test_put_replaces_every_writable_field_and_bumps_version(client):
    lead, tag = await _lead(client, company="Old", score=10, attributes={"keep": False})
    replacement = lead_body(company="New", score=None, attributes={"only": "this"}, status="contacted")
    response = await client.put(f"/leads/{lead['id']}", json=replacement, headers={"If-Match": tag})
    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    stored = (await client.get(f"/leads/{lead['id']}")).json()
    for field, value in replacement.items():
        assert stored[field] == value, field
    assert stored["version"] == 2
    assert stored["created_at"] == lead["created_at"]
    assert stored["updated_at"] >= lead["updated_at"]


async def test_put_omitting_optional_fields_clears_them(client):
    lead, _ = await _lead(client, company="Acme", source="web")
    response = await client.put(f"/leads/{lead['id']}", json={"email": lead["email"]})
    assert response.status_code == 200
    assert response.json()["company"] is None
    assert response.json()["source"] is None


async def test_put_with_stale_etag_is_412_and_changes_nothing(client):
    lead, stale = await _lead(client, company="Original")
    await client.put(f"/leads/{lead['id']}", json=lead_body(email=lead["email"], company="Second"))
    response = await client.put(
        f"/leads/{lead['id']}",
        json=lead_body(email=lead["email"], company="Lost"),
        headers={"If-Match": stale},
    )
    assert response.status_code == 412
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/leads/{lead['id']}")).json()["company"] == "Second"


async def test_if_match_star_and_lists_follow_rfc_9110(client):
    # Not 1: a PATCH that changes nothing writes nothing and keeps the version (and the ETag).
    lead, _ = await _lead(client, score=50)
    url = f"/leads/{lead['id']}"
    assert (await client.patch(url, json={"score": 1}, headers={"If-Match": "*"})).status_code == 200
    assert (await client.patch(url, json={"score": 2}, headers={"If-Match": '"9", "2"'})).status_code == 200
    # A weak tag never satisfies If-Match (strong comparison).
    assert (await client.patch(url, json={"score": 3}, headers={"If-Match": 'W/"3"'})).status_code == 412


async def test_put_and_patch_compare_tags_as_strings_as_rfc_9110_asks(client):
    """Strong comparison is of the opaque tag: "01" is not "1", and a tag of 5,000 digits is
    merely a tag that matches nothing (412), not a number to convert."""
    lead, _ = await _lead(client)
    url = f"/leads/{lead['id']}"
    body = lead_body(email=lead["email"], company="Tags")
    for tag in ('"01"', '" 1"', '"1.0"', '"+1"', f'"{"1" * 5000}"', f'"{2**31}"', '"1', 'W/"1"'):
        for write in (client.put, client.patch):
            response = await write(url, json=body, headers={"If-Match": tag})
            assert response.status_code in (412, 422), (write.__name__, tag[:20], response.text)
    assert (await client.get(url)).json()["version"] == 1


async def test_a_put_that_changes_nothing_keeps_the_version_and_the_etag(client):
    """As a PATCH that changes nothing: a retried PUT whose first attempt landed must still
    satisfy the If-Match it was sent with."""
    lead, tag = await _lead(client, company="Same", attributes={"a": [1, {"b": None}]})
    same = {name: lead[name] for name in lead_body()}
    for _ in range(2):
        response = await client.put(f"/leads/{lead['id']}", json=same, headers={"If-Match": tag})
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == tag
        assert response.json()["updated_at"] == lead["updated_at"]


async def test_a_put_that_changes_a_number_s_form_in_attributes_is_a_new_version(client):
    """1 and 1.0 are equal JSON values to PostgreSQL, but not the same document: what a read
    returns changed, so its ETag must too."""
    lead, tag = await _lead(client, attributes={"n": 1})
    same = {name: lead[name] for name in lead_body()} | {"attributes": {"n": 1.0}}
    response = await client.put(f"/leads/{lead['id']}", json=same, headers={"If-Match": tag})
    assert response.status_code == 200, response.text
    assert response.json()["attributes"] == {"n": 1.0}
    assert response.headers["etag"] != tag


async def test_patch_changes_only_the_fields_sent(client):
    lead, tag = await _lead(client, company="Acme", source="web", score=5)
    response = await client.patch(f"/leads/{lead['id']}", json={"score": 77}, headers={"If-Match": tag})
    assert response.status_code == 200
    patched = response.json()
    assert patched["score"] == 77
    assert patched["company"] == "Acme"
    assert patched["source"] == "web"
    assert patched["version"] == 2


async def test_patch_merges_attributes_and_null_removes_a_key(client):
    lead, _ = await _lead(client, attributes={"a": 1, "nested": {"x": 1, "y": 2}, "drop": True})
    patch = {"attributes": {"b": 2, "nested": {"y": None, "z": 3}, "drop": None}}
    response = await client.patch(f"/leads/{lead['id']}", json=patch)
    assert response.json()["attributes"] == {"a": 1, "b": 2, "nested": {"x": 1, "z": 3}}


async def test_patch_with_stale_etag_is_412_and_changes_nothing(client):
    lead, stale = await _lead(client, score=1)
    await client.patch(f"/leads/{lead['id']}", json={"score": 2})
    response = await client.patch(f"/leads/{lead['id']}", json={"score": 3}, headers={"If-Match": stale})
    assert response.status_code == 412
    assert (await client.get(f"/leads/{lead['id']}")).json()["score"] == 2


async def test_patch_that_would_leave_no_contact_conflicts_with_the_lead_409(client):
    lead, _ = await _lead(client)
    response = await client.patch(f"/leads/{lead['id']}", json={"email": None, "phone": None})
    assert response.status_code == 409
    assert "neither an email nor a phone" in response.json()["detail"]
    assert (await client.get(f"/leads/{lead['id']}")).json()["email"] == lead["email"]


async def test_patch_bad_values_are_422_naming_the_field(client):
    lead, _ = await _lead(client)
    for body, field in (({"email": "nope"}, "email"), ({"status": None}, "status"), ({"score": -1}, "score")):
        response = await client.patch(f"/leads/{lead['id']}", json=body)
        assert response.status_code == 422, body
        assert field in response.json()["detail"]


async def test_changing_email_to_another_leads_is_409(client):
    first, _ = await _lead(client)
    second, _ = await _lead(client)
    response = await client.patch(f"/leads/{second['id']}", json={"email": first["email"].upper()})
    assert response.status_code == 409
    assert (await client.get(f"/leads/{second['id']}")).json()["email"] == second["email"]


async def test_delete_is_204_then_404(client):
    lead, tag = await _lead(client)
    response = await client.delete(f"/leads/{lead['id']}", headers={"If-Match": tag})
    assert response.status_code == 204
    assert (await client.get(f"/leads/{lead['id']}")).status_code == 404
    assert (await client.delete(f"/leads/{lead['id']}")).status_code == 404


async def test_delete_with_stale_etag_is_412_and_keeps_the_lead(client):
    # A set score, not the factory's random one: a PATCH to the same value keeps the version.
    lead, stale = await _lead(client, score=1)
    await client.patch(f"/leads/{lead['id']}", json={"score": 9})
    response = await client.delete(f"/leads/{lead['id']}", headers={"If-Match": stale})
    assert response.status_code == 412
    assert (await client.get(f"/leads/{lead['id']}")).status_code == 200


async def test_writes_to_an_unknown_lead_are_404(client):
    url = f"/leads/{uuid.uuid4()}"
    assert (await client.put(url, json=lead_body())).status_code == 404
    assert (await client.patch(url, json={"score": 1})).status_code == 404
