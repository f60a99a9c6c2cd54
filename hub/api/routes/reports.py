"""Crowd reports: the public page and API, with no authentication (docs/osint.md).

``GET /report`` is the report form (``hub/web/static/report.html``: English, French and
Spanish; its worker computes the proof of work); ``GET /v1/public/reports/challenge``
issues a proof-of-work challenge and ``POST /v1/public/reports`` takes a report. Thin: the
POST counts against its client address's limit (``TAHUB_REPORTS_PER_HOUR``, shared by every
hub process through the metadata store under a keyed hash of the address that rotates
daily, never the address: hub.api.ratelimit) and calls
:meth:`hub.osint.reports.Reports.submit`; its body is bounded before parsing by
:class:`hub.api.bodylimit.BodyLimit` (:func:`body_limit`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, Response

from hub.api.deps import CrowdReports
from hub.api.openapi import problems
from hub.api.ratelimit import RateLimits
from hub.api.routes.ui import WEB, page
from hub.api.schemas.reports import ChallengeOut, ReceiptOut, ReportIn
from hub.osint.reports import MAX_WHERE, PublicReport

__all__ = ["PATH", "body_limit", "router"]

PATH = "/v1/public/reports"
# The report page runs the hub's own scripts only (no eval, no inline script or style) and
# its proof-of-work worker; it contacts no other origin.
_CSP = ("default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter(tags=["crowd reports"])


def body_limit(max_chars: int) -> tuple[int, str]:
    """The largest body a report of ``max_chars`` characters needs (each character JSON-
    escaped as up to 6 bytes, plus the place, the challenge and the field names)."""
    return max_chars * 6 + MAX_WHERE * 6 + 4096, "TAHUB_REPORTS_MAX_CHARS"


@router.get(f"{PATH}/challenge", summary="A proof-of-work challenge for a crowd report "
            "(no authentication)", response_model=ChallengeOut, responses=problems(503))
def challenge(reports: CrowdReports) -> JSONResponse:
    issued = reports.challenge()
    body = ChallengeOut(challenge=issued.text, bits=issued.bits, expires_at=issued.expires_at,
                        max_chars=reports.max_chars)
    return JSONResponse(body.model_dump(mode="json"), headers=_NO_STORE)


@router.post(PATH, summary="Send a crowd report (no authentication)",
             status_code=status.HTTP_202_ACCEPTED, response_model=ReceiptOut,
             responses=problems(409, 413, 422, 429, 503))
def submit(body: ReportIn, request: Request, reports: CrowdReports) -> ReceiptOut:
    limits: RateLimits = request.app.state.rate_limits
    limits.report(request.client.host if request.client else "unknown")
    receipt = reports.submit(PublicReport(body.text, body.language, body.where, body.when,
                                          body.website),
                             challenge=body.challenge, nonce=body.nonce)
    return ReceiptOut(receipt=receipt.id)


@router.get("/report", include_in_schema=False)
def report_page() -> Response:
    """The public report form: static, no sign-in, no vendored library."""
    return page(WEB / "static" / "report.html", [], "The report page", "", _CSP)
