"""The team console: server-rendered pages under /console (Jinja2 + vendored htmx).

Thin: each route checks who is asking, calls one flow, renders one template."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from returnbridge import __version__
from returnbridge.domain.exceptions import CATALOGUE, Owner
from returnbridge.domain.reconciliation import INFO, ORPHANS
from returnbridge.flows.console import mapping as console_mapping
from returnbridge.flows.console import views as console_views
from returnbridge.flows.console.accounts import (
    ROLE_LABELS,
    Role,
    SignedIn,
    close_session,
    open_session,
)
from returnbridge.flows.console.accounts import verify_password as check_credentials
from returnbridge.flows.console.search import (
    STATUSES,
    BadSearch,
    ReturnFilters,
    search_returns,
)
from returnbridge.flows.decide import sku_fix
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions import actions
from returnbridge.flows.reconcile import continuous, report_cache, scoping
from returnbridge.flows.reconcile import service as recon_service
from returnbridge.web.console import runbooks
from returnbridge.web.console.health_view import health_data
from returnbridge.web.console.security import (
    PREFIX,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Forbidden,
    NotSignedIn,
    clear_session,
    client_of,
    form_with_csrf,
    login_csrf,
    login_url,
    runtime,
    safe_next,
    set_login_csrf,
    set_session,
    signed_in,
    throttle,
)
from returnbridge.web.reconciliation_routes import PACK_FILE, PACK_TYPES

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(version=__version__, role_labels=ROLE_LABELS, prefix=PREFIX)
router = APIRouter(prefix=PREFIX)
Who = Annotated[SignedIn, Depends(signed_in)]
PAGE_SIZE = 50


def page(request: Request, name: str, who: SignedIn | None, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    context.setdefault("msg", request.query_params.get("msg", ""))
    context.setdefault("error", request.query_params.get("error", ""))
    return templates.TemplateResponse(request, name, {"who": who, **context},
                                      status_code=status_code)


async def in_uow(rt: Runtime, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(uow, *args, **kwargs)`` in one unit of work, in a worker thread."""
    def run() -> Any:
        with rt.unit_of_work() as uow:
            return fn(uow, *args, **kwargs)
    return await run_in_threadpool(run)


def redirect(path: str, **query: str) -> RedirectResponse:
    q = {k: v for k, v in query.items() if v}
    joiner = "&" if "?" in path else "?"
    return RedirectResponse(path + (f"{joiner}{urlencode(q)}" if q else ""), status_code=303)


# --- sign-in -------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "") -> Response:
    token = login_csrf(request)
    response = page(request, "login.html", None, csrf=token, next=safe_next(next),
                    username="")
    set_login_csrf(request, response, token)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip().lower()[:80]
    password = str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or ""))
    cookie_token = request.cookies.get("rb_login_csrf", "")
    token = login_csrf(request)

    def refuse(message: str, code: int) -> Response:
        response = page(request, "login.html", None, status_code=code, csrf=token,
                        next=next_path, username=username, error=message)
        set_login_csrf(request, response, token)
        return response

    if not cookie_token or str(form.get("csrf_token") or "") != cookie_token:
        return refuse("This sign-in form has expired. Please try again.", 403)
    limiter = throttle(request)
    host = request.client.host if request.client else "?"
    keys = (f"user:{username}", f"ip:{host}")
    wait = await run_in_threadpool(limiter.blocked, *keys)
    if wait:
        return refuse(f"Too many failed sign-ins. Try again in {int(wait // 60) + 1} "
                      "minute(s), or ask an admin to check your account.", 429)
    rt = runtime(request)

    def attempt() -> str | None:
        with rt.unit_of_work() as uow:
            user = check_credentials(uow, username, password)
            if user is None:
                return None
            return open_session(uow, user, client_of(request))

    session_token = await run_in_threadpool(attempt)
    if session_token is None:
        await run_in_threadpool(limiter.failed, *keys)
        return refuse("Wrong user name or password (or the account is disabled).", 401)
    await run_in_threadpool(limiter.succeeded, *keys)
    response = RedirectResponse(next_path, status_code=303)
    set_session(request, response, session_token)
    return response


@router.post("/logout")
async def logout(request: Request, who: Who) -> Response:
    await form_with_csrf(request, who)
    rt = runtime(request)
    cookie = request.cookies.get(SESSION_COOKIE, "")

    await in_uow(rt, close_session, cookie)
    response = redirect(f"{PREFIX}/login", msg="You are signed out.")
    clear_session(response)
    return response


# --- overview ------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(who: Who) -> Response:
    return redirect(f"{PREFIX}/overview")


@router.get("/overview", response_class=HTMLResponse)
async def overview(request: Request, who: Who) -> Response:
    data = await in_uow(runtime(request), console_views.overview)
    return page(request, "overview.html", who, nav="overview", o=data)


# --- returns -------------------------------------------------------------------------------


@router.get("/returns", response_class=HTMLResponse)
async def returns_list(request: Request, who: Who, q: str = "", status: str = "",
                       source: str = "", ref: str = "", order: str = "", email: str = "",
                       sku: str = "", date_from: str = "", date_to: str = "",
                       min_age_days: str = "", offset: int = 0) -> Response:
    filters = ReturnFilters(q=q, status=status, source=source, ref=ref, order=order,
                            email=email, sku=sku, date_from=date_from, date_to=date_to,
                            min_age_days=min_age_days)
    error = ""
    try:
        result = await in_uow(runtime(request), search_returns, filters, limit=PAGE_SIZE,
                          offset=max(offset, 0), sources=runtime(request).platforms.names())
    except BadSearch as exc:
        error, result = str(exc), None
    query = filters.as_query()
    return page(request, "returns.html", who, nav="returns", f=filters, result=result,
                error=error, statuses=STATUSES, sources=runtime(request).platforms.names(),
                query=query,
                page_size=PAGE_SIZE,
                prev_url=f"?{urlencode({**query, 'offset': max(offset - PAGE_SIZE, 0)})}",
                next_url=f"?{urlencode({**query, 'offset': offset + PAGE_SIZE})}")


@router.get("/returns/{associated_ref}", response_class=HTMLResponse)
async def return_detail(request: Request, associated_ref: str, who: Who) -> Response:
    view = await run_in_threadpool(console_views.return_page, runtime(request), associated_ref)
    if view is None:
        return page(request, "not_found.html", who, status_code=404,
                    what=f"No return with AssociatedRef {associated_ref}.")
    return page(request, "return.html", who, nav="returns", r=view)


@router.get("/returns/{associated_ref}/dry-run", response_class=HTMLResponse)
async def return_dry_run(request: Request, associated_ref: str, who: Who) -> Response:
    result = await run_in_threadpool(console_views.dry_run, runtime(request), associated_ref)
    if result is None:
        return page(request, "not_found.html", who, status_code=404,
                    what=f"No return with AssociatedRef {associated_ref}.")
    name = ("dry_run_fragment.html" if request.headers.get("hx-request") == "true"
            else "dry_run.html")
    return page(request, name, who, nav="returns", ref=associated_ref, d=result)


# --- exceptions ----------------------------------------------------------------------------

OWNERS = [o.value for o in Owner]


def default_owner(who: SignedIn) -> str:
    role = who.identity.role
    return role.value if role is not None and role.value in OWNERS else "all"


@router.get("/exceptions", response_class=HTMLResponse)
async def exceptions_queue(request: Request, who: Who, owner: str = "", type: str = "",
                           status: str = "open") -> Response:
    owner = owner if owner in (*OWNERS, "all") else default_owner(who)
    type = type if type in CATALOGUE else ""
    status = status if status in ("open", "resolved", "ignored") else "open"
    rt = runtime(request)
    items = await in_uow(rt, console_views.exception_queue, owner, status=status, type=type)
    counts = await in_uow(rt, console_views.queue_counts)
    for item in items:
        item["may_act"] = who.identity.may_act_on(item["owner"])
    return page(request, "exceptions.html", who, nav="exceptions", items=items, owner=owner,
                owners=OWNERS, counts=counts, type=type, status=status,
                types=sorted(CATALOGUE), may_act_here=any(i["may_act"] for i in items))


@router.get("/exceptions/{exception_id}", response_class=HTMLResponse)
async def exception_detail(request: Request, exception_id: int, who: Who) -> Response:
    try:
        view = await in_uow(runtime(request), actions.show_exception, exception_id)
    except actions.ExceptionNotFound as exc:
        return page(request, "not_found.html", who, status_code=404, what=str(exc))
    live: list[dict[str, Any]] = []
    if view["type"] == "sku_mismatch" and view["status"] == "open" and view["details"].get(
            "sku"):
        live = await run_in_threadpool(sku_fix.candidates, runtime(request),
                                       str(view["details"]["sku"]))
    return page(request, "exception.html", who, nav="exceptions", e=view,
                may_act=who.identity.may_act_on(view["owner"]),
                runbook=runbooks.render(view["type"]), live_candidates=live)


@router.post("/exceptions/{exception_id}/apply-candidate")
async def exception_apply_candidate(request: Request, exception_id: int,
                                    who: Who) -> Response:
    form = await form_with_csrf(request, who)
    rt = runtime(request)
    back = f"{PREFIX}/exceptions/{exception_id}"

    def run() -> actions.ActionResult:
        with rt.unit_of_work() as uow:
            owner = actions.show_exception(uow, exception_id)["owner"]
        if not who.identity.may_act_on(owner):
            raise Forbidden(f"Exception {exception_id} belongs to the {owner} team.")
        return sku_fix.apply_candidate(rt, exception_id, str(form.get("stock_id") or ""),
                                       who.identity.actor)

    try:
        result = await run_in_threadpool(run)
    except actions.ExceptionNotFound as exc:
        return page(request, "not_found.html", who, status_code=404, what=str(exc))
    except actions.ActionRefused as exc:
        return redirect(back, error=str(exc))
    return redirect(back, msg=result.message)


ACTIONS: dict[str, Callable[..., actions.ActionResult]] = {
    "retry": actions.retry, "resolve": actions.resolve, "ignore": actions.ignore}


def _act(rt: Runtime, who: SignedIn, exception_id: int, action: str,
         why: str) -> actions.ActionResult:
    with rt.unit_of_work() as uow:
        row = actions.show_exception(uow, exception_id)
    if not who.identity.may_act_on(row["owner"]):
        raise Forbidden(f"Exception {exception_id} belongs to the {row['owner']} team; "
                        f"as {who.identity.role} you can see it but not act on it.")
    return ACTIONS[action](rt, exception_id, who.identity.actor, why)


@router.post("/exceptions/{exception_id}/{action}")
async def exception_action(request: Request, exception_id: int, action: str,
                           who: Who) -> Response:
    form = await form_with_csrf(request, who)
    if action not in ACTIONS:
        return page(request, "not_found.html", who, status_code=404,
                    what=f"There is no action {action!r}.")
    back = f"{PREFIX}/exceptions/{exception_id}"
    try:
        result = await run_in_threadpool(_act, runtime(request), who, exception_id, action,
                                         str(form.get("why") or ""))
    except actions.ExceptionNotFound as exc:
        return page(request, "not_found.html", who, status_code=404, what=str(exc))
    except (actions.ActionRefused, actions.MissingReason) as exc:
        return redirect(back, error=str(exc))
    return redirect(back, msg=result.message)


@router.post("/exceptions-bulk")
async def exceptions_bulk(request: Request, who: Who) -> Response:
    form = await form_with_csrf(request, who)
    action = str(form.get("action") or "")
    raw = form.get("ids") or []
    ids = [int(x) for x in (raw if isinstance(raw, list) else [raw]) if str(x).isdigit()]
    back = str(form.get("back") or f"{PREFIX}/exceptions")
    back = safe_next(back)
    if action not in ACTIONS:
        return redirect(back, error="Choose retry, resolve or ignore.")
    if not ids:
        return redirect(back, error="Tick at least one exception first.")
    rt = runtime(request)
    why = str(form.get("why") or "")

    def run_all() -> tuple[dict[str, int], list[str]]:
        tally: dict[str, int] = {}
        problems: list[str] = []
        for exception_id in ids[:500]:
            try:
                result = _act(rt, who, exception_id, action, why)
            except Forbidden as exc:
                problems.append(exc.message)
                continue
            except (actions.ActionRefused, actions.MissingReason,
                    actions.ExceptionNotFound) as exc:
                problems.append(f"#{exception_id}: {exc}")
                continue
            tally[result.outcome] = tally.get(result.outcome, 0) + 1
        return tally, problems

    tally, problems = await run_in_threadpool(run_all)
    done = ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in sorted(tally.items()))
    return redirect(back, msg=f"{action}: {done or 'nothing done'}",
                    error=" ".join(problems[:5]) + (f" (+{len(problems) - 5} more)"
                                                    if len(problems) > 5 else ""))


# --- mapping -------------------------------------------------------------------------------


def _mapping_data(rt: Runtime, days: int | None = None) -> dict[str, Any]:
    report, console_rules = console_views.mapping_page(rt, days)
    file_rules = [console_mapping.rule_dict(r) for r in rt.settings.mapping.rules()]
    return {"report": report, "console_rules": console_rules, "file_rules": file_rules,
            "defaults": rt.settings.mapping.defaults}


@router.get("/mapping", response_class=HTMLResponse)
async def mapping(request: Request, who: Who, reason: str = "", source: str = "",
                  disposition: str = "", condition: str = "", days: int = 0) -> Response:
    data = await run_in_threadpool(_mapping_data, runtime(request),
                                   min(days, 3650) if days > 0 else None)
    proposal = {"reason": reason, "source": source or "*", "disposition": disposition or "*",
                "condition": condition or "*", "khaos_reason_id": "", "processing": ""}
    return page(request, "mapping.html", who, nav="mapping", proposal=proposal, preview=None,
                **data)


RULE_FIELDS = ("source", "reason", "condition", "disposition", "khaos_reason_id",
               "processing")


@router.post("/mapping/preview", response_class=HTMLResponse)
async def mapping_preview(request: Request, who: Who) -> Response:
    form = await form_with_csrf(request, who)
    proposal = {k: str(form.get(k) or "") for k in RULE_FIELDS}
    proposal["note"] = str(form.get("note") or "")
    rt = runtime(request)
    data = await run_in_threadpool(_mapping_data, rt)
    try:
        rule = console_mapping.parse_rule(proposal)
    except console_mapping.RuleInvalid as exc:
        return page(request, "mapping.html", who, status_code=422, nav="mapping",
                    proposal=proposal, preview=None, error=f"The rule is not valid: {exc}",
                    **data)
    result = await run_in_threadpool(console_mapping.preview, rt, rule)
    return page(request, "mapping.html", who, nav="mapping", proposal=proposal,
                preview=result, **data)


@router.post("/mapping/save")
async def mapping_save(request: Request, who: Who) -> Response:
    form = await form_with_csrf(request, who)
    if not who.identity.is_admin:
        raise Forbidden("Only an admin can change the mapping; ask one to save this rule.")
    proposal = {k: str(form.get(k) or "") for k in RULE_FIELDS}
    try:
        rule = console_mapping.parse_rule(proposal)
    except console_mapping.RuleInvalid as exc:
        return redirect(f"{PREFIX}/mapping", error=f"The rule is not valid: {exc}")
    saved = await run_in_threadpool(console_mapping.save, runtime(request), rule,
                                    by=who.identity.actor, note=str(form.get("note") or ""))
    r = saved.reevaluation
    return redirect(f"{PREFIX}/mapping",
                    msg=f"Rule {saved.rule_id} saved. Re-evaluated {r.examined} return(s): "
                    f"{r.released} released, {r.still_held} still held"
                    + (f", {r.failed} failed (see the log)" if r.failed else "") + ".")


@router.post("/mapping/{rule_id}/remove")
async def mapping_remove(request: Request, rule_id: int, who: Who) -> Response:
    await form_with_csrf(request, who)
    if not who.identity.is_admin:
        raise Forbidden("Only an admin can change the mapping.")
    removed = await run_in_threadpool(console_mapping.remove, runtime(request), rule_id,
                                      by=who.identity.actor)
    return redirect(f"{PREFIX}/mapping", msg=f"Rule {rule_id} removed." if removed else "",
                    error="" if removed else f"No active rule {rule_id}.")


# --- health --------------------------------------------------------------------------------


@router.get("/health", response_class=HTMLResponse)
async def health(request: Request, who: Who) -> Response:
    if not who.identity.is_admin:
        raise Forbidden("The Health page is for admins (it shows the configuration checks).")

    data = await run_in_threadpool(health_data, runtime(request))
    return page(request, "health.html", who, nav="health", h=data)


# --- reconciliation --------------------------------------------------------------------------

FINANCE_ROLES = (Role.FINANCE, Role.ADMIN)


def _finance_only(who: SignedIn) -> None:
    if not (who.identity.is_admin or who.identity.role in FINANCE_ROLES):
        raise Forbidden("The Reconciliation page is for finance and admins.")


def _period_or_now(period: str) -> tuple[str, str]:
    """(period, error): the month asked for, or the current month and why it was refused."""
    if not period:
        return continuous.period_of(datetime.now(UTC)), ""
    try:
        scoping.scope_period(period)
    except ValueError as exc:
        return continuous.period_of(datetime.now(UTC)), f"Not a month: {exc}"
    return period, ""


def _pack_files(rt: Runtime, period: str) -> list[str]:
    out = Path(rt.settings.reconciliation.out_dir)
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.glob(f"reconciliation-{period}*")
                  if p.is_file() and PACK_FILE.match(p.name))


def _reconciliation_data(rt: Runtime, period: str) -> dict[str, Any]:
    result = report_cache.report(rt, period)
    s = result.summary
    cats = s["categories"]
    orphans = {o.value: cats.get(o.value, {"count": 0, "amount": "0.00"}) for o in ORPHANS}
    return {"summary": s, "differences": result.differences, "orphans": orphans,
            "meanings": {c.value: INFO[c].meaning for c in INFO},
            "files": _pack_files(rt, period)}


@router.get("/reconciliation", response_class=HTMLResponse)
async def reconciliation(request: Request, who: Who, period: str = "",
                         page_no: Annotated[int, Query(alias="page", ge=1, le=100000)] = 1
                         ) -> Response:
    _finance_only(who)
    period, error = _period_or_now(period.strip())
    data = await run_in_threadpool(_reconciliation_data, runtime(request), period)
    diffs = data.pop("differences")
    start = (page_no - 1) * PAGE_SIZE
    if error:
        data["error"] = error
    return page(request, "reconciliation.html", who, nav="reconciliation", period=period,
                rows=diffs[start:start + PAGE_SIZE], total=len(diffs), page_no=page_no,
                pages=max(1, -(-len(diffs) // PAGE_SIZE)), start=start,
                **data)


@router.post("/reconciliation/build")
async def reconciliation_build(request: Request, who: Who) -> Response:
    form = await form_with_csrf(request, who)
    _finance_only(who)
    period = str(form.get("period") or "").strip()
    try:
        scoping.scope_period(period)
    except ValueError as exc:
        return redirect(f"{PREFIX}/reconciliation", error=f"Not a month: {exc}")
    result = await run_in_threadpool(recon_service.month_end, runtime(request), period,
                                     refresh=False)
    return redirect(f"{PREFIX}/reconciliation?period={period}",
                    msg=f"Pack for {period} written: {len(result.files)} file(s), "
                    f"{len(result.differences)} difference(s).")


@router.get("/reconciliation/files/{name}")
async def reconciliation_file(request: Request, name: str, who: Who) -> Response:
    _finance_only(who)
    if not PACK_FILE.match(name):
        return page(request, "not_found.html", who, status_code=404,
                    what="No such reconciliation file.")
    path = Path(runtime(request).settings.reconciliation.out_dir) / name
    if not path.is_file():
        return page(request, "not_found.html", who, status_code=404,
                    what=f"{name} has not been written yet: use “Build the pack”.")
    return FileResponse(path, media_type=PACK_TYPES[name.rsplit(".", 1)[1]], filename=name)


# --- wiring --------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the console: routes, static files, the sign-in redirect and headers."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")),
              name="console-static")

    @app.exception_handler(NotSignedIn)
    async def _to_login(request: Request, exc: NotSignedIn) -> Response:
        if request.headers.get("hx-request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": login_url(exc.next_path)})
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        who = getattr(request.state, "who", None)
        return page(request, "forbidden.html", who, status_code=403, message=exc.message)

    app.add_middleware(ConsoleHeaders)


class ConsoleHeaders:
    """Security headers on every console response (plain ASGI: a client that hangs up
    mid-request is the request guard's business, never a traceback here)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)

