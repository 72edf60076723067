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
# `aws`: EKS targets and the S3/CloudWatch audit sinks, which the chart can turn on; build with
# JITGRANT_EXTRAS="" for an image without boto3 (both are tested by tests/image).
ARG JITGRANT_EXTRAS=aws
# kubernetes >= 35 ships a second, asyncio copy of its generated client (kubernetes/aio, 42 MB)
# that jitgrant never imports (kopf talks to the API with aiohttp). pip and setuptools are only
# needed to install; the image carries no installer.
# A build behind a TLS-intercepting proxy passes its CA bundle as a secret (never in a layer):
#   --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt (tests/image/build.sh does).
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && /opt/jitgrant/bin/pip install --no-cache-dir ".${JITGRANT_EXTRAS:+[$JITGRANT_EXTRAS]}" \
    && rm -rf /opt/jitgrant/lib/python3*/site-packages/kubernetes/aio \
    && /opt/jitgrant/bin/pip uninstall -q -y pip setuptools \
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
# 65532 is "nonroot" by convention; the chart's podSecurityContext runs as the same user. It gets a
# passwd entry: kopf names itself after getpass.getuser(), which fails for a uid nobody knows.
RUN echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >>/etc/passwd \
    && echo 'nonroot:x:65532:' >>/etc/group
USER 65532:65532
EXPOSE 8080 8081 9443
ENTRYPOINT ["jitgrant"]
CMD ["run"]
