"""The scoring service's HTTP API as data: request and response definitions.

The same definitions do two things, so that the documentation cannot drift from the service:

- :meth:`Body.check` validates a request body before the scorer sees it (a missing field, or a
  field of the wrong JSON type or range, is a :class:`FieldError` naming the field: ``422``);
- :func:`openapi_document` builds the OpenAPI 3.1 document that ``GET /openapi.json`` serves.

The request of ``POST /score`` follows the model: its entity columns (``card_id``,
``terminal_id``...) and raw inputs (``client_id``...) come from the scorer's feature spec
(:func:`score_request`); ``POST /label``'s request is fixed (:data:`LABEL_REQUEST`). The scorer
then checks what a JSON type cannot say (the time window, card numbers, the id type of the
history) and names the field as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: JSON Schema types, and how a message names them
_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "null": "null",
    "boolean": "true or false",
    "object": "a JSON object",
    "array": "an array",
}
_INT64 = (-(2**63), 2**63 - 1)
#: largest integer a float holds exactly: JSON 5.0 is the integer 5 below it
_EXACT = 2**53


class FieldError(ValueError):
    """A request body's field is missing or has the wrong JSON type or range."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _is_type(kind: str, value: Any) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) or (
            isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT
        )
    if kind == "number":
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    raise ValueError(f"unknown JSON Schema type {kind!r}")


def matches(schema: Mapping[str, Any], value: Any) -> bool:
    """Whether ``value`` (parsed JSON) satisfies ``schema``'s ``type``, ``enum``, ``minimum``
    and ``maximum`` (the keywords the definitions use; numeric bounds apply to numbers only,
    as in JSON Schema)."""
    types = schema.get("type")
    if types is not None:
        kinds = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(k, value) for k in kinds):
            return False
    if "enum" in schema and (
        isinstance(value, bool)
        or not any(value == e and not isinstance(e, bool) for e in schema["enum"])
    ):
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and not value >= schema["minimum"]:
            return False
        if "maximum" in schema and not value <= schema["maximum"]:
            return False
    return True


def expected(schema: Mapping[str, Any]) -> str:
    """What ``schema`` accepts, in words (``an integer, a string or null``)."""
    if "enum" in schema:
        values = [str(v) for v in schema["enum"]]
        return " or ".join([", ".join(values[:-1]), values[-1]] if len(values) > 1 else values)
    types = schema.get("type")
    kinds = [types] if isinstance(types, str) else list(types or [])
    words = [_TYPE_WORDS[k] for k in kinds]
    text = " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low, high) == _INT64:
        text = text.replace("an integer", "an integer (int64)")
    elif low is not None and high is not None:
        text += f" in [{low:g}, {high:g}]"
    elif low is not None and low != _INT64[0]:
        text += f" >= {low:g}"
    elif high is not None and high != _INT64[1]:
        text += f" <= {high:g}"
    return text or "any JSON value"


@dataclass(frozen=True)
class Field:
    """One field of a request body.

    Attributes
    ----------
    name : str
        The JSON key.
    schema : dict
        Its JSON Schema (``type``, and optionally ``enum``, ``minimum``, ``maximum``,
        ``examples``).
    description : str
        One or two sentences for the documentation.
    required : bool
        Whether the body must hold it.
    """

    name: str
    schema: dict[str, Any]
    description: str
    required: bool = True


@dataclass(frozen=True)
class Body:
    """A request body: a JSON object with ``fields`` (others are allowed and ignored).

    Attributes
    ----------
    what : str
        How messages name the body (``event``, ``label``).
    component : str
        Its schema's name in the OpenAPI document.
    description : str
        For the documentation.
    fields : tuple of Field
    """

    what: str
    component: str
    description: str
    fields: tuple[Field, ...]

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the body (OpenAPI 3.1 dialect)."""
        return {
            "type": "object",
            "description": self.description,
            "properties": {f.name: {**f.schema, "description": f.description} for f in self.fields},
            "required": self.required,
            "additionalProperties": True,
        }

    def check(self, body: Mapping[str, Any]) -> None:
        """Raise :class:`FieldError` (naming the field) unless ``body`` holds every required
        field, each field of a type and range its schema accepts."""
        from fraud_dask.score.online import redact

        missing = [name for name in self.required if name not in body]
        if missing:
            raise FieldError(
                missing[0],
                f"{self.what}: missing field(s) {missing}; required: {self.required}",
            )
        for f in self.fields:
            if f.name in body and not matches(f.schema, body[f.name]):
                raise FieldError(
                    f.name,
                    redact(
                        f"{self.what}: field {f.name!r} must be {expected(f.schema)}, "
                        f"got {body[f.name]!r}"
                    )[:500],
                )


_TX_ID = {"type": ["integer", "string"], "minimum": _INT64[0], "maximum": _INT64[1]}


def _tx_id(scorer: Any) -> dict[str, Any]:
    """``tx_id``'s schema: the JSON type of the ids the scorer holds (an integer or a string
    once the warm start or a first event decided it; either before)."""
    import numpy as np

    kind = getattr(getattr(scorer, "state", None), "tx_dtype", None)
    if kind is None:
        return dict(_TX_ID)
    if kind is np.int64:
        return {"type": "integer", "minimum": _INT64[0], "maximum": _INT64[1]}
    return {"type": "string"}


_TIME = {"type": "string", "examples": ["2025-03-01T10:00:00Z"]}


def score_request(scorer: Any) -> Body:
    """The body of ``POST /score`` for ``scorer`` (an
    :class:`~fraud_dask.score.online.OnlineScorer`): what its model and feature spec read."""
    fields = [
        Field(
            "tx_id",
            _tx_id(scorer),
            "The transaction's id, unique, of the same JSON type as the ids of the history the "
            "service warm-started from (an int64 integer or a string). It names the event in "
            "POST /label.",
        ),
        Field(
            "ts",
            _TIME,
            "Event time, ISO 8601 (naive: UTC). Rejected when more than score.serve."
            "max_future_s after the service clock or score.serve.max_past_days before the "
            "newest event seen.",
        ),
        Field(
            "amount",
            {"type": "number", "minimum": 0},
            "The amount, a finite number >= 0, in the client's currency.",
        ),
    ]
    seen = {f.name for f in fields}
    categories = getattr(scorer, "categories", {})
    for name in [*scorer.required, *scorer.ids]:
        if name in seen:
            continue
        seen.add(name)
        if name in scorer.ids:
            text = (
                f"Entity key or counted value of the model's features ({name}): an integer, a "
                "string or null (unknown). A card number (13-19 digits, Luhn-valid) is replaced "
                "by its token before anything holds it."
            )
            schema: dict[str, Any] = {"type": ["integer", "string", "null"]}
        elif name in categories:
            text = f"Categorical model input ({name}): a string or a number; null when unknown."
            schema = {"type": ["string", "number", "null"]}
        else:
            text = f"Numeric model input ({name}); null when unknown."
            schema = {"type": ["number", "null"]}
        fields.append(Field(name, schema, text, required=name in scorer.required))
    return Body(
        "event",
        "ScoreRequest",
        "One transaction. The fields are the model's: its entity keys and raw inputs; other "
        "fields are ignored.",
        tuple(fields),
    )


def label_request(scorer: Any) -> Body:
    """The body of ``POST /label`` for ``scorer``."""
    return Body(
        LABEL_REQUEST.what,
        LABEL_REQUEST.component,
        LABEL_REQUEST.description,
        (
            Field("tx_id", _tx_id(scorer), LABEL_REQUEST.fields[0].description),
            *LABEL_REQUEST.fields[1:],
        ),
    )


#: The body of ``POST /label`` (``tx_id`` of either type; :func:`label_request` narrows it to
#: the scorer's).
LABEL_REQUEST = Body(
    "label",
    "LabelRequest",
    "The label of an event scored earlier by this service (a chargeback, a confirmed fraud).",
    (
        Field("tx_id", _TX_ID, "The id of an event this service scored."),
        Field("is_fraud", {"type": "integer", "enum": [0, 1]}, "1: fraud, 0: genuine."),
        Field(
            "label_ts",
            {"type": ["string", "null"], "examples": ["2025-03-09T08:00:00Z"]},
            "When the label became known, ISO 8601 (naive: UTC); from then on it counts in "
            "later events' risk features. Default: the newest event time seen.",
            required=False,
        ),
    ),
)

_MODEL = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "version": {"type": "integer"}},
    "required": ["name", "version"],
}

#: Response bodies, by component name.
RESPONSES: dict[str, dict[str, Any]] = {
    "Model": _MODEL,
    "Reason": {
        "type": "object",
        "description": "A reason code: a feature that pushed the score up.",
        "properties": {
            "code": {"type": "string", "examples": ["CARD_ID_COUNT_1H"]},
            "description": {"type": "string"},
            "contribution": {"type": "number", "description": "Its share of the logit."},
        },
        "required": ["code", "description", "contribution"],
    },
    "ScoreResponse": {
        "type": "object",
        "properties": {
            "tx_id": {"type": ["integer", "string"], "description": "As sent (tokenized)."},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "decision": {
                "type": "string",
                "enum": ["approve", "decline"],
                "description": "decline when score >= threshold.",
            },
            "threshold": {"type": "number", "description": "score.threshold."},
            "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
            "model": {"$ref": "#/components/schemas/Model"},
            "latency_ms": {"type": "number", "minimum": 0},
        },
        "required": ["tx_id", "score", "decision", "threshold", "reasons", "model", "latency_ms"],
    },
    "LabelResponse": {
        "type": "object",
        "properties": {
            "tx_id": {"type": ["integer", "string"]},
            "updated": {
                "type": "integer",
                "minimum": 0,
                "description": "Entity histories the label changed.",
            },
        },
        "required": ["tx_id", "updated"],
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "model": {"$ref": "#/components/schemas/Model"},
            "threshold": {"type": "number"},
            "events": {"type": "integer", "minimum": 0, "description": "Events scored."},
            "rejected": {"type": "integer", "minimum": 0, "description": "Events rejected."},
            "labels": {"type": "integer", "minimum": 0, "description": "Labels recorded."},
            "entities": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "Entities held, per key.",
            },
            "uptime_s": {"type": "number", "minimum": 0},
        },
        "required": [
            "status",
            "model",
            "threshold",
            "events",
            "rejected",
            "labels",
            "entities",
            "uptime_s",
        ],
    },
    "Error": {
        "type": "object",
        "properties": {
            "error": {"type": "string", "description": "One line: what is wrong (and where)."},
            "field": {
                "type": "string",
                "description": "The request field at fault (422, when one is).",
            },
        },
        "required": ["error"],
    },
}

_ERRORS = {
    "400": "The body is not JSON.",
    "401": "Missing or wrong bearer token (header 'Authorization: Bearer <token>').",
    "404": "Unknown tx_id: not scored here, or too old to matter.",
    "408": "The body was not received within score.serve.body_timeout_s.",
    "413": "The body is larger than score.serve.max_body_bytes.",
    "422": "A field is missing or has a wrong type or value; 'field' names it.",
}


def _error_responses(codes: list[str]) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    return {
        code: {"description": _ERRORS[code], "content": {"application/json": {"schema": ref}}}
        for code in codes
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _post(
    body: Body, ok: str, summary: str, description: str, guarded: bool, codes: list[str]
) -> dict[str, Any]:
    codes = sorted({*codes, *(["401"] if guarded else [])})
    operation: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "operationId": body.what,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body.component}"}}
            },
        },
        "responses": {"200": _json(ok, "Done.")} | _error_responses(codes),
    }
    if guarded:
        operation["security"] = [{"bearer": []}]
    return operation


def openapi_document(
    score_body: Body,
    label_body: Body = LABEL_REQUEST,
    *,
    guarded: Mapping[str, Any],
    model: Mapping[str, Any],
    max_body_bytes: int,
    body_timeout_s: float,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a running service.

    Parameters
    ----------
    score_body : Body
        ``POST /score``'s request (:func:`score_request` of the service's scorer).
    label_body : Body
        ``POST /label``'s request (:func:`label_request` of the service's scorer).
    guarded : mapping
        Path -> token, for the paths that require a bearer token.
    model : mapping
        ``name`` and ``version`` of the served model (shown in the description).
    max_body_bytes, body_timeout_s
        The body limits (shown in the description).

    Returns
    -------
    dict
        The document (JSON-ready).
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("fraud_dask")
    except PackageNotFoundError:
        release = "unknown"
    auth = (
        "POST /score and POST /label require the header 'Authorization: Bearer <token>' "
        "(the token is read from $FRAUD_DASK_SERVE_TOKEN, /label's own from "
        "$FRAUD_DASK_LABEL_TOKEN)."
        if guarded
        else "This instance requires no token (it listens on loopback only)."
    )
    components: dict[str, Any] = {
        "schemas": {
            score_body.component: score_body.schema(),
            label_body.component: label_body.schema(),
            **RESPONSES,
        }
    }
    if guarded:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fraud_dask scoring service",
            "version": release,
            "description": (
                f"Scores one transaction at a time with model {model['name']} version "
                f"{model['version']}, with the features of the batch pipeline, and takes labels "
                f"back. Bodies are JSON objects of at most {max_body_bytes} bytes, received "
                f"within {body_timeout_s:g} s. {auth} Every error is a JSON object "
                "{'error': message} (and 'field' for a request field at fault)."
            ),
        },
        "paths": {
            "/score": {
                "post": _post(
                    score_body,
                    "ScoreResponse",
                    "Score one transaction",
                    "The event's features from the per-entity state, the model's score, the "
                    "decision at the threshold and the top reason codes; the event then joins "
                    "the state.",
                    "/score" in guarded,
                    ["400", "408", "413", "422"],
                )
            },
            "/label": {
                "post": _post(
                    label_body,
                    "LabelResponse",
                    "Record the label of a scored event",
                    "From label_ts on, the label counts in later events' risk and "
                    "target-encoding features, as in the batch features.",
                    "/label" in guarded,
                    ["400", "404", "408", "413", "422"],
                )
            },
            "/health": {
                "get": {
                    "summary": "Counts and the served model",
                    "operationId": "health",
                    "responses": {"200": _json("Health", "The service is up.")},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": components,
    }
