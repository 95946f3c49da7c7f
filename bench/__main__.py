"""Run every benchmark, each in a process of its own, and print (or --write) the results.

    python -m bench              # print the tables
    python -m bench --write      # and record them in bench/RESULTS.md
    python -m bench ring scale   # only some of them
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["election_handoff", "election_faults", "ring", "scale"]


def run_one(name: str) -> str:
    """A process of its own: peak memory and threads are the benchmark's, not its neighbours'."""
    result = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=HERE.parent, capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        return f"## {name}: FAILED\n\n```\n{result.stderr.strip()[-3000:]}\n```"
    return result.stdout.strip()


def kept_soak_section(path: Path = HERE / "RESULTS.md") -> str:
    """The chaos soak's section of RESULTS.md (`python -m bench.soak --write`): a run of its own, kept as it is."""
    text = path.read_text() if path.exists() else ""
    start = text.find("\n## Chaos soak")
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)].rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="The lab's benchmarks, side by side with their peers.")
    parser.add_argument("only", nargs="*", choices=[[], *BENCHMARKS], help="run only these")
    parser.add_argument("--write", action="store_true", help="record the results in bench/RESULTS.md")
    args = parser.parse_args()
    sections = []
    for name in args.only or BENCHMARKS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        sections.append(run_one(name))
        print(sections[-1] + "\n", flush=True)
    if args.write:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        header = (f"# Benchmark results\n\nOne full run of `python -m bench --write`, {stamp}. Each benchmark "
                  "started its own ZooKeeper (the local launcher, loopback) and measured its peer in the same run.")
        (HERE / "RESULTS.md").write_text(header + "\n\n" + "\n\n".join(sections) + "\n" + kept_soak_section())
        print(f"wrote {HERE / 'RESULTS.md'}", file=sys.stderr)
    return 1 if any("FAILED" in s for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
