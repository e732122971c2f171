"""Subject and body templates: `{first_name}` and friends, filled from the lead.

Only the names in FIELDS exist (no attribute access, no format specs), so a template cannot
reach anything but the lead's plain fields; in HTML bodies the values are escaped.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from typing import Any

FIELDS = frozenset({"first_name", "last_name", "email", "phone", "company", "source", "status"})
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")


# The same rule as a JSON Schema pattern: any text, but a `{` that opens a placeholder opens a
# known one (and, as everywhere, no control character).
def _template_pattern(controls: str) -> str:
    return (
        rf"^(?:[^{{{controls}]"
        rf"|\{{(?:{'|'.join(sorted(FIELDS))})\}}"
        r"|\{(?![A-Za-z0-9_]+\}))*$"
    )


TEMPLATE_PATTERN = _template_pattern(r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f")
SUBJECT_PATTERN = _template_pattern(r"\x00-\x1f\x7f-\x9f")  # one line: a header


def unknown_placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template)) - FIELDS


def render(template: str, values: dict[str, Any], *, escape: bool = False) -> str:
    def value(match: re.Match[str]) -> str:
        text = "" if values.get(match[1]) is None else str(values[match[1]])
        return html.escape(text) if escape else text

    return PLACEHOLDER.sub(value, template)


def build_message(
    *, sender: str, to: str, subject: str, text: str | None, html_body: str | None, message_id: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, _header_text(subject)
    message["Message-ID"] = message_id
    for name in ("From", "To", "Subject"):
        if any(breaking in str(message[name]) for breaking in "\r\n"):
            raise ValueError(f"{name} would hold a line break")
    if text is not None:
        message.set_content(text)
    if html_body is not None:
        if text is None:
            message.set_content(html_body, subtype="html")
        else:
            message.add_alternative(html_body, subtype="html")
    return message


def _header_text(value: str) -> str:
    """Rendered text (a lead's fields included) made safe for a header: one line, and unable to
    open an RFC 2047 encoded word. Python before 3.11.10 (gh-121650) decodes
    `=?utf-8?q?Eve=0D=0ABcc:...?=` into real header lines when it writes the message: a lead's
    name must not be able to add a Bcc or replace the body. An invisible word joiner between `=`
    and `?` keeps the text as it reads."""
    return " ".join(value.split()).replace("=?", "=\u2060?")
