# syntax=docker/dockerfile:1
# The jitgrant operator: a small, non-root image. Pin the base by digest in your build pipeline:
#   docker build --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
# The runtime stage's base: the same Python at the same paths as PYTHON_IMAGE (the virtual
# environment links to its interpreter), without what only the build needs. By default the same
# image; tests/image/build.sh passes a pruned copy of its local Debian base (no shells but sh, no
# package managers, no perl, no ensurepip wheels: see tests/image/prune_base.py).
ARG RUNTIME_IMAGE=python:3.11.11-slim-bookworm

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
# A build behind a TLS-intercepting proxy passes its CA bundle as a secret (never in a layer):
#   --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt (tests/image/build.sh does).
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && /opt/jitgrant/bin/pip install --no-cache-dir ".${JITGRANT_EXTRAS:+[$JITGRANT_EXTRAS]}" \
    && /opt/jitgrant/bin/pip uninstall -q -y pip setuptools
# What the operator never loads, removed before anything is compiled (sizes for the aws extra):
# - kubernetes/aio (42 MB): the asyncio copy of the generated client; jitgrant never imports it
#   (kopf talks to the API with aiohttp).
# - botocore/data (23 MB) and boto3/data: the models of about 450 AWS services. Only those in
#   jitgrant.extras.AWS_SERVICES and AWS_CREDENTIAL_SERVICES stay, with the top-level files
#   (endpoints, partitions, retry and default configuration); tests/image/test_aws_services.py
#   keeps the list complete.
# - C, Cython and header sources and test directories that some wheels ship (aiohttp, yarl,
#   multidict, cffi, websocket-client, certifi, kubernetes' *_test.py).
# - the sources of kubernetes/client/api and /models (19 MB of generated code): shipped compiled
#   only, as legacy .pyc beside where the .py was (`compileall -b`), which Python imports without
#   the source; tracebacks through them show no source lines. Models are compiled with -o 2
#   (docstrings dropped, 3 MB less); the API classes keep theirs, which kubernetes.watch reads to
#   find a call's return type.
RUN site="$(/opt/jitgrant/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/kubernetes/aio" \
    && /opt/jitgrant/bin/python -c 'import pathlib, shutil, sys; \
from jitgrant.extras import AWS_CREDENTIAL_SERVICES, AWS_SERVICES; \
keep = set(AWS_SERVICES) | set(AWS_CREDENTIAL_SERVICES); \
data = [pathlib.Path(sys.argv[1], package, "data") for package in ("botocore", "boto3")]; \
[shutil.rmtree(d) for root in data if root.is_dir() for d in root.iterdir() if d.is_dir() and d.name not in keep]' "$site" \
    && find "$site" -type f \( -name '*.c' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.h' \) -delete \
    && find "$site" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
    && find "$site/kubernetes" -type f -name '*_test.py' -delete \
    && /opt/jitgrant/bin/python -m compileall -q -b "$site/kubernetes/client/api" \
    && /opt/jitgrant/bin/python -m compileall -q -b -o 2 "$site/kubernetes/client/models" \
    && find "$site/kubernetes/client/api" "$site/kubernetes/client/models" -name '*.py' -delete \
    && rm -rf "$site/kubernetes/client/api/__pycache__" "$site/kubernetes/client/models/__pycache__" \
    && /opt/jitgrant/bin/python -m compileall -q /opt/jitgrant

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="jitgrant" \
      org.opencontainers.image.description="Just-in-time, time-boxed RBAC grants for AI agents on Kubernetes and EKS" \
      org.opencontainers.image.source="https://github.com/jitgrant/jitgrant" \
      org.opencontainers.image.licenses="Apache-2.0"
# The same Python as the build stage's, so the virtual environment's interpreter links stay valid.
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
