"""--json: one JSON document (schema_version, facts, findings, summary), nothing else on stdout."""

from __future__ import annotations

import json
from typing import Any

from envdoctor.doctor import Diagnosis
from envdoctor.facts import SCHEMA_VERSION, to_dict


def diagnosis_dict(diagnosis: Diagnosis) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "envdoctor_version": diagnosis.facts.envdoctor_version,
        "facts": to_dict(diagnosis.facts),
        "findings": [
            {
                "code": f.code,
                "category": f.category,
                "severity": f.severity.value,
                "title": f.title,
                "evidence": f.evidence,
                "fix": f.fix,
            }
            for f in diagnosis.findings
        ],
        "summary": diagnosis.summary(),
    }


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)
