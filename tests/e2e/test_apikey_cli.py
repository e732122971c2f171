"""`orchestrator apikey create | list | revoke` against the database a running API serves."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import psutil

from load.service import children_of
from tests.helpers import bearer

# A few answers' worth (a 429 problem is ~300 bytes, the job list several KB).
ANSWERS_BYTES = 1000


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_create_prints_only_the_key_list_hides_it_and_revoke_shuts_it_out(apikey, start_api):
    api = await start_api(workers=1, API_KEY_CACHE_S="1")
    name = unique("cli")
    code, out, err = apikey("create", "--name", name, "--scope", "read")
    assert code == 0, err
    key = out.strip()
    assert out == key + "\n"
    assert key.startswith("orch_")
    assert name in err
    assert "read" in err

    code, listing, _ = apikey("list")
    assert code == 0
    assert name in listing
    assert key[:12] in listing
    assert key not in listing

    async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(key)) as client:
        assert (await client.get("/leads")).status_code == 200
        assert (await client.post("/leads", json={})).status_code == 403
        code, _, err = apikey("revoke", name)
        assert code == 0, err
        async with asyncio.timeout(10):  # the API's key cache is 1 s here
            while True:
                if (await client.get("/leads")).status_code == 401:
                    break
                await asyncio.sleep(0.2)

    code, listing, _ = apikey("list")
    assert name not in listing
    assert name in apikey("list", "--all")[1]


def test_bad_input_is_refused_with_the_reason(apikey):
    name = unique("twice")
    assert apikey("create", "--name", name, "--scope", "write")[0] == 0

    code, _, err = apikey("create", "--name", name, "--scope", "write")
    assert code == 1
    assert "already named" in err
    code, _, err = apikey("create", "--name", unique("x"), "--scope", "root")
    assert code == 2
    assert "'root' is not one of" in err
    code, _, err = apikey("create", "--name", unique("x"), "--scope", "read", "--rate-limit", "lots")
    assert code == 1
    assert "Invalid rate limit: not a rate limit: 'lots'" in err
    code, _, err = apikey("revoke", unique("nobody"))
    assert code == 1
    assert "No live API key" in err


def test_with_no_database_url_and_no_embedded_database_nothing_is_created(apikey, tmp_path):
    code, _, err = apikey(
        "create", "--name", "x", "--scope", "read", env={"DATA_DIR": str(tmp_path / "nothing-here")}
    )
    assert code == 2
    assert "DATABASE_URL is not set" in err
    assert not (tmp_path / "nothing-here").exists()


async def test_a_key_rate_limit_holds_across_every_api_worker(apikey, start_api):
    api = await start_api(workers=2)
    assert api.process is not None
    workers = [psutil.Process(pid) for pid in children_of(api.process.pid)]
    assert len(workers) == 2
    code, out, err = apikey(
        "create", "--name", unique("rated"), "--scope", "read", "--rate-limit", "20/minute"
    )
    assert code == 0, err
    key = out.strip()
    wrote_before = {worker.pid: worker.io_counters().write_chars for worker in workers}

    async def one_request() -> httpx.Response:
        # A connection each, so that both Granian workers take a share.
        async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(key)) as client:
            return await client.get("/jobs")

    def answered() -> list[int]:
        """The workers that have written answers: an idle one writes next to nothing."""
        return [w.pid for w in workers if w.io_counters().write_chars - wrote_before[w.pid] > ANSWERS_BYTES]

    answers: list[httpx.Response] = []
    while len(answers) < 40 or (len(answered()) < len(workers) and len(answers) < 400):
        answers += await asyncio.gather(*(one_request() for _ in range(20)))

    assert len(answered()) == len(workers), "one worker took every connection"
    assert Counter(a.status_code for a in answers) == {200: 20, 429: len(answers) - 20}
    assert all(1 <= int(a.headers["retry-after"]) <= 60 for a in answers if a.status_code == 429)
