"""The one exception tree of tahub, shared by the hub and the connector.

Every error a user can cause is a :class:`TahubError` with a stable ``code``, an HTTP
``status`` and structured fields. The hub maps the whole tree to RFC 9457
``application/problem+json`` in one place (``hub.api.problems``); the connector renders
the same fields on the terminal. Anything that is not a ``TahubError`` is a bug: it is
logged with a request id and answered with a generic 500 that never echoes its text.

::

    TahubError
    ├── ConfigError                  settings, contract or mapping files that do not load
    │   ├── ContractError            a contract file breaks the contract schema
    │   ├── MappingError             a partner mapping file is wrong for its contract
    │   └── PolicyError              a sharing policy file is invalid (hub.governance.policies)
    ├── NotFound                     unknown or someone else's object (404: existence hidden)
    │   └── UnknownDataset           dataset or contract version the hub does not know
    ├── AuthError                    missing, malformed or expired credentials (401)
    │   └── Forbidden                authenticated but not allowed (403), names the ``rule``
    │       └── BudgetExceeded       the query costs more than a budget or cap has left
    ├── InvalidInput                 a request that cannot be processed (422)
    │   ├── SourceError              an export that cannot be read (delimiter, encoding)
    │   ├── ExtractInvalid           rows or schema break the contract (lists every error)
    │   ├── EmptyExtract             no rows at all
    │   ├── ExtractOverLimit         more rows or decoded bytes than allowed, names the ``rule``
    │   └── TooLarge                 over the configured size limit (413)
    ├── Conflict                     state does not allow it (409), e.g. a wrong offset
    ├── TooManyRequests              over a rate limit (429), names the ``rule``, ``retry_after``
    ├── Unavailable                  a dependency is down; retry later (503)
    ├── OutOfCapacity                the work does not fit the configured limits (507; the hub's,
    │                                or the connector's memory limit),
    │                                names the ``setting`` to raise: retrying will not help
    └── HubRequestError              connector side: the hub answered with a problem (its own
        │                            status, code, rule, field and detail kept)
        └── HubUnavailable           ... a 5xx, after the retries: also an Unavailable
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "BudgetExceeded",
    "ConfigError",
    "Conflict",
    "ContractError",
    "EmptyExtract",
    "ExtractInvalid",
    "ExtractOverLimit",
    "Forbidden",
    "HubRequestError",
    "HubUnavailable",
    "InvalidInput",
    "MappingError",
    "NotFound",
    "OutOfCapacity",
    "RowError",
    "SourceError",
    "TahubError",
    "TooLarge",
    "TooManyRequests",
    "Unavailable",
    "UnknownDataset",
    "error_classes",
    "invalid_body",
]

#: How many individual errors a report lists before saying "... and N more".
MAX_LISTED_ERRORS = 20


@dataclass(frozen=True, slots=True)
class RowError:
    """One reason one row (or one file location) is refused.

    ``row`` is the 1-based data row (header excluded) or ``None`` for whole-file errors;
    ``line`` is a line number in a YAML file. ``value`` is only ever set for fields that are
    not identifiers, so that a report never carries a raw identifier.
    """

    field: str | None
    reason: str
    row: int | None = None
    line: int | None = None
    value: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(self.field)
        prefix = ", ".join(where)
        shown = f" (got {self.value!r})" if self.value is not None else ""
        return f"{prefix}: {self.reason}{shown}" if prefix else f"{self.reason}{shown}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "reason": self.reason}
        for key in ("row", "line", "value"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


class TahubError(Exception):
    """Base of every error a user can cause. ``code`` is stable and documented."""

    code: ClassVar[str] = "tahub_error"
    status: int = 400  # per class; an instance may carry the status it was answered with
    title: ClassVar[str] = "Request refused"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        errors: Sequence[RowError] = (),
        total_errors: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.errors = list(errors)
        self.total_errors = total_errors if total_errors is not None else len(self.errors)
        self.extra = extra

    def __str__(self) -> str:
        lines = [self.detail]
        lines += [f"  - {e}" for e in self.errors[:MAX_LISTED_ERRORS]]
        hidden = self.total_errors - min(len(self.errors), MAX_LISTED_ERRORS)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        return "\n".join(lines)

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 body, without ``instance``/request id (the HTTP layer adds them)."""
        body: dict[str, Any] = {
            "type": f"urn:tahub:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors[:MAX_LISTED_ERRORS]]
            body["total_errors"] = self.total_errors
        body.update(self.extra)
        return body


class ConfigError(TahubError):
    code = "config_error"
    status = 500
    title = "Configuration error"


class ContractError(ConfigError):
    code = "contract_invalid"
    title = "Data contract is invalid"


class MappingError(ConfigError):
    code = "mapping_invalid"
    status = 422
    title = "Mapping file is invalid"


class NotFound(TahubError):
    code = "not_found"
    status = 404
    title = "Not found"


class UnknownDataset(NotFound):
    code = "unknown_dataset"
    title = "Unknown dataset or contract version"


class AuthError(TahubError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class Forbidden(AuthError):
    code = "forbidden"
    status = 403
    title = "Not allowed"


class BudgetExceeded(Forbidden):
    """Refused before anything is spent; ``rule`` names the budget (``budget:member``,
    ``budget:global``, ``budget:month``, ``budget:per_query``), with ``requested`` and
    ``remaining`` as exact amounts."""

    code = "budget_exceeded"
    title = "Privacy budget exceeded"


class InvalidInput(TahubError):
    code = "invalid_input"
    status = 422
    title = "Invalid input"


class SourceError(InvalidInput):
    code = "source_unreadable"
    title = "Source cannot be read"


class ExtractInvalid(InvalidInput):
    code = "extract_invalid"
    title = "Extract breaks its data contract"


class EmptyExtract(InvalidInput):
    code = "extract_empty"
    title = "Extract is empty"


class ExtractOverLimit(InvalidInput):
    code = "extract_over_limit"
    title = "Extract over a limit"


class TooLarge(InvalidInput):
    code = "too_large"
    status = 413
    title = "Too large"


class Conflict(TahubError):
    code = "conflict"
    status = 409
    title = "Conflict"


class TooManyRequests(TahubError):
    """Over a rate limit (hub.api.ratelimit); nothing was done. ``rule`` names the limit
    (``rate_limit:query``, ``rate_limit:upload``, ``rate_limit:other``,
    ``rate_limit:token``), ``retry_after`` the whole seconds until a request can pass
    (also the ``Retry-After`` header)."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"


class Unavailable(TahubError):
    code = "unavailable"
    status = 503
    title = "Service unavailable"


class OutOfCapacity(TahubError):
    """The work does not fit in what the hub (or the connector) may use (memory, disk): retrying
    the same will fail the same way, so the problem names the ``setting`` to raise (and its
    ``limit``), never "retry later"."""

    code = "out_of_capacity"
    status = 507
    title = "Insufficient capacity"


class HubRequestError(TahubError):
    """The hub answered a connector request with a problem document (or, from something that
    is not the hub, such as a proxy, with an error page: then status and reason only).

    What the hub said is kept as it said it: ``status`` (and ``http_status``) its HTTP status
    (403, 404...: an instance's, never the class's 400), ``problem_code`` and
    ``problem_type`` its ``code`` and ``type``, ``rule``, ``field``, ``hub_detail`` its own
    ``detail``, ``retry_after`` (429, 503), ``errors`` each error it listed, and
    ``problem_body`` the whole document. The message (``str()``) is the connector's sentence
    around them: what was refused, the status and code, the hub's detail and its facts.
    :meth:`problem` is this error's own problem document (code ``hub_request_failed``) with
    the hub's status and every field the hub added (``rule``, ``requested``...).
    """

    code = "hub_request_failed"
    title = "The hub refused the request"
    #: The members of an RFC 9457 document that are not facts of the refusal itself.
    _FRAME = frozenset({"type", "title", "status", "detail", "code", "instance", "request_id",
                        "field", "errors", "total_errors"})

    def __init__(self, detail: str, *, http_status: int, problem: dict[str, Any]) -> None:
        errors = [
            RowError(
                field=e.get("field"),
                reason=str(e.get("reason", "")),
                row=e.get("row"),
                line=e.get("line"),
                value=e.get("value"),
            )
            for e in problem.get("errors", [])
            if isinstance(e, dict)
        ]
        super().__init__(
            detail,
            field=problem.get("field"),
            errors=errors,
            total_errors=problem.get("total_errors"),
            **{k: v for k, v in problem.items() if k not in self._FRAME},
        )
        self.http_status = http_status
        self.status = http_status  # the hub's own status (403, 404...), not the class's 400
        self.problem_body = problem
        self.problem_code = str(problem.get("code") or "")
        self.problem_type = str(problem.get("type") or "")
        self.hub_detail = str(problem.get("detail") or problem.get("title") or "")
        rule = problem.get("rule")
        self.rule = str(rule) if rule not in (None, "") else None
        retry = problem.get("retry_after")
        self.retry_after = None if isinstance(retry, bool) or not isinstance(retry, int) \
            else retry


class HubUnavailable(HubRequestError, Unavailable):
    """The hub answered 5xx (after the retries the request allows): its own status, code and
    detail kept as for any :class:`HubRequestError`; also an :class:`Unavailable`, so that
    code which waits and tries again later catches it as it catches a hub out of reach."""

    code = "hub_unavailable"
    status = 503
    title = "The hub is unavailable"


def error_classes() -> list[type[TahubError]]:
    """Every class of the tree, for the test that holds each one mapped and documented."""
    seen: list[type[TahubError]] = []
    stack: list[type[TahubError]] = [TahubError]
    while stack:
        cls = stack.pop()
        if cls not in seen:  # a class with two parents in the tree (HubUnavailable) once
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


def invalid_body(what: str, exc: Any) -> InvalidInput:
    """A request body that its pydantic model refused (``exc``: its ``ValidationError``) as
    :class:`InvalidInput`: ``what`` and the first reasons, every error by its field."""
    errors = [RowError(".".join(str(p) for p in e["loc"]) or None,
                       e["msg"].removeprefix("Value error, "))
              for e in exc.errors(include_url=False)]
    shown = "; ".join(str(e) for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidInput(f"{what}: {shown}{more}", field=errors[0].field if errors else None,
                        errors=errors)
