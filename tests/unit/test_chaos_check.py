"""The chaos checker's reading of a workflow: each inline step must have run with its template
filled in from the steps before it, and a step that saw another step's result is reported."""

from __future__ import annotations

from chaos.check import _misread_step

STEPS = {
    "steps": [
        {"type": "noop", "payload": {"echo": {"n": 7}}},
        {"type": "noop", "payload": {"echo": {"previous": "${steps.1.echo.n}"}}},
    ]
}


def child(payload, result):
    return {"payload": payload, "result": result}


def test_steps_that_saw_the_right_results_pass():
    children = [
        child({"echo": {"n": 7}}, {"echo": {"n": 7}, "attempt": 1}),
        child({"echo": {"previous": 7}}, {"echo": {"previous": 7}, "attempt": 1}),
    ]
    assert _misread_step(STEPS, None, children) is None


def test_a_step_that_saw_another_result_is_reported():
    children = [
        child({"echo": {"n": 7}}, {"echo": {"n": 7}, "attempt": 1}),
        child({"echo": {"previous": 8}}, {"echo": {"previous": 8}, "attempt": 1}),
    ]
    assert "step 2 ran with" in (_misread_step(STEPS, None, children) or "")
