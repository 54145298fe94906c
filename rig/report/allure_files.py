"""Files the rig adds to a run's allure-results: environment, executor, categories, and report-level results.

The environment carries the device's and the bench's identity; the categories separate product defects
(`failed`: a check's judgement) from rig faults (`broken`: an instrument lost, a level not reached). A
report-level result (the certification matrix, the battery projection) is an ordinary Allure test result
with its page attached, so it shows in the tree beside the suites.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CATEGORIES = [
    {"name": "Product defects", "matchedStatuses": ["failed"],
     "description": "the device failed a check's judgement against the plan"},
    {"name": "Rig faults", "matchedStatuses": ["broken"],
     "description": "the bench could not measure: an instrument lost, a level not reached, a rig error"},
    {"name": "Not applicable or missing bench parts", "matchedStatuses": ["skipped"]},
]


def properties_line(key: str, value: str) -> str:
    """One `key=value` line of a Java properties file (separators in the key escaped, one line each)."""
    key = key.replace("\\", "\\\\").replace(" ", "\\ ").replace("=", "\\=").replace(":", "\\:")
    value = value.replace("\\", "\\\\").replace("\n", " ")
    return f"{key}={value}"


def write_environment(results: Path, environment: dict[str, str]) -> None:
    """environment.properties: identities shown on the report's overview."""
    results.mkdir(parents=True, exist_ok=True)
    text = "\n".join(properties_line(key, value) for key, value in environment.items() if value != "")
    (results / "environment.properties").write_text(text + "\n")


def write_categories(results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "categories.json").write_text(json.dumps(CATEGORIES, indent=2))


def write_executor(results: Path, name: str, run_name: str) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "executor.json").write_text(json.dumps({"name": name, "type": "rig", "buildName": run_name}))


@dataclass(frozen=True)
class Attachment:
    name: str
    content: bytes
    mime: str
    extension: str


def add_result(results: Path, name: str, status: str, labels: dict[str, str], attachments: list[Attachment],
               description: str = "", description_html: str = "", history_id: str | None = None) -> Path:
    """A finished test result written in the Allure 2 result format, with its attachments beside it."""
    results.mkdir(parents=True, exist_ok=True)
    now_ms = int(time.time() * 1000)
    attached = []
    for attachment in attachments:
        source = f"{uuid.uuid4()}-attachment.{attachment.extension}"
        (results / source).write_bytes(attachment.content)
        attached.append({"name": attachment.name, "source": source, "type": attachment.mime})
    result_id = str(uuid.uuid4())
    result = {
        "uuid": result_id,
        "historyId": history_id or name,
        "testCaseId": history_id or name,
        "name": name,
        "fullName": f"rig.report.{name}",
        "status": status,
        "stage": "finished",
        "description": description,
        "descriptionHtml": description_html or None,
        "start": now_ms,
        "stop": now_ms,
        "labels": [{"name": key, "value": value} for key, value in labels.items()],
        "attachments": attached,
        "steps": [],
        "parameters": [],
    }
    path = results / f"{result_id}-result.json"
    path.write_text(json.dumps(result))
    return path
