"""What a deployment gets without asking: no secrets in the image, no root, nothing published
beyond this machine, and browser pages that cannot be framed or load code from elsewhere."""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from fnmatch import fnmatchcase
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from orchestrator.cli.exporter import API_PORT, WORKER_PORT

ROOT = Path(__file__).resolve().parents[2]
NO_KEY = {"Authorization": ""}


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path, or a directory above it, decides."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        glob = pattern.removeprefix("!").strip("/")
        globs = [glob, glob.removeprefix("**/")]
        if any(fnmatchcase(prefix, g) for prefix in prefixes for g in globs):
            ignored = not pattern.startswith("!")
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        "deploy/.env",
        ".orchestrator/postgres/PG_VERSION",
        ".orchestrator/outbox/1.eml",
        "outbox/1.eml",
        "certs/server.pem",
        "server.key",
        ".venv/bin/python",
        ".git/config",
    ],
)
def test_secrets_and_local_state_stay_out_of_the_image(path):
    assert dockerignored(path)


@pytest.mark.parametrize("path", [".env.example", "src/orchestrator/app.py", "jobs/noop.py", "uv.lock"])
def test_the_source_and_the_example_settings_go_into_the_image(path):
    assert not dockerignored(path)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_runs_as_a_numeric_unprivileged_user_that_cannot_change_its_code():
    instructions = dockerfile()
    users = [(index, args) for index, (name, args) in enumerate(instructions) if name == "USER"]
    assert users, "the image runs as root"
    last_user, user = users[-1]
    uid = user.split(":")[0]
    assert re.fullmatch(r"\d+(:\d+)?", user), user  # numeric: Kubernetes' runAsNonRoot can check it
    assert uid != "0"
    assert all(name not in {"RUN", "COPY", "ADD"} for name, _ in instructions[last_user:])
    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert f"--uid {uid}" in runs  # a user of its own, not an unknown number
    # The code and its virtualenv stay root's: only the email outbox is handed to the user.
    assert not any("--chown" in args for name, args in instructions if name in {"COPY", "ADD"})
    chowned = [
        word
        for command in runs.split("&&")
        if shlex.split(command)[:1] == ["chown"]
        for word in shlex.split(command)
        if word.startswith("/")
    ]
    assert all("outbox" in path for path in chowned), chowned


def compose() -> dict:
    loaded: dict = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_publishes_ports_on_this_machine_only():
    published = [port for service in compose()["services"].values() for port in service.get("ports", [])]
    assert published == ["127.0.0.1:8000:8000", "127.0.0.1:9090:9090"]  # the API, Prometheus


def test_compose_restarts_what_runs_and_prometheus_scrapes_the_api_and_the_workers():
    services = compose()["services"]
    for name in ("postgres", "redis", "worker", "api", "prometheus"):
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    scraped = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        f"{name}:{config['port']}"
        for job in scraped["scrape_configs"]
        for config in job["dns_sd_configs"]
        for name in config["names"]
    }
    assert "METRICS_PORT" not in services["api"]["environment"]  # each command's own default
    assert targets == {f"api:{API_PORT}", f"worker:{WORKER_PORT}"}
    assert f"127.0.0.1:{WORKER_PORT}/metrics" in str(services["worker"]["healthcheck"]["test"])
    assert services["api"]["environment"]["METRICS_HOST"] == "0.0.0.0"  # noqa: S104  (compose's network)


def test_compose_takes_the_database_password_from_the_environment():
    services = compose()["services"]
    required = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == required
    for name in ("migrate", "worker", "api"):
        assert required in services[name]["environment"]["DATABASE_URL"], name
    assert "orchestrator:orchestrator@" not in (ROOT / "compose.yaml").read_text()
    assert re.search(r"^#? ?POSTGRES_PASSWORD=", (ROOT / ".env.example").read_text(), re.MULTILINE)


class Page(HTMLParser):
    """The scripts and stylesheets an HTML page makes a browser load or run."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_inline_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"] or "")
        elif tag == "script":
            self._in_inline_script = True
            self.inline_scripts.append("")
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts[-1] += data


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("content-security-policy", "")
    directives = [directive.split() for directive in header.split(";") if directive.strip()]
    return {directive[0]: directive[1:] for directive in directives}


def assert_unframeable(response):
    assert response.headers.get("x-frame-options") == "DENY", response.url
    assert response.headers.get("x-content-type-options") == "nosniff", response.url
    assert policy(response).get("frame-ancestors") == ["'none'"], response.url


def sha256_source(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


async def assert_loads_only_its_own_files(client, page) -> None:
    """Every file comes from this server, without a key, with the type nosniff insists on."""
    parsed = Page(page.text)
    files = [(url, "javascript") for url in parsed.scripts] + [
        (url, "text/css") for url in parsed.stylesheets
    ]
    assert files
    for url, content_type in files:
        assert re.match(r"/[^/]", url), url  # a path on this server, not //host/...
        response = await client.get(url, headers=NO_KEY)
        assert response.status_code == 200, url
        assert content_type in response.headers["content-type"], (url, response.headers["content-type"])
        assert_unframeable(response)
    sources = policy(page)
    script_src = sources.get("script-src", sources.get("default-src", []))
    for source in script_src + sources.get("default-src", []):
        assert source.startswith("'") or source == "data:", source  # no host, no scheme: own files only


async def test_the_saq_ui_cannot_be_framed_and_runs_only_its_own_scripts(client, api_key, settings):
    page = await client.get("/saq")
    assert page.status_code == 200
    assert_unframeable(page)
    await assert_loads_only_its_own_files(client, page)
    script_src = policy(page)["script-src"]
    assert "'unsafe-inline'" not in script_src
    for script in Page(page.text).inline_scripts:
        assert sha256_source(script) in script_src, script
    assert_unframeable(await client.get("/saq/api/queues"))
    assert_unframeable(await client.get(f"/saq/queues/{settings.queue_name}"))


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_the_api_docs_load_nothing_from_another_site_and_cannot_be_framed(client, path):
    page = await client.get(path, headers=NO_KEY)
    assert page.status_code == 200
    assert "<html" in page.text
    assert_unframeable(page)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text), page.text[:2000]
    await assert_loads_only_its_own_files(client, page)
    sources = policy(page)
    assert sources.get("connect-src", sources["default-src"]) == ["'self'"]  # "Try it out": this API only
