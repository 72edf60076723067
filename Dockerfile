# syntax=docker/dockerfile:1
# The jitgrant operator: a small, non-root image. Pin the base by digest in your build pipeline:
#   docker build --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/jitgrant
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/jitgrant/bin/pip install --no-cache-dir . \
    && /opt/jitgrant/bin/python -m compileall -q /opt/jitgrant

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="jitgrant" \
      org.opencontainers.image.description="Just-in-time, time-boxed RBAC grants for AI agents on Kubernetes and EKS" \
      org.opencontainers.image.source="https://github.com/jitgrant/jitgrant" \
      org.opencontainers.image.licenses="Apache-2.0"
# The same base image, so the virtual environment's interpreter links stay valid.
COPY --from=build /opt/jitgrant /opt/jitgrant
ENV PATH=/opt/jitgrant/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# 65532 is "nonroot" by convention; the chart's podSecurityContext runs as the same user.
USER 65532:65532
EXPOSE 8080 8081 9443
ENTRYPOINT ["jitgrant"]
CMD ["run"]
