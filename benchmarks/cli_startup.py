"""CPU time of a short `enforcer` command (the root group loads a command's module only when it runs).

Usage: .venv/bin/python benchmarks/cli_startup.py [RUNS] [PYTHONPATH ...]

Each PYTHONPATH is a checkout (``git archive REV enforcer policies | tar -x -C DIR``) measured in the
same run, interleaved: ``benchmarks/cli_startup.py 12 /tmp/old /tmp/new`` compares two revisions.
Without one, the installed package is measured. Prints the minimum and median CPU (user + system) of
each command per tree, and how many ``enforcer.*`` modules the command imported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

COMMANDS = (["catalog", "classify", "p5.48xlarge"], ["--help"])
CODE = (
    "import json, sys\n"
    "from enforcer.cli import main\n"
    "sys.argv = ['enforcer', *sys.argv[1:]]\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "print(json.dumps(len([m for m in sys.modules if m.startswith('enforcer.')])), file=sys.stderr)\n"
)


def cpu_of(tree: str | None, args: list[str]) -> tuple[float, int]:
    """CPU seconds of one command in a fresh interpreter, and the enforcer modules it imported."""
    env = {**os.environ, "PYTHONPATH": tree} if tree else dict(os.environ)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", CODE, *args], env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, int(json.loads(proc.stderr.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cli_startup.py", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="?", type=int, default=12, help="runs per command and tree (12)")
    ap.add_argument("trees", nargs="*", help="PYTHONPATH of each checkout to compare (default: installed)")
    args = ap.parse_args(argv)
    trees: list[str | None] = list(args.trees) or [None]
    for cmd in COMMANDS:
        for tree in trees:
            cpu_of(tree, cmd)  # warm the bytecode caches
        samples: dict[str | None, list[float]] = {t: [] for t in trees}
        modules: dict[str | None, int] = {}
        for _ in range(args.runs):
            for tree in trees:
                cpu, modules[tree] = cpu_of(tree, cmd)
                samples[tree].append(cpu)
        for tree, vals in samples.items():
            vals.sort()
            print(
                f"enforcer {' '.join(cmd)} [{tree or 'installed'}]: min {vals[0] * 1000:.0f} ms, "
                f"median {vals[len(vals) // 2] * 1000:.0f} ms CPU, {modules[tree]} enforcer modules"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
