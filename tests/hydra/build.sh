#!/usr/bin/env bash
# Builds (or reuses) Ory Hydra, the real OAuth2/OIDC identity provider tests/hydra drives, from its
# Go module at a pinned version. The binary is cached per version under
#   ${JITGRANT_HYDRA_CACHE:-~/.cache/jitgrant/hydra}/<version>/hydra
# so only the first run compiles. Progress goes to stderr; the last line on stdout is the directory
# holding the binary (jitgrant_testing/hydra.py reads it).
# Exit codes: 0 ok, 2 no Go toolchain or no C compiler, anything else a failed build.
#
# Why not `go install github.com/ory/hydra/v2@v2.3.0`: Go refuses it, because hydra's go.mod has
# replace directives. And the module zip lacks ./internal/httpclient, the generated OpenAPI client
# that go.mod replaces github.com/ory/hydra-client-go/v2 with (the CLI commands and jwk/ import it).
# So: download the module source, point that replace at the separately published client module
# (v2.2.1, the newest; the server-side code compiles against it), and `go build` in the copy.
# Only the Go module proxy is needed: no GitHub.
set -euo pipefail

say() { echo "hydra: $*" >&2; }

HYDRA_MODULE="github.com/ory/hydra/v2"
HYDRA_VERSION="v2.3.0"
# The module's hash in the Go checksum database: the download is checked against it.
HYDRA_SUM="h1:bPs5MOWmYLZ9C3oQFhhjnaBrExUgF/zf3u1AJVlR//4="
CLIENT_MODULE="github.com/ory/hydra-client-go/v2"
CLIENT_VERSION="v2.2.1"
CLIENT_SUM="h1:m1821pIX6ybG/3oSAn2wtrbBKNwe9q5A8fLljYuLpBk="
# Hydra's Makefile and release builds use these tags; sqlite gives the `memory` DSN (needs cgo).
TAGS="sqlite,sqlite_omit_load_extension"

if ! command -v go >/dev/null 2>&1; then
    say "no Go toolchain on PATH: cannot build Ory Hydra"
    exit 2
fi
cache_root="${JITGRANT_HYDRA_CACHE:-${HOME}/.cache/jitgrant/hydra}"
dest="${cache_root}/${HYDRA_VERSION}"
here="$(cd "$(dirname "$0")" && pwd)"
# The stamp covers what changes the binary: this script (versions, flags) and the toolchain.
stamp="$(sha256sum "${here}/build.sh" | cut -c1-16)-$(go env GOVERSION)"

complete() {
    [[ -f "${dest}/.stamp" && "$(cat "${dest}/.stamp")" == "$stamp" && -x "${dest}/hydra" ]]
}

mkdir -p "$cache_root"
# One build at a time: `make test` and a pytest session may both ask.
exec 9>"${cache_root}/.lock"
flock 9

if complete; then
    say "reusing Ory Hydra ${HYDRA_VERSION} from ${dest} (${SECONDS}s)"
    echo "$dest"
    exit 0
fi

if ! command -v "${CC:-cc}" >/dev/null 2>&1; then
    say "no C compiler (${CC:-cc}) on PATH: Hydra's sqlite driver (the memory DSN) needs cgo"
    exit 2
fi
say "building Ory Hydra ${HYDRA_VERSION} with $(go env GOVERSION) into ${dest} (a few minutes on 2 cores)"
start=$(date +%s)
staging="$(mktemp -d "${cache_root}/.build-XXXXXX")"
cleanup() {
    chmod -R u+w "$staging" 2>/dev/null || true
    rm -rf "$staging"
}
trap cleanup EXIT

module_field() {  # module_field <json> <Field>: one string field of `go mod download -json`
    sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$1" | head -1
}

say "downloading ${HYDRA_MODULE}@${HYDRA_VERSION} and ${CLIENT_MODULE}@${CLIENT_VERSION} (Go module proxy)"
# Outside any module: `go mod download -json` prints where the module cache holds each one.
hydra_json="$(cd "$staging" && go mod download -json "${HYDRA_MODULE}@${HYDRA_VERSION}")"
client_json="$(cd "$staging" && go mod download -json "${CLIENT_MODULE}@${CLIENT_VERSION}")"
check_sum() {  # check_sum <download json> <pinned h1: hash>
    local got
    got="$(module_field "$1" Sum)"
    if [[ "$got" != "$2" ]]; then
        say "module hash mismatch: got '${got}', pinned '$2'"
        exit 1
    fi
}
check_sum "$hydra_json" "$HYDRA_SUM"
check_sum "$client_json" "$CLIENT_SUM"
src_dir="$(module_field "$hydra_json" Dir)"

# The module cache is read-only: build in a writable copy.
cp -r "$src_dir" "${staging}/src"
chmod -R u+w "${staging}/src"
cd "${staging}/src"
go mod edit -replace "${CLIENT_MODULE}=${CLIENT_MODULE}@${CLIENT_VERSION}"
# The replaced module's hashes (pinned above) join go.sum; every other line is hydra's own.
printf '%s %s %s\n' "$CLIENT_MODULE" "$CLIENT_VERSION" "$CLIENT_SUM" >>go.sum
printf '%s %s/go.mod %s\n' "$CLIENT_MODULE" "$CLIENT_VERSION" "$(module_field "$client_json" GoModSum)" >>go.sum

say "compiling (go build -p 2 -tags ${TAGS}, cgo)"
ldflags="-s -w -X ${HYDRA_MODULE}/driver/config.Version=${HYDRA_VERSION}"
ldflags+=" -X ${HYDRA_MODULE}/driver/config.Date=1970-01-01T00:00:00Z"
CGO_ENABLED=1 GOFLAGS=-mod=mod go build -p 2 -trimpath -tags "$TAGS" -ldflags "$ldflags" \
    -o "${staging}/hydra" .
cd "$cache_root"
echo "$stamp" >"${staging}/.stamp"
mkdir "${staging}/out"
mv "${staging}/hydra" "${staging}/.stamp" "${staging}/out/"
chmod 755 "${staging}/out"

rm -rf "$dest"
mv "${staging}/out" "$dest"
elapsed=$(( $(date +%s) - start ))
say "built Ory Hydra ${HYDRA_VERSION} in ${elapsed}s ($(( elapsed / 60 ))m$(( elapsed % 60 ))s) -> ${dest}"
echo "$dest"
