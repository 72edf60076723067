"""`python -m jitgrant.crdgen DIR` writes the generated CRDs; `--check` fails when DIR is stale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from jitgrant.models.crd import all_crds

HEADER = "# Generated from operator/jitgrant/models by `make crds`. Do not edit by hand.\n"


def render(manifest: dict[str, object]) -> str:
    return HEADER + yaml.safe_dump(manifest, sort_keys=False, width=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jitgrant.crdgen")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ from the models")
    args = parser.parse_args(argv)
    stale = []
    for filename, manifest in all_crds().items():
        path = args.directory / filename
        text = render(manifest)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale CRDs (run `make crds`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
