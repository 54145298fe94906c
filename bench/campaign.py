"""Benchmark of the certification campaign on the simulated bench: wall time per check and in all,
against the virtual time the twin simulated, side by side in one run.

    .venv/bin/python bench/campaign.py [--device PROFILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=str(ROOT / "profiles" / "devices" / "reference-meter.yaml"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as results:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rig", "certify", "--device", args.device, "--results", results],
                       cwd=ROOT, capture_output=True, text=True)
        wall_s = time.perf_counter() - started
        junit = next(Path(results).glob("*/junit.xml"))
        per_file: dict[str, float] = defaultdict(float)
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            per_file[case.get("classname", "?").rsplit(".", 1)[-1]] += float(case.get("time", 0))
    width = max(len(name) for name in per_file)
    for name, seconds in sorted(per_file.items(), key=lambda item: -item[1]):
        print(f"{name:<{width}}  {seconds:7.2f} s")
    print(f"{'whole campaign (with start-up)':<{width}}  {wall_s:7.2f} s")


if __name__ == "__main__":
    main()
