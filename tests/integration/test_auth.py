"""API keys: 401 without a valid one, 403 when its scope is too small, and neither says what exists."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from orchestrator.app import create_app
from orchestrator.auth.keys import create_key, issue_key, list_keys, revoke_key
from orchestrator.auth.live_keys import LiveKeys
from orchestrator.auth.models import ApiKey, Scope
from orchestrator.db import in_transaction
from tests.factories import lead_body
from tests.helpers import bearer

NO_KEY = {"Authorization": ""}
MISSING = uuid.UUID(int=1)


@pytest.fixture(scope="module")
async def read_key(settings):
    return await issue_key(settings, f"reader-{uuid.uuid4().hex[:6]}", Scope.READ)


@pytest.fixture(scope="module")
async def write_key(settings):
    return await issue_key(settings, f"writer-{uuid.uuid4().hex[:6]}", Scope.WRITE)


@pytest.fixture
async def lead_id(client):
    return (await client.post("/leads", json=lead_body())).json()["id"]


def operations(lead: str) -> list[tuple[str, str, dict | None]]:
    task = str(MISSING)
    return [
        ("GET", "/leads", None),
        ("GET", f"/leads/{lead}", None),
        ("GET", f"/leads/{lead}/tasks", None),
        ("GET", "/tasks", None),
        ("GET", f"/tasks/{task}", None),
        ("GET", "/jobs", None),
        ("POST", "/leads", lead_body()),
        ("PUT", f"/leads/{lead}", lead_body()),
        ("PATCH", f"/leads/{lead}", {"company": "X"}),
        ("DELETE", f"/leads/{lead}", None),
        ("POST", "/tasks", {"type": "noop", "payload": {}}),
        ("POST", "/tasks/batch", {"tasks": [{"type": "noop", "payload": {}}]}),
        ("POST", f"/tasks/{task}/cancel", None),
        ("POST", f"/tasks/{task}/retry", None),
    ]


async def test_every_operation_without_a_key_is_401_problem_with_a_bearer_challenge(client, lead_id):
    for method, path, body in operations(lead_id):
        response = await client.request(method, path, json=body, headers=NO_KEY)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"] == 'Bearer realm="orchestrator"'
    assert (await client.get(f"/leads/{lead_id}")).status_code == 200  # nothing was touched


@pytest.mark.parametrize(
    "headers",
    [
        bearer("orch_" + "x" * 43),
        bearer("not-even-our-format"),
        {"X-API-Key": "orch_wrong"},
        {"Authorization": "Basic " + base64.b64encode(b"user:orch_wrong").decode()},
        {"Authorization": "Digest orch_wrong"},
        {"Authorization": "Bearer"},
    ],
)
async def test_a_wrong_or_malformed_key_is_401(client, headers):
    response = await client.get("/leads", headers=headers)
    assert response.status_code == 401
    assert response.json()["status"] == 401


async def test_401_and_403_are_the_same_for_a_lead_that_exists_and_one_that_does_not(
    client, lead_id, read_key
):
    for headers, status in ((NO_KEY, 401), (bearer("orch_wrong"), 401), (bearer(read_key), 403)):
        existing = await client.put(f"/leads/{lead_id}", json=lead_body(), headers=headers)
        missing = await client.put(f"/leads/{MISSING}", json=lead_body(), headers=headers)
        assert existing.status_code == missing.status_code == status
        assert existing.json() == missing.json()
        assert existing.headers.get("www-authenticate") == missing.headers.get("www-authenticate")


async def test_a_read_key_reads_and_every_write_is_403_naming_the_scope(client, lead_id, read_key):
    for method, path, body in operations(lead_id):
        response = await client.request(method, path, json=body, headers=bearer(read_key))
        if method == "GET":
            assert response.status_code in {200, 404}, (path, response.text)
        else:
            assert response.status_code == 403, (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "'read' scope; this request needs 'write'" in response.json()["detail"]
    assert (await client.get(f"/leads/{lead_id}")).json()["version"] == 1


async def test_a_write_key_writes_in_either_header(client, write_key):
    created = await client.post("/leads", json=lead_body(), headers=bearer(write_key))
    task = await client.post("/tasks", json={"type": "noop", "payload": {}}, headers={"X-API-Key": write_key})
    assert created.status_code == 201
    assert task.status_code == 202


async def test_health_ready_and_the_schema_need_no_key(client):
    for path in ("/health", "/ready", "/schema/openapi.json"):
        assert (await client.get(path, headers=NO_KEY)).status_code == 200, path


async def test_the_schema_documents_the_keys_and_the_auth_answers(client):
    schema = (await client.get("/schema/openapi.json")).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    create = schema["paths"]["/leads"]["post"]
    assert create["security"] == [{"bearer": []}, {"apiKey": []}]
    assert {"401", "403", "429"} <= set(create["responses"])
    assert "security" not in schema["paths"]["/health"]["get"]


async def test_only_a_hash_of_the_key_is_stored_and_its_use_is_recorded(client, settings, write_key):
    await client.get("/leads", headers=bearer(write_key))
    rows = await in_transaction(settings, lambda session: session.scalars(select(ApiKey)))
    stored = [row for row in rows.all() if row.key_hash == hashlib.sha256(write_key.encode()).hexdigest()]
    assert len(stored) == 1
    assert stored[0].last_used_at is not None
    assert write_key not in repr(vars(stored[0]))
    assert write_key.startswith(stored[0].prefix)


async def test_a_revoked_key_is_401_like_a_wrong_one(settings, client):
    name = f"short-lived-{uuid.uuid4().hex[:6]}"
    key = await issue_key(settings, name, Scope.READ)
    uncached = settings.model_copy(update={"api_key_cache_s": 0})
    async with AsyncTestClient(app=create_app(uncached)) as fresh:
        assert (await fresh.get("/leads", headers=bearer(key))).status_code == 200
        await in_transaction(settings, lambda session: revoke_key(session, name))
        revoked = await fresh.get("/leads", headers=bearer(key))
        wrong = await fresh.get("/leads", headers=bearer("orch_wrong"))
    assert revoked.status_code == 401
    assert revoked.json() == wrong.json()
    assert revoked.headers["www-authenticate"] == 'Bearer realm="orchestrator", error="invalid_token"'
    assert revoked.headers["www-authenticate"] == wrong.headers["www-authenticate"]


async def test_idempotency_keys_belong_to_the_api_key_that_used_them(client, api_key, write_key):
    headers = {"Idempotency-Key": "shared-by-chance"}
    mine = await client.post("/leads", json=lead_body(), headers=headers | bearer(api_key))
    theirs = await client.post("/leads", json=lead_body(), headers=headers | bearer(write_key))
    again = await client.post("/leads", json=lead_body(), headers=headers | bearer(write_key))
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert again.status_code == 422  # the same key with another body, for the same API key


PUBLIC = ("/health", "/ready", "/schema", "/saq/static")


async def test_every_route_but_the_public_ones_needs_a_key(client):
    """Walks the app's own routes, so that a route added outside the protected router fails here."""
    checked = 0
    for route in client.app.routes:
        if route.path.startswith(PUBLIC):
            continue
        path = route.path_format.format(**{name: str(MISSING) for name in route.path_parameters})
        for method in sorted(getattr(route, "methods", set()) - {"OPTIONS", "HEAD"}):
            response = await client.request(method, path, headers=NO_KEY)
            assert response.status_code == 401, (method, route.path, response.text)
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("path", ["/leads", f"/leads/{MISSING}", "/saq", "/saq/api/queues"])
async def test_options_needs_no_key_and_is_never_an_error(client, path):
    assert (await client.options(path, headers=NO_KEY)).status_code == 204


async def test_an_address_sending_wrong_keys_gets_429_before_more_lookups(settings):
    strict = settings.model_copy(update={"api_key_failure_limit": "3/minute"})
    async with AsyncTestClient(app=create_app(strict)) as fresh:
        wrong = [await fresh.get("/leads", headers=bearer(f"orch_{uuid.uuid4().hex:0>43}")) for _ in range(4)]
    assert [r.status_code for r in wrong] == [401, 401, 401, 429]
    assert "Too many wrong API keys from this address" in wrong[-1].json()["detail"]
    assert 1 <= int(wrong[-1].headers["retry-after"]) <= 60


async def test_wrong_keys_from_an_address_never_lock_out_a_valid_key_from_it(settings):
    """Every client behind one proxy shares an address: someone else's wrong guesses there must
    not refuse a key that is valid, whether this worker has seen it or not."""
    strict = settings.model_copy(update={"api_key_failure_limit": "3/minute"})
    known = await issue_key(settings, f"behind-nat-{uuid.uuid4().hex[:6]}", Scope.READ)
    async with AsyncTestClient(app=create_app(strict)) as fresh:
        for _ in range(5):
            await fresh.get("/leads", headers=bearer(f"orch_{uuid.uuid4().hex:0>43}"))
        unseen = await fresh.get("/leads", headers=bearer(known))
        created_now = await issue_key(settings, f"behind-nat-{uuid.uuid4().hex[:6]}", Scope.READ)
        brand_new = await fresh.get("/leads", headers=bearer(created_now))
        still_wrong = await fresh.get("/leads", headers=bearer(f"orch_{uuid.uuid4().hex:0>43}"))
    assert (unseen.status_code, brand_new.status_code) == (200, 200)
    assert still_wrong.status_code == 429


class CountedSessions:
    """A session maker that counts the sessions asked for: each is a query or more."""

    def __init__(self, settings):
        self.made = 0
        self._make = async_sessionmaker(create_async_engine(settings.sqlalchemy_url, poolclass=NullPool))

    def __call__(self):
        self.made += 1
        return self._make()


async def test_a_worker_knows_every_live_key_without_a_query_per_request(settings, api_key):
    sessions = CountedSessions(settings)
    keys = LiveKeys(sessions, max_age_s=60, load_timeout_s=5)
    found = [await keys.find(api_key) for _ in range(50)]
    assert {caller.name for caller in found} == {"tests"}
    assert sessions.made <= 2  # one load, and one record of the key's use
    wrong = await asyncio.gather(*(keys.find(f"orch_{uuid.uuid4().hex:0>43}") for _ in range(50)))
    assert wrong == [None] * 50
    assert sessions.made <= 3  # fifty unknown keys at once wait for one load


async def test_a_load_stuck_on_a_dead_connection_fails_its_requests_and_the_next_load_goes_on(
    settings, api_key
):
    """A connection that stops answering (a partition, a stalled proxy) must not hold every
    request of the worker: the waiters get an error, and the next request starts a new load."""
    working = CountedSessions(settings)
    stuck = asyncio.Event()

    class Stuck:
        async def __aenter__(self):
            stuck.set()
            await asyncio.sleep(3600)

        async def __aexit__(self, *exc_info):
            return False

    calls = iter([Stuck(), *(working() for _ in range(5))])
    keys = LiveKeys(lambda: next(calls), max_age_s=60, load_timeout_s=0.5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5):  # the test's own bound: a hang fails the time check below
            await keys.find(api_key)
    assert asyncio.get_running_loop().time() - started < 2
    assert (await keys.find(api_key)).name == "tests"


async def test_a_key_row_with_a_broken_rate_limit_leaves_the_others_working(settings, api_key):
    name = f"broken-limit-{uuid.uuid4().hex[:6]}"
    broken = await issue_key(settings, name, Scope.READ)
    await in_transaction(
        settings,
        lambda session: session.execute(
            text("UPDATE api_keys SET rate_limit = 'lots' WHERE name = :name"), {"name": name}
        ),
    )
    keys = LiveKeys(CountedSessions(settings), max_age_s=60, load_timeout_s=5)
    assert (await keys.find(api_key)).name == "tests"
    caller = await keys.find(broken)
    assert caller.name == name
    assert caller.rate_limit is None  # the default limit, until an operator fixes the row


async def test_a_key_of_the_wrong_shape_is_refused_without_a_query():
    def no_database():
        raise AssertionError("the database was asked")

    keys = LiveKeys(no_database, max_age_s=60, load_timeout_s=5)
    for key in ("orch_short", "orch_" + "x" * 44, "sk_" + "x" * 45, ""):
        assert await keys.find(key) is None


async def test_every_key_works_on_the_one_workspace_by_design(client, read_key, write_key, settings):
    """The data model (README, Security): one workspace per deployment, a key per integration.
    Keys differ in scope, rate limit and idempotency keys, never in what data they reach; a
    deployment per tenant is how tenants are kept apart."""
    other = await issue_key(settings, f"other-integration-{uuid.uuid4().hex[:6]}", Scope.WRITE)
    lead = (await client.post("/leads", json=lead_body(), headers=bearer(write_key))).json()
    task = (
        await client.post("/tasks", json={"type": "noop", "lead_id": lead["id"]}, headers=bearer(write_key))
    ).json()
    for key in (read_key, other):
        assert (await client.get(f"/leads/{lead['id']}", headers=bearer(key))).status_code == 200
        assert (await client.get(f"/tasks/{task['id']}", headers=bearer(key))).status_code == 200
        listed = (await client.get("/leads", headers=bearer(key))).json()["items"]
        assert lead["id"] in {item["id"] for item in listed}
    patched = await client.patch(
        f"/leads/{lead['id']}", json={"company": "Changed by another integration"}, headers=bearer(other)
    )
    assert patched.status_code == 200


async def test_revoke_by_id_revokes_that_key_even_if_another_is_named_like_it(settings):
    first, _ = await in_transaction(
        settings, lambda s: create_key(s, f"first-{uuid.uuid4().hex[:6]}", Scope.READ)
    )
    namesake, _ = await in_transaction(settings, lambda s: create_key(s, str(first.id), Scope.READ))
    revoked = await in_transaction(settings, lambda s: revoke_key(s, str(first.id)))
    live = await in_transaction(settings, lambda s: list_keys(s))
    assert revoked.id == first.id
    assert namesake.id in {key.id for key in live}
