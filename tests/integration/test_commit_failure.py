"""A write whose COMMIT fails is answered with an error, never a 2xx for what did not land."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.factories import lead_body

DOOMED = "Fails At Commit Inc"

# A deferred constraint trigger runs at COMMIT: that COMMIT fails as if the server were shutting
# down under it (SQLSTATE 57P01), after every statement of the request has succeeded.
FUNCTION = f"""
CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.company = '{DOOMED}' THEN
        RAISE EXCEPTION 'terminating connection due to administrator command' USING ERRCODE = '57P01';
    END IF;
    RETURN NEW;
END $$
"""
TRIGGER = """
CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT OR UPDATE ON leads
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit()
"""


@pytest.fixture
async def commit_fails_for_doomed_leads(settings):
    engine = create_async_engine(settings.sqlalchemy_url)
    async with engine.begin() as connection:
        await connection.execute(text(FUNCTION))
        await connection.execute(text(TRIGGER))
    yield
    async with engine.begin() as connection:
        await connection.execute(text("DROP TRIGGER fail_at_commit ON leads"))
        await connection.execute(text("DROP FUNCTION fail_at_commit()"))
    await engine.dispose()


async def test_a_create_whose_commit_fails_is_503_and_nothing_is_there(client, commit_fails_for_doomed_leads):
    created = await client.post("/leads", json=lead_body(company=DOOMED))
    listed = await client.get("/leads", params={"company": DOOMED})

    assert created.status_code == 503, created.text
    assert created.headers["content-type"].startswith("application/problem+json")
    assert listed.json()["items"] == []


async def test_an_update_whose_commit_fails_is_503_and_the_lead_is_unchanged(
    client, commit_fails_for_doomed_leads
):
    lead = (await client.post("/leads", json=lead_body(company="Fine Inc"))).json()
    patched = await client.patch(f"/leads/{lead['id']}", json={"company": DOOMED})
    read = await client.get(f"/leads/{lead['id']}")

    assert patched.status_code == 503, patched.text
    assert read.json() == lead
