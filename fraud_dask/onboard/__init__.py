"""Onboarding a client's source: a data profile, then a report the client can read offline.

- :func:`fraud_dask.onboard.profile.profile_source` -- what the source holds (rows, quarantine by
  reason with redacted examples, time span, columns, null rates, entities, amounts, fraud rate,
  label delay, card numbers found), every figure from one ``dask.compute``;
- :func:`fraud_dask.onboard.report.write_onboard_report` -- ``onboard.html``, self-contained;
- :func:`fraud_dask.onboard.report.console_summary` -- the same in a few lines of text.

Imported lazily, so ``import fraud_dask.onboard`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "profile_source": "fraud_dask.onboard.profile",
    "profile_warnings": "fraud_dask.onboard.profile",
    "redact": "fraud_dask.onboard.profile",
    "write_onboard_report": "fraud_dask.onboard.report",
    "console_summary": "fraud_dask.onboard.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fraud_dask.onboard' has no attribute {name!r}")
