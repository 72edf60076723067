#!/usr/bin/env bash
# `make image`: build the operator image from the Dockerfile, then write its SBOM and audit its
# Python packages. Docker is used when an engine answers; otherwise buildah (Debian package,
# installed here with apt-get when missing and running as root), with `--storage-driver vfs
# --isolation chroot` so it needs no daemon, no overlay mounts and no user namespaces.
#
# The Dockerfile's base (python:3.11.x-slim-bookworm) is pulled when a registry is reachable;
# otherwise an equivalent base is made with debootstrap from Debian's packages (Debian's
# python3.11 with venv) and cached as a tarball under ~/.cache/jitgrant/image/, so only the first
# build pays for it. The Dockerfile itself is the same for both: the base is a build argument.
# With that local base, the runtime stage gets a pruned copy of it (tests/image/prune_base.py:
# no package managers, perl, shells but sh, coreutils or ensurepip wheels), cached beside it.
#
# Usage: build.sh                  build (or reuse: the image carries a hash of its build context)
#        build.sh --rootfs DIR     also unpack the image's root filesystem into DIR and write its
#                                  config (User, Env, Entrypoint, Cmd) to DIR.config.json
# Outputs (build/image/): sbom.cdx.json, pip-audit.json, image.env (ENGINE, IMAGE, SIZE_BYTES).
# Exit codes: 0 ok, 3 neither docker nor buildah can be used here, anything else a failed build or
# a vulnerability with a fix available.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

say() { echo "image: $*" >&2; }

rootfs_out=""
if [[ "${1:-}" == "--rootfs" ]]; then
    rootfs_out="${2:?--rootfs needs a directory}"
fi

version="$(awk -F'"' '/^version = /{print $2; exit}' pyproject.toml)"
image="${JITGRANT_IMAGE:-localhost/jitgrant:${version}}"
out="${JITGRANT_IMAGE_OUT:-${root}/build/image}"
cache="${JITGRANT_IMAGE_CACHE:-${HOME}/.cache/jitgrant/image}"
python_image="$(awk -F= '/^ARG PYTHON_IMAGE=/{print $2; exit}' Dockerfile)"
pip_audit_version="2.10.1"
mkdir -p "$out" "$cache"

# The build context as the engine sees it (.dockerignore applied by hand: pyproject, README and
# the product package, without caches): its hash names the build, so an unchanged tree is reused.
context_hash="$(
    {
        sha256sum Dockerfile .dockerignore pyproject.toml README.md tests/image/prune_base.py
        find operator/jitgrant -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
            | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
)"

# -- engine -------------------------------------------------------------------------------------
engine=""
if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
    engine=docker
else
    if ! command -v buildah >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            say "no Docker engine: installing buildah and debootstrap (Debian packages)"
            apt-get update -q >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah debootstrap >&2
        fi
    fi
    if command -v buildah >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
        engine=buildah
    fi
fi
if [[ -z "$engine" ]]; then
    say "neither a Docker engine nor buildah (as root, with apt-get) is available: no image built"
    exit 3
fi
bah() { buildah --storage-driver vfs "$@"; }

# -- base ---------------------------------------------------------------------------------------
# A Debian bookworm root filesystem with python3.11 and venv, stripped of what an image never
# uses (docs, man pages, locales, apt's lists and caches). Its stamp covers what changes it.
local_base="localhost/jitgrant-python:3.11-bookworm"
base_packages="python3,python3-venv,python-is-python3,ca-certificates"
base_stamp="$(printf '%s\n' "bookworm" "$base_packages" "strip-v1" | sha256sum | cut -c1-12)"
base_tar="${cache}/base-bookworm-python3.11-${base_stamp}.tar"
prune_stamp="$(sha256sum tests/image/prune_base.py | cut -c1-12)"
local_runtime="localhost/jitgrant-python:3.11-bookworm-runtime-${prune_stamp}"
runtime_tar="${cache}/runtime-bookworm-python3.11-${base_stamp}-${prune_stamp}.tar"

make_base_tarball() {
    local tmp
    tmp="$(mktemp -d "${cache}/debootstrap.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '${tmp}'" RETURN
    say "debootstrap: a Debian bookworm base with ${base_packages} (first build only, a few minutes)"
    debootstrap --variant=minbase --include="$base_packages" bookworm "${tmp}/rootfs" \
        http://deb.debian.org/debian >"${tmp}/debootstrap.log" 2>&1 \
        || { tail -20 "${tmp}/debootstrap.log" >&2; return 1; }
    local r="${tmp}/rootfs"
    rm -rf "${r}"/var/lib/apt/lists/* "${r}"/var/cache/apt/* "${r}"/var/cache/debconf/*-old \
        "${r}"/usr/share/doc/* "${r}"/usr/share/man/* "${r}"/usr/share/info/* "${r}"/usr/share/locale/* \
        "${r}"/var/log/* "${r}"/tmp/* "${r}"/root/.cache
    # Python never uses glibc's iconv modules; they are 8 MB.
    rm -rf "${r}"/usr/lib/x86_64-linux-gnu/gconv "${r}"/usr/lib/aarch64-linux-gnu/gconv
    tar --numeric-owner -C "$r" -cf "${base_tar}.part" .
    mv "${base_tar}.part" "$base_tar"
}

make_runtime_tarball() { # the local base without what only the build stage needs
    local tmp
    tmp="$(mktemp -d "${cache}/runtime.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '${tmp}'" RETURN
    mkdir "${tmp}/rootfs"
    tar --numeric-owner -C "${tmp}/rootfs" -xf "$base_tar"
    python3 "${root}/tests/image/prune_base.py" "${tmp}/rootfs"
    tar --numeric-owner -C "${tmp}/rootfs" -cf "${runtime_tar}.part" .
    mv "${runtime_tar}.part" "$runtime_tar"
    # Runtime bases of earlier prune_base.py versions are never used again.
    find "$cache" -maxdepth 1 -name 'runtime-bookworm-*.tar' ! -name "${runtime_tar##*/}" -delete
    local stale
    for stale in $(
        if [[ "$engine" == docker ]]; then
            docker image ls --format '{{.Repository}}:{{.Tag}}'
        else
            bah images --format '{{.Name}}:{{.Tag}}'
        fi
    ); do
        if [[ "$stale" == "${local_base}-runtime-"* && "$stale" != "$local_runtime" ]]; then
            if [[ "$engine" == docker ]]; then docker rmi "$stale" >/dev/null; else bah rmi "$stale" >/dev/null; fi
        fi
    done
}

choose_runtime_base() { # choose_runtime_base BUILD_BASE: the runtime stage's base for it
    if [[ "$1" != "$local_base" ]]; then
        echo "$1" # a pulled python image: used as it is for both stages
        return
    fi
    if [[ "$engine" == docker ]]; then
        if ! docker image inspect "$local_runtime" >/dev/null 2>&1; then
            [[ -f "$runtime_tar" ]] || make_runtime_tarball
            docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                --change 'CMD ["python3"]' "$runtime_tar" "$local_runtime" >&2
        fi
    elif ! bah inspect --type image "$local_runtime" >/dev/null 2>&1; then
        [[ -f "$runtime_tar" ]] || make_runtime_tarball
        local ctr
        ctr="$(bah from scratch)"
        bah add "$ctr" "$runtime_tar" / >/dev/null
        bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --cmd python3 "$ctr"
        bah commit -q --rm "$ctr" "$local_runtime" >/dev/null
    fi
    echo "$local_runtime"
}

choose_base() {
    if [[ "$engine" == docker ]]; then
        if docker image inspect "$python_image" >/dev/null 2>&1 || timeout 120 docker pull -q "$python_image" >&2; then
            echo "$python_image"
            return
        fi
        if ! docker image inspect "$local_base" >/dev/null 2>&1; then
            command -v debootstrap >/dev/null || { say "cannot pull ${python_image} and no debootstrap"; return 1; }
            [[ -f "$base_tar" ]] || make_base_tarball
            docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                --change 'CMD ["python3"]' "$base_tar" "$local_base" >&2
        fi
        echo "$local_base"
        return
    fi
    if bah inspect --type image "$python_image" >/dev/null 2>&1; then
        echo "$python_image"
        return
    fi
    if ! bah inspect --type image "$local_base" >/dev/null 2>&1; then
        if timeout 60 buildah --storage-driver vfs pull -q "docker.io/library/${python_image}" >/dev/null 2>&1; then
            echo "$python_image"
            return
        fi
        say "cannot pull ${python_image}: using a Debian base made with debootstrap"
        [[ -f "$base_tar" ]] || make_base_tarball
        local ctr
        ctr="$(bah from scratch)"
        bah add "$ctr" "$base_tar" / >/dev/null
        bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --cmd python3 "$ctr"
        bah commit -q --rm "$ctr" "$local_base" >/dev/null
    fi
    echo "$local_base"
}

image_label() { # image_label NAME: a label of the built image, empty if there is none
    if [[ "$engine" == docker ]]; then
        docker image inspect -f "{{ index .Config.Labels \"$1\" }}" "$image" 2>/dev/null || true
    else
        bah inspect --type image -f "{{ index .OCIv1.Config.Labels \"$1\" }}" "$image" 2>/dev/null || true
    fi
}

image_hash() {
    if [[ "$engine" == docker ]]; then
        docker image inspect -f '{{ index .Config.Labels "dev.jitgrant.context" }}' "$image" 2>/dev/null || true
    else
        bah inspect --type image -f '{{ index .OCIv1.Config.Labels "dev.jitgrant.context" }}' "$image" 2>/dev/null || true
    fi
}

# -- build --------------------------------------------------------------------------------------
# The CA bundle pip on this machine trusts (a TLS-intercepting proxy's CA, for one), handed to the
# build as a secret: it is mounted for the pip step only and never stored in a layer.
ca_bundle="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"
secret=()
[[ -s "$ca_bundle" ]] && secret=(--secret "id=pip-ca,src=${ca_bundle}")
exec 9>"${cache}/.lock"
flock 9
existing="$(image_hash)"
if [[ "$existing" == "$context_hash" || ( -n "${JITGRANT_IMAGE_REUSE:-}" && -n "$existing" ) ]]; then
    # JITGRANT_IMAGE_REUSE=1 reuses the last build whatever changed since (iterating on tests).
    say "${image} is up to date (context ${context_hash}); reusing it"
else
    base="$(choose_base)"
    runtime_base="$(choose_runtime_base "$base")"
    say "building ${image} with ${engine} from ${base} (runtime stage: ${runtime_base})"
    start=$SECONDS
    args=(--build-arg "PYTHON_IMAGE=${base}" --build-arg "RUNTIME_IMAGE=${runtime_base}")
    if [[ "$engine" == docker ]]; then
        docker build -q "${secret[@]}" "${args[@]}" --label "dev.jitgrant.context=${context_hash}" \
            --label "dev.jitgrant.runtime-base=${runtime_base}" -t "$image" . >&2
    else
        bah build --isolation chroot --layers --force-rm --pull-never -q "${secret[@]}" "${args[@]}" \
            --label "dev.jitgrant.context=${context_hash}" --label "dev.jitgrant.runtime-base=${runtime_base}" \
            -t "$image" . >&2
        # Dangling layers of earlier builds would otherwise pile up in vfs storage (full copies).
        bah rmi --prune >/dev/null 2>&1 || true
    fi
    say "built in $((SECONDS - start)) s"
fi

# -- unpack, SBOM, audit ------------------------------------------------------------------------
unpack() { # unpack DIR: the image's root filesystem and its config (DIR.config.json)
    local dir="$1"
    mkdir -p "$dir"
    if [[ "$engine" == docker ]]; then
        local ctr
        ctr="$(docker create "$image")"
        docker export "$ctr" | tar --numeric-owner -C "$dir" -xf -
        docker rm "$ctr" >/dev/null
        docker image inspect "$image" \
            | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)[0]["Config"]))' >"${dir}.config.json"
    else
        local ctr mnt
        ctr="$(bah from --pull-never -q "$image")"
        mnt="$(bah mount "$ctr")"
        tar --numeric-owner -C "$mnt" -cf - . | tar --numeric-owner -C "$dir" -xf -
        bah umount "$ctr" >/dev/null
        bah rm "$ctr" >/dev/null
        bah inspect --type image "$image" \
            | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"]))' >"${dir}.config.json"
    fi
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
unpack "${work}/rootfs"
size="$(du -sb "${work}/rootfs" | cut -f1)"
site="$(echo "${work}"/rootfs/opt/jitgrant/lib/python3*/site-packages)"
python3 "${root}/tests/image/sbom.py" --rootfs "${work}/rootfs" --site-packages "$site" \
    --name jitgrant --version "$version" >"${out}/sbom.cdx.json"
say "SBOM: ${out}/sbom.cdx.json"

# pip-audit in a venv of its own (not the image's, not the project's), asking PyPI's vulnerability
# data about exactly the packages in the image. Fails on a vulnerability that has a fix.
tools="${cache}/pip-audit-${pip_audit_version}"
if [[ ! -x "${tools}/bin/pip-audit" ]]; then
    python3 -m venv "$tools" >&2
    "${tools}/bin/pip" install -q --disable-pip-version-check "pip-audit==${pip_audit_version}" >&2
fi
pip_audit_rc=0
"${tools}/bin/pip-audit" --path "$site" --format json --progress-spinner off \
    >"${out}/pip-audit.json" 2>"${work}/pip-audit.err" || pip_audit_rc=$?
audit_rc=0
if [[ $pip_audit_rc -gt 1 || ! -s "${out}/pip-audit.json" ]]; then
    # 1 means "found something" (judged below); anything else means it could not ask at all.
    cat "${work}/pip-audit.err" >&2
    say "pip-audit failed (exit ${pip_audit_rc}) before it could judge the packages"
    audit_rc=4
else
    python3 "${root}/tests/image/sbom.py" --check-audit "${out}/pip-audit.json" || audit_rc=$?
fi

if [[ -n "$rootfs_out" ]]; then
    rm -rf "$rootfs_out" "${rootfs_out}.config.json"
    mv "${work}/rootfs" "$rootfs_out"
    mv "${work}/rootfs.config.json" "${rootfs_out}.config.json"
fi
# RUNTIME_BASE: the runtime stage's base (the pruned local one, or the pulled python image).
printf 'ENGINE=%s\nIMAGE=%s\nSIZE_BYTES=%s\nCONTEXT=%s\nRUNTIME_BASE=%s\n' "$engine" "$image" "$size" \
    "$context_hash" "$(image_label dev.jitgrant.runtime-base)" >"${out}/image.env"
say "${image}: $((size / 1000000)) MB uncompressed"
if [[ $audit_rc -ne 0 ]]; then
    say "pip-audit: see ${out}/pip-audit.json"
    exit "$audit_rc"
fi
echo "$image"
