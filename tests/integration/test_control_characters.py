"""NUL and the other control characters, anywhere a client can put text: a 4xx naming the field,
never a 500 (PostgreSQL refuses NUL in text) and never a stored value."""

from __future__ import annotations

import pytest

from tests.factories import lead_body

# Real characters, not their escapes: "\x00" here is one NUL byte. Tab, LF and CR are text.
CONTROLS = ["\x00", "a\x01b", "\x08", "\x0b", "\x1b[31m", "\x7f", "\x9b31m"]
LEAD_FIELDS = ["first_name", "last_name", "email", "phone", "company", "source"]


def _names(response) -> str:
    body = response.json()
    return " ".join([body.get("detail", ""), *(str(error.get("field")) for error in body.get("errors", []))])


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("field", LEAD_FIELDS)
async def test_a_control_character_in_a_lead_field_is_422_naming_it(client, field, control):
    body = lead_body() | {field: f"x{control}y@example.com" if field == "email" else f"x{control}y"}
    created = await client.post("/leads", json=body)
    assert created.status_code == 422, created.text
    assert field in _names(created)
    kept = (await client.post("/leads", json=lead_body())).json()
    patched = await client.patch(f"/leads/{kept['id']}", json={field: f"x{control}y"})
    assert patched.status_code == 422, patched.text
    assert field in _names(patched)


@pytest.mark.parametrize("control", CONTROLS)
async def test_a_control_character_in_free_form_json_is_422_naming_where(client, control):
    for attributes in ({"note": f"x{control}"}, {f"k{control}": 1}, {"deep": [{"x": f"{control}"}]}):
        created = await client.post("/leads", json=lead_body() | {"attributes": attributes})
        assert created.status_code == 422, created.text
        assert "attributes" in _names(created)
    submitted = await client.post("/tasks", json={"type": "noop", "payload": {"echo": {"x": control}}})
    assert submitted.status_code == 422, submitted.text
    assert "payload" in _names(submitted)


@pytest.mark.parametrize("control", CONTROLS)
async def test_a_control_character_in_a_filter_is_400_naming_it(client, control):
    for path, name in (("/leads", "email"), ("/leads", "company"), ("/leads", "source"), ("/tasks", "type")):
        response = await client.get(path, params={name: f"x{control}"})
        assert response.status_code in {400, 422}, (path, name, response.text)
        assert name in _names(response)


async def test_tabs_and_line_breaks_are_text(client):
    created = await client.post("/leads", json=lead_body(company="Acme\tInc", attributes={"note": "a\r\nb"}))
    assert created.status_code == 201, created.text
