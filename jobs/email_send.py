"""`email_send`: render a message from templates and the lead, send it once.

Through SMTP when SMTP_URL is set, else as an `.eml` file in EMAIL_OUTBOX_DIR. The Message-ID
is derived from the task. The send is claimed (ctx.once) in a transaction that stays open while
the server talks and commits the delivery record (email_deliveries) once it has accepted: two
attempts alive at once (a cancelled one still sending while its retry starts, a worker paused
past its lease) cannot both send, and a retry after the record finds it and does not send
again. A send once started is finished and recorded even when its attempt is stopped.

Limits: a crash between the server's acceptance and the commit, or a holder frozen past its
attempt's timeout, can still lead to a second send; the fixed Message-ID lets receivers drop
that copy.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from sqlalchemy.dialects.postgresql import insert

from orchestrator.job import JobContext, JobType, PermanentError, RetryPolicy
from orchestrator.json_types import present
from orchestrator.leads.schemas import RECIPIENT_MARK, Email, recipient_pattern
from orchestrator.leads.services import get_lead
from orchestrator.mail.models import EmailDelivery
from orchestrator.mail.render import (
    SUBJECT_PATTERN,
    TEMPLATE_PATTERN,
    build_message,
    render,
    unknown_placeholders,
)
from orchestrator.mail.transport import send_smtp, write_eml

if TYPE_CHECKING:
    from email.message import EmailMessage

    from sqlalchemy.ext.asyncio import AsyncSession


# Both bodies fit the 64 KiB a payload may take (orchestrator.json_bounds); more would be
# refused there anyway, with a less telling message.
BODY_MAX = 30_000


class EmailPayload(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {"anyOf": [present("lead_id"), present("to")]},
                {"anyOf": [present("text"), present("html")]},
            ],
            "examples": [
                {
                    "lead_id": "01a23391-261d-758d-8727-70b42c7ce381",
                    "subject": "Hello {first_name}",
                    "text": "Hi {first_name} of {company}, thanks for your interest.",
                }
            ],
        },
    )

    lead_id: uuid.UUID | None = Field(
        default=None, description="Fills the templates; its email is the default To"
    )
    to: Annotated[Email, WithJsonSchema({"type": "string", "format": RECIPIENT_MARK})] | None = Field(
        default=None,
        description="Someone else than the lead, at a domain of EMAIL_ALLOWED_DOMAINS; default: the lead",
    )
    subject: str = Field(
        min_length=1,
        max_length=300,
        description="Template, e.g. 'Hello {first_name}'",
        json_schema_extra={"pattern": SUBJECT_PATTERN},
    )
    text: (
        Annotated[str, WithJsonSchema({"type": "string", "maxLength": BODY_MAX, "pattern": TEMPLATE_PATTERN})]
        | None
    ) = Field(default=None, max_length=BODY_MAX, description="Plain-text body template")
    html: (
        Annotated[str, WithJsonSchema({"type": "string", "maxLength": BODY_MAX, "pattern": TEMPLATE_PATTERN})]
        | None
    ) = Field(default=None, max_length=BODY_MAX, description="HTML body template (values escaped)")

    @field_validator("subject")
    @classmethod
    def _one_line(cls, subject: str) -> str:
        if "\n" in subject or "\r" in subject or "\t" in subject:
            raise ValueError("a subject is one line: no line break or tab")
        return subject

    @field_validator("to")
    @classmethod
    def _allowed_domain(cls, to: str | None, info: ValidationInfo) -> str | None:
        # A write key may mail its leads; anyone else only where the operator allows.
        settings = (info.context or {}).get("settings")
        allowed = settings.email_allowed_domains if settings is not None else []
        if to is None:
            return None
        if not allowed or not re.fullmatch(recipient_pattern(allowed), to):
            raise ValueError(
                "`to` names a plain address at a domain of EMAIL_ALLOWED_DOMAINS only"
                f" ({', '.join(allowed) or 'none is set'}); leave it out to mail the lead"
            )
        return to

    @field_validator("subject", "text", "html")
    @classmethod
    def _known_placeholders(cls, template: str | None) -> str | None:
        if template is not None and (unknown := unknown_placeholders(template)):
            raise ValueError(f"unknown placeholders {sorted(unknown)}; use only lead fields")
        return template

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.lead_id is None and self.to is None:
            raise ValueError("give a lead_id or a to address")
        if self.text is None and self.html is None:
            raise ValueError("give a text or an html body")
        return self


async def handle(ctx: JobContext, payload: EmailPayload) -> dict[str, Any]:
    async with ctx.sessions() as session:
        sent = await session.get(EmailDelivery, ctx.task_id)
        if sent is not None:
            return _result(sent.message_id, sent.recipient, sent.transport, already_sent=True)
        values: dict[str, Any] = {}
        if payload.lead_id is not None:
            lead = await get_lead(session, payload.lead_id)  # gone: NotFound, permanent
            values = {
                name: getattr(lead, name)
                for name in ("first_name", "last_name", "email", "phone", "company", "source")
            }
            values["status"] = lead.status.value
    recipient = payload.to or values.get("email")
    if not recipient:
        raise PermanentError("the lead has no email address and no `to` was given")
    message_id = f"<task-{ctx.task_id}@orchestrator>"
    try:
        message = build_message(
            sender=ctx.settings.email_from,
            to=recipient,
            subject=render(payload.subject, values),
            text=render(payload.text, values) if payload.text is not None else None,
            html_body=render(payload.html, values, escape=True) if payload.html is not None else None,
            message_id=message_id,
        )
    except ValueError as exc:  # a header the email package refuses: the same next time
        raise PermanentError(f"the message cannot be built: {exc}") from None
    # The claim may wait for another attempt's; that wait is this attempt's to give up. Once the
    # send is ours, nothing that stops this attempt (a cancel, its timeout, a shutdown) may cut
    # the exchange between the server's acceptance and the record of it.
    session = ctx.sessions()
    handed_over = False
    try:
        await session.begin()
        # The send outlives a timed-out attempt (protected), so the claim must outlive the send.
        if not await ctx.once(session, "send", hold_s=ctx.timeout_s + SEND_DEADLINE_S + 30):
            sent = await session.get(EmailDelivery, ctx.task_id)
            if sent is None:  # not a state this job leaves: the claim and the record commit together
                raise PermanentError("the send was claimed but no delivery was recorded")
            return _result(sent.message_id, sent.recipient, sent.transport, already_sent=True)
        handed_over = True  # no await between this and the protected work taking the session
        outcome: dict[str, Any] = await ctx.protect(_send_and_record(ctx, session, message, recipient))
        return outcome
    finally:
        if not handed_over:
            await session.close()


# A whole SMTP exchange (each command has its own 30 s): a send can outlive its attempt by this.
SEND_DEADLINE_S = 300.0


async def _send_and_record(
    ctx: JobContext, session: AsyncSession, message: EmailMessage, recipient: str
) -> dict[str, Any]:
    """Send, record and commit in the claim's transaction; the session is this function's."""
    message_id = str(message["Message-ID"])
    transport = "smtp" if ctx.settings.smtp_url is not None else "file"
    try:
        if ctx.settings.smtp_url is not None:
            async with asyncio.timeout(SEND_DEADLINE_S):
                await send_smtp(message, ctx.settings.smtp_url.get_secret_value())
        else:
            write_eml(message, ctx.settings.email_outbox_dir)
        record = {
            "task_id": ctx.task_id,
            "message_id": message_id,
            "recipient": recipient,
            "transport": transport,
        }
        await session.execute(insert(EmailDelivery).values(record).on_conflict_do_nothing())
        await session.commit()
    finally:
        await session.close()
    return _result(message_id, recipient, transport, already_sent=False)


def _result(message_id: str, recipient: str, transport: str, *, already_sent: bool) -> dict[str, Any]:
    return {"message_id": message_id, "to": recipient, "transport": transport, "already_sent": already_sent}


job = JobType(
    name="email_send",
    payload=EmailPayload,
    handler=handle,
    description="Render an email from templates and a lead; send it through SMTP or to .eml files, once.",
    timeout_s=60,
    retry=RetryPolicy(max_attempts=5, backoff_base_s=5.0, backoff_max_s=600.0),
)
