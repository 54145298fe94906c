"""Rendering allure-results to HTML with the Allure 3 command line (npm package `allure`, no Java).

`make` installs it into tools/allure/node_modules from the pinned tools/allure/package.json. The report
is a single self-contained index.html (it opens from disk and can be mailed); history accumulates in one
JSON-lines file shared by the runs, so trends show from the second run on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rig.report.allure_files import CATEGORIES

ROOT = Path(__file__).resolve().parents[2]
ALLURE_HOME = ROOT / "tools" / "allure"
ALLURE_BIN = ALLURE_HOME / "node_modules" / ".bin" / "allure"
INSTALL_HINT = "install it with `make allure` (npm, from the npm registry)"


@dataclass(frozen=True)
class Rendered:
    """Where the HTML went, or why there is none and how to render it by hand."""

    index: Path | None
    message: str


def allure_available() -> bool:
    return ALLURE_BIN.exists() and shutil.which("node") is not None


def manual_command(results: Path, output: Path) -> str:
    return f"npx --prefix {ALLURE_HOME} allure generate {results} --output {output}"


def render(results: Path, output: Path, name: str, history: Path, timeout_s: float = 300.0) -> Rendered:
    """Generate `output/index.html` from `results`; never raises for a missing or failing tool."""
    if not allure_available():
        return Rendered(None, f"Allure command line not found ({INSTALL_HINT}); allure-results kept in {results}; "
                              f"render them with: {manual_command(results, output)}")
    config = results.parent / "allurerc.json"
    config.write_text(json.dumps({
        "name": name,
        "output": str(output),
        "historyPath": str(history),
        "categories": CATEGORIES,
        "plugins": {"awesome": {"options": {"singleFile": True, "reportName": name, "reportLanguage": "en"}}},
    }, indent=2))
    if output.exists():
        shutil.rmtree(output)
    history.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([str(ALLURE_BIN), "generate", str(results), "--config", str(config)],
                              capture_output=True, text=True, timeout=timeout_s, cwd=results.parent)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Rendered(None, f"Allure could not render the report ({error}); allure-results kept in {results}")
    index = output / "index.html"
    if done.returncode != 0 or not index.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return Rendered(None, f"Allure exited {done.returncode} ({' / '.join(tail)}); allure-results kept in "
                              f"{results}; render them with: {manual_command(results, output)}")
    return Rendered(index, f"report: {index}")
