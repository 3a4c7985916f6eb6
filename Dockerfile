# The demo app (and the capture receiver) for docker-compose.yml.
# Build context is the repository root; .dockerignore keeps it small.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# The demo drives the real openai and anthropic SDKs, so both extras are installed.
RUN pip install '.[openai,anthropic]'

# Unprivileged at run time; nothing in the image needs root.
USER 65534:65534
EXPOSE 8000
ENTRYPOINT ["llm-exporter"]
CMD ["demo", "--host", "0.0.0.0", "--port", "8000"]
