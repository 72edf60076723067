"""The runtime base: a copy of the local Debian base without what a Python operator never runs
(stdlib only; run by build.sh on the unpacked root filesystem, as root).

The build stage needs the whole base (`python -m venv` and its ensurepip wheels); the runtime stage
only needs the interpreter, the libraries it and the wheels link to, CA certificates, time zones
and /bin/sh (the Dockerfile's one RUN). Whole Debian packages are removed: their files (never a
path a kept package also ships), their maintainer files and their entry in /var/lib/dpkg/status,
so the SBOM built from that database lists what is really there. A few stdlib parts are removed
from packages that stay (listed in STDLIB, with the libraries only they load): those entries are
the one place where the database claims more than the image holds.

Usage: prune_base.py ROOTFS   prints what it removed and the bytes freed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

#: Debian packages a Python operator never runs: shells but dash, coreutils and friends, package
#: managers (apt, dpkg, debconf, perl), login/PAM/passwd tools, mount and filesystem tools, and the
#: libraries only they link to. dpkg goes too: its database stays, for the SBOM and scanners.
REMOVE = frozenset(
    """
    adduser apt bash bsdutils coreutils debconf debian-archive-keyring debianutils diffutils dpkg
    e2fsprogs findutils gpgv grep gzip hostname init-system-helpers libacl1 libapt-pkg6.0 libattr1
    libaudit-common libaudit1 libblkid1 libc-bin libcap-ng0 libcap2 libdebconfclient0 libext2fs2
    libgcrypt20 libgmp10 libgnutls30 libgpg-error0 libhogweed6 libidn2-0 liblz4-1 libmd0 libmount1
    libnettle8 libp11-kit0 libpam-modules libpam-modules-bin libpam-runtime libpam0g libpcre2-8-0
    libseccomp2 libselinux1 libsemanage-common libsemanage2 libsepol2 libsmartcols1 libss2
    libsystemd0 libtasn1-6 libudev1 libunistring2 libxxhash0 libzstd1 login logsave mawk mount
    ncurses-base ncurses-bin passwd perl-base sed sysvinit-utils tar util-linux util-linux-extra
    python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl python3-distutils
    python3-lib2to3
    libsqlite3-0 libdb5.3 libncursesw6 libtinfo6 libreadline8 readline-common libnsl2 libtirpc3
    libtirpc-common libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1
    libcom-err2
    """.split()  # noqa: SIM905 (Debian's names, read as the text they are)
)

#: Parts of the standard library (in packages that stay) nothing in the image imports: the
#: modules whose libraries are removed above (sqlite3, dbm, curses, readline, nis), CPython's test
#: modules, pydoc's topic data and ensurepip (venvs are made in the build stage).
STDLIB = (
    "usr/lib/python3.11/test",
    "usr/lib/python3.11/pydoc_data",
    "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/sqlite3",
    "usr/lib/python3.11/dbm",
    "usr/lib/python3.11/curses",
    "usr/lib/python3.11/lib-dynload/_sqlite3.*.so",
    "usr/lib/python3.11/lib-dynload/_dbm.*.so",
    "usr/lib/python3.11/lib-dynload/_curses*.so",
    "usr/lib/python3.11/lib-dynload/readline.*.so",
    "usr/lib/python3.11/lib-dynload/nis.*.so",
    "usr/lib/python3.11/lib-dynload/_test*.so",
    "usr/lib/python3.11/lib-dynload/_ctypes_test.*.so",
    "usr/lib/python3.11/lib-dynload/_xxtestfuzz.*.so",
    "usr/lib/python3.11/lib-dynload/xxlimited*.so",
)

#: What dpkg's and debconf's caches keep about packages (not the database the SBOM reads).
CACHES = ("var/cache/debconf", "var/lib/dpkg/info/*.md5sums", "var/lib/dpkg/*-old")


def installed(root: Path) -> list[tuple[str, str]]:
    """(package, stanza) for every stanza of /var/lib/dpkg/status, in order."""
    text = (root / "var/lib/dpkg/status").read_text()
    stanzas = [s for s in text.split("\n\n") if s.strip()]
    found = []
    for stanza in stanzas:
        match = re.search(r"^Package: (\S+)$", stanza, flags=re.MULTILINE)
        if match:
            found.append((match.group(1), stanza.strip("\n")))
    return found


def listed(root: Path, package: str) -> list[str]:
    """The paths dpkg recorded for `package` (its .list file, with or without an arch suffix)."""
    info = root / "var/lib/dpkg/info"
    paths: list[str] = []
    for candidate in (info / f"{package}.list", *info.glob(f"{package}:*.list")):
        if candidate.is_file():
            paths += [line for line in candidate.read_text().splitlines() if line.strip()]
    return paths


def resolved(root: Path, path: str) -> str:
    """`path` with its directories' symlinks followed inside root (/bin -> usr/bin on merged /usr),
    the name itself left alone: two packages' names for one file compare equal."""
    parent, name = os.path.split(path.lstrip("/"))
    real_parent = os.path.realpath(root / parent)
    return os.path.join(os.path.relpath(real_parent, root), name)


def leads_somewhere(root: Path, link: Path) -> bool:
    """Whether the symlink `link` reaches an existing file, absolute targets taken inside root."""
    current = link
    for _ in range(40):
        if not current.is_symlink():
            return current.exists()
        target = os.readlink(current)
        current = root / target.lstrip("/") if target.startswith("/") else current.parent / target
    return False


def size(path: Path) -> int:
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def remove(path: Path) -> int:
    freed = size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    return freed


def prune(root: Path, packages: frozenset[str] = REMOVE, stdlib: tuple[str, ...] = STDLIB) -> int:
    """Remove `packages` and `stdlib` from the root filesystem at `root`; returns bytes freed."""
    stanzas = installed(root)
    gone = [name for name, _ in stanzas if name in packages]
    kept = {resolved(root, p) for name, _ in stanzas if name not in packages for p in listed(root, name)}
    freed = 0
    directories: set[Path] = set()
    for package in gone:
        for path in listed(root, package):
            target = root / path.lstrip("/")
            if resolved(root, path) in kept:
                continue  # another, kept package ships the same path
            if target.is_dir() and not target.is_symlink():
                directories |= {target, target / "__pycache__"}
            elif target.exists() or target.is_symlink():
                freed += remove(target)
                if target.suffix == ".py":  # and what py3compile made of it at install
                    for compiled in target.parent.glob(f"__pycache__/{target.stem}.*.pyc"):
                        freed += remove(compiled)
        info = root / "var/lib/dpkg/info"
        for meta in [*info.glob(f"{package}.*"), *info.glob(f"{package}:*")]:
            freed += remove(meta)
    # Directories only the removed packages used, deepest first; never one something else fills.
    for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
        if directory.exists() and not any(directory.iterdir()):
            directory.rmdir()
    for pattern in (*stdlib, *CACHES):
        for target in root.glob(pattern):
            freed += remove(target)
    # Alternatives and other links left pointing at removed files (awk, pager, which, ...).
    for links in ("etc/alternatives", "usr/bin", "usr/sbin"):
        for link in (root / links).iterdir() if (root / links).is_dir() else ():
            if link.is_symlink() and not leads_somewhere(root, link):
                link.unlink()
    status = "\n\n".join(stanza for name, stanza in stanzas if name not in packages) + "\n"
    (root / "var/lib/dpkg/status").write_text(status)
    return freed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("rootfs", type=Path)
    args = parser.parse_args(argv)
    before = {name for name, _ in installed(args.rootfs)}
    freed = prune(args.rootfs)
    removed = sorted(before & REMOVE)
    print(
        f"removed {len(removed)} packages and {len(STDLIB)} stdlib parts: {freed / 1e6:.1f} MB",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
