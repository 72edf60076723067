"""The runtime base's pruning, on a small root filesystem laid out as dpkg leaves one (merged /usr):
a removed package's files, maintainer files and status entry go; a path a kept package also ships
stays, and so does everything of the kept packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# prune_base.py is a script build.sh runs with the host's python3, not a module of the product.
_spec = importlib.util.spec_from_file_location("prune_base", Path(__file__).with_name("prune_base.py"))
assert _spec is not None and _spec.loader is not None
prune_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prune_base)
prune = prune_base.prune

STATUS = """Package: perl-base
Status: install ok installed
Version: 5.36.0-7

Package: python3.11-minimal
Status: install ok installed
Version: 3.11.2-6

Package: shared-owner
Status: install ok installed
Version: 1.0
"""


def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for directory in (
        "usr/bin",
        "usr/lib/perl",
        "usr/share/doc/perl",
        "var/lib/dpkg/info",
        "etc/alternatives",
    ):
        (root / directory).mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "var/lib/dpkg/status").write_text(STATUS)
    info = root / "var/lib/dpkg/info"
    # perl-base lists /bin/perl (reached through the /bin link) and a file shared-owner lists too.
    (info / "perl-base.list").write_text(
        "/.\n/bin/perl\n/usr/lib/perl\n/usr/lib/perl/Config.pm\n/usr/bin/shared\n"
    )
    (info / "perl-base.md5sums").write_text("x  usr/bin/perl\n")
    (info / "perl-base.postinst").write_text("#!/bin/sh\n")
    (info / "python3.11-minimal.list").write_text("/.\n/usr/bin\n/usr/bin/python3.11\n")
    (info / "shared-owner.list").write_text("/bin/shared\n")
    for path in ("usr/bin/perl", "usr/lib/perl/Config.pm", "usr/bin/python3.11", "usr/bin/shared"):
        (root / path).write_text("x" * 100)
    (root / "etc/alternatives/pager").symlink_to("/usr/bin/perl")  # left dangling by the removal
    (root / "usr/bin/pager").symlink_to("/etc/alternatives/pager")
    (root / "usr/bin/python3").symlink_to("python3.11")
    return root


def test_a_removed_package_leaves_no_file_maintainer_script_or_status_entry(tmp_path: Path) -> None:
    root = rootfs(tmp_path)
    freed = prune(root, frozenset({"perl-base"}), ())
    assert not (root / "usr/bin/perl").exists() and not (root / "usr/lib/perl").exists()
    assert not list((root / "var/lib/dpkg/info").glob("perl-base.*"))
    status = (root / "var/lib/dpkg/status").read_text()
    assert (
        "perl-base" not in status
        and "Package: python3.11-minimal" in status
        and "Package: shared-owner" in status
    )
    assert not (root / "usr/bin/pager").is_symlink() and not (root / "etc/alternatives/pager").is_symlink()
    assert freed >= 200


def test_what_kept_packages_ship_stays_even_when_a_removed_one_lists_it(tmp_path: Path) -> None:
    root = rootfs(tmp_path)
    prune(root, frozenset({"perl-base"}), ())
    # /usr/bin/shared: listed by perl-base as /usr/bin/shared, by shared-owner as /bin/shared.
    assert (root / "usr/bin/shared").is_file()
    assert (root / "usr/bin/python3.11").is_file() and (root / "usr/bin/python3").is_symlink()
    assert (root / "usr/bin").is_dir() and (root / "bin").is_symlink()
    assert (root / "var/lib/dpkg/info/python3.11-minimal.list").is_file()


def test_stdlib_parts_are_removed_by_pattern(tmp_path: Path) -> None:
    root = rootfs(tmp_path)
    dynload = root / "usr/lib/python3.11/lib-dynload"
    dynload.mkdir(parents=True)
    (dynload / "_sqlite3.cpython-311-x86_64-linux-gnu.so").write_bytes(b"x")
    (dynload / "_ssl.cpython-311-x86_64-linux-gnu.so").write_bytes(b"x")
    prune(root, frozenset(), ("usr/lib/python3.11/lib-dynload/_sqlite3.*.so",))
    assert [p.name for p in dynload.iterdir()] == ["_ssl.cpython-311-x86_64-linux-gnu.so"]
