"""``cnnkeras zoo`` as a user runs it: listed from the stored figures, against building every model.

Until issue 26, ``cnnkeras zoo`` built every architecture at its reference input to count its
parameters and MACs (73 s reported). It now reads cnnkeras/zoo/metadata.json with the registry
(cnnkeras/zoo/catalog.py). Both are timed as whole processes, alternating: ``cnnkeras zoo`` and
``python -c "import cnnkeras; cnnkeras.zoo_table()"`` (the build-everything path, still what
``cnnkeras zoo --input H,W,C`` does).

    .venv/bin/python benchmarks/zoo_listing.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import alternating, save

CNNKERAS = str(Path(sys.executable).with_name("cnnkeras"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    commands = {"listed": [CNNKERAS, "zoo"],
                "built": [sys.executable, "-c", "import cnnkeras; print(len(cnnkeras.zoo_table()))"]}
    result = alternating(commands, args.repeats, env={"COLUMNS": "80"})
    print(f"cnnkeras zoo: {result['listed']['wall_s']:.2f} s ({result['listed']['cpu_s']:.2f} CPU s); building every "
          f"model: {result['built']['wall_s']:.1f} s ({result['built']['cpu_s']:.1f} CPU s); "
          f"{result['built']['wall_s'] / result['listed']['wall_s']:.0f}x")
    save("zoo_listing", {"repeats": args.repeats, "medians": result}, backend="tensorflow")


if __name__ == "__main__":
    main()
