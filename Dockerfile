# hybridgate gateway image: slim, non-root, PostgreSQL/Redis support included.
#   docker build -t hybridgate .
#   docker run -p 4000:4000 -v hg-home:/var/lib/hybridgate hybridgate
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN /opt/venv/bin/pip install "/src[postgres]"

FROM python:3.11-slim
RUN groupadd --system --gid 10001 hybridgate \
 && useradd --system --uid 10001 --gid hybridgate --home-dir /var/lib/hybridgate \
      --create-home --shell /usr/sbin/nologin hybridgate
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HYBRIDGATE_HOME=/var/lib/hybridgate \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/hybridgate
USER 10001:10001
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/healthz', timeout=2)"]
ENTRYPOINT ["hybridgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "4000"]
