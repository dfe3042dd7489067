"""The annotation page: server-rendered Jinja2 templates, plain forms, one small script for
keyboard shortcuts (static/keys.js). No build step; works without JavaScript too.

Pages: ``/login``, ``/`` (queue and "claim next"), ``/tasks/<id>`` (label or review a held
task), ``/stats`` (agreement and judge calibration), ``/prompts`` (prompt versions and their
side-by-side previews). Sign-in uses the same session cookie as the API.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from . import auth, calibration
from .api.auth import login as open_login
from .api.deps import SESSION_COOKIE
from .auth import Principal
from .errors import AnnotationError, InvalidLabel, LeaseLost
from .kinds import KINDS, RATING_LABELS
from .service import AnnotationService

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)
_LABEL_FIELDS = ("rating", "answer", "choice", "failure_source", "failure_kind", "reason")


def _service(request: Request) -> AnnotationService:
    return request.app.state.service


async def _who(request: Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    return await _service(request).principal(session_token=token) if token else None


def _page(request: Request, name: str, who: Principal | None, status: int = 200,
          **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, {"who": who, **context}, status_code=status)


def _to(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _page(request, "login.html", None)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    form = await request.form()
    response = _to("/")
    try:
        await open_login(_service(request), response, str(form.get("username", "")),
                         str(form.get("password", "")))
    except AnnotationError:
        return _page(request, "login.html", None, 401, error="Wrong username or password.",
                     username=form.get("username", ""))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await asyncio.to_thread(auth.close_session, _service(request).engine, token)
        _service(request).forget_session(token)
    response = _to("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
async def home(request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    stats = await _service(request).queue_stats()
    return _page(request, "home.html", who, stats=stats, kinds=KINDS,
                 flash=request.query_params.get("flash", ""))


@router.post("/claim")
async def claim(request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    form = await request.form()
    review = form.get("review") == "1"
    if review and who.role == "annotator":
        return _to("/?flash=forbidden")
    kind = str(form.get("kind") or "") or None
    view = await _service(request).claim(who, None if review else kind, review=review)
    if view is None:
        return _to("/?flash=empty")
    return _to(f"/tasks/{view['task']['task_id']}")


@router.get("/tasks/{task_id}")
async def task_page(task_id: str, request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    try:
        view = await _service(request).held_task(who, task_id)
    except LeaseLost:
        return _to("/?flash=lost")
    return _page(request, "task.html", who, view=view, rating_labels=RATING_LABELS)


@router.post("/tasks/{task_id}")
async def task_submit(task_id: str, request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    form = await request.form()
    raw: dict[str, Any] = {k: str(form[k]) for k in _LABEL_FIELDS if form.get(k)}
    raw["unusable"] = form.get("unusable") == "1"
    review = form.get("review") == "1"
    service = _service(request)
    try:
        result = await service.submit(who, task_id, raw, review=review)
    except LeaseLost:
        return _to("/?flash=lost")
    except InvalidLabel as exc:
        view = await service.held_task(who, task_id)
        return _page(request, "task.html", who, 422, view=view, rating_labels=RATING_LABELS,
                     error=exc.message)
    return _to(f"/?flash=saved-{result['task_status']}")


@router.post("/tasks/{task_id}/release")
async def task_release(task_id: str, request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    form = await request.form()
    await _service(request).give_back(who, task_id, review=form.get("review") == "1")
    return _to("/?flash=released")


@router.get("/stats")
async def stats_page(request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    service = _service(request)
    return _page(request, "stats.html", who, agreement=await service.agreement(),
                 calibration=await calibration.read_all(service.redis),
                 threshold=service.config.calibration_threshold)


@router.get("/prompts")
async def prompts_page(request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    registry = request.app.state.prompt_lab.registry
    return _page(request, "prompts.html", who,
                 versions=await asyncio.to_thread(registry.versions))


@router.get("/prompts/{role}/{kind}/{version}")
async def prompt_page(role: str, kind: str, version: str, request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    registry = request.app.state.prompt_lab.registry
    report = await asyncio.to_thread(registry.report, role, kind, version)
    prompt = await asyncio.to_thread(registry.get, role, kind, version)
    return _page(request, "prompt.html", who, report=report, prompt=prompt)


@router.post("/prompts/{role}/{kind}/{version}/approve")
async def prompt_approve(role: str, kind: str, version: str, request: Request) -> Response:
    who = await _who(request)
    if who is None:
        return _to("/login")
    if who.role == "annotator":
        return _to("/?flash=forbidden")
    await request.app.state.prompt_lab.approve(role, kind, version, who.username)
    return _to(f"/prompts/{role}/{kind}/{version}")
