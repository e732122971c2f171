"""GET /leads: keyset pagination and filters."""

from __future__ import annotations

from tests.factories import lead_body


async def _create(client, count, **fields):
    ids = []
    for _ in range(count):
        response = await client.post("/leads", json=lead_body(**fields))
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return ids


async def test_pages_cover_every_lead_once_newest_first(client):
    ids = await _create(client, 7)
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/leads", params=params)).json()
        seen += [lead["id"] for lead in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_a_page_is_stable_when_leads_are_added_meanwhile(client):
    await _create(client, 4)
    first = (await client.get("/leads", params={"limit": 2})).json()
    await _create(client, 3)
    second = (await client.get("/leads", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert not {lead["id"] for lead in first["items"]} & {lead["id"] for lead in second["items"]}
    assert len(second["items"]) == 2


async def test_filters_by_email_company_source_and_status(client):
    await _create(client, 2, company="Acme", source="web")
    await _create(client, 1, company="Other", source="fair", status="qualified")
    target = (await client.post("/leads", json=lead_body(email="Find.Me@example.com"))).json()

    async def count(**params):
        return len((await client.get("/leads", params=params)).json()["items"])

    assert await count(company="Acme") == 2
    assert await count(source="fair") == 1
    assert await count(status="qualified") == 1
    assert await count(company="Acme", source="fair") == 0
    by_email = (await client.get("/leads", params={"email": "find.me@EXAMPLE.com"})).json()["items"]
    assert [lead["id"] for lead in by_email] == [target["id"]]


async def test_bad_list_parameters_are_4xx_naming_them(client):
    for params, name in (
        ({"limit": 0}, "limit"),
        ({"limit": 10_000}, "limit"),
        ({"status": "nope"}, "status"),
        ({"cursor": "!!!"}, "cursor"),
    ):
        response = await client.get("/leads", params=params)
        assert response.status_code == 422, params
        assert name in response.json()["detail"]


async def test_injection_in_filters_returns_no_rows_and_no_error(client):
    await _create(client, 2, company="Acme")
    response = await client.get("/leads", params={"company": "Acme' OR '1'='1"})
    assert response.status_code == 200
    assert response.json()["items"] == []
