FROM python:3.11-slim
RUN pip install --no-cache-dir uv
# The service's own user: it reads the code and the virtualenv (root's) and writes only the email
# outbox (email_send writes .eml files there when SMTP_URL is unset). DATABASE_URL and REDIS_URL are
# required here: the embedded servers and their DATA_DIR are not used in the image.
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin orchestrator
WORKDIR /app
# The dependencies' bytecode is compiled at build time; nothing tries to write __pycache__ at run time.
ENV UV_COMPILE_BYTECODE=1 PYTHONDONTWRITEBYTECODE=1
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY . .
RUN uv sync --locked --no-dev \
    && mkdir -p /app/.orchestrator/outbox \
    && chown 10001:10001 /app/.orchestrator/outbox
ENV PATH="/app/.venv/bin:$PATH"
USER 10001:10001
EXPOSE 8000
CMD ["orchestrator", "api", "--host", "0.0.0.0"]
