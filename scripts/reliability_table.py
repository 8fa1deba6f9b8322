#!/usr/bin/env python3
"""Write the reliability matrix (from the bad-input tests) into README.md's reliability section.

    python scripts/reliability_table.py [--check]

One row per collected test case of tests/test_bad_input.py and tests/test_cache_heals.py: the
case (the test's parameter id), what the user sees, the exit code, what is left on disk and
how to recover, as each test states it with ``tests.reliability.matrix``. The rows replace the
text between the two markers in README.md; ``--check`` exits 1 if that text is not what the
tests give. Whether each row holds is what the tests themselves check.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MODULES = ("tests/test_bad_input.py", "tests/test_cache_heals.py")
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


def collected() -> list[str]:
    """Node ids of the matrix tests, as pytest collects them."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *MODULES],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "::" in line]


def rows() -> list[str]:
    sys.path.insert(0, str(REPO))
    lines = ["| case | test | what the user sees | exit | left on disk | recovery |",
             "|---|---|---|---|---|---|"]
    for node in collected():
        path, _, test = node.partition("::")
        name, _, case = test.partition("[")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        tag = getattr(getattr(module, name), "reliability", None)
        if tag is None:
            continue
        exit_code = "–" if tag["exit"] is None else str(tag["exit"])
        lines.append(f"| {case.rstrip(']') or '–'} | `{name.removeprefix('test_')}` | "
                     f"{tag['outcome']} | {exit_code} | {tag['left']} | {tag['recovery']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        print(f"README.md has no {START} marker", file=sys.stderr)
        return 1
    new = head + START + "\n" + "\n".join(rows()) + "\n" + END + tail
    if args.check:
        if new != text:
            print("README.md's reliability table is out of date: run "
                  "python scripts/reliability_table.py", file=sys.stderr)
            return 1
        print("reliability table up to date")
        return 0
    README.write_text(new, encoding="utf-8")
    print("wrote the reliability table into README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
