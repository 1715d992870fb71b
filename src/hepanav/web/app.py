"""The FastAPI application: ``create_app(settings)``.

Pages are server-rendered Jinja2 with a little plain JavaScript; the image viewer is
NiiVue served from ``/static/vendor`` (installed from the committed npm lock, never
loaded from the internet). Every route but ``/login`` and ``/health`` needs a login
session (checked once, in a middleware, so a new route cannot forget it); every
state-changing route checks the CSRF token (``require_csrf``) and the user's role.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hepanav import DISCLAIMER, __version__
from hepanav.core.errors import InputError
from hepanav.web import security
from hepanav.web.cases import get_case, list_cases, series_path
from hepanav.web.models import AuditEvent, Job, User, make_web_engine
from hepanav.web.settings import WebSettings
from hepanav.web.uploads import save_upload
from hepanav.web.workflows import margin_steps, parse_point

log = logging.getLogger("hepanav.web")
HERE = Path(__file__).parent
PUBLIC = ("/login", "/health")

# Who may do what (roles: radiologist, surgeon, coordinator, admin).
CAN_VIEW_CASES = ("radiologist", "surgeon", "admin")
CAN_RUN_IMAGING = ("radiologist", "admin")
CAN_RUN_FLUORO = ("surgeon", "admin")
CAN_EDIT_REGISTRY = ("coordinator", "admin")
CAN_CHECK_DOSE = ("radiologist", "surgeon", "admin")  # clinicians, not the study office
CAN_ADMIN = ("admin",)


def create_app(settings: WebSettings | None = None, *, start_jobs: bool = True) -> FastAPI:
    """Build the application.

    Parameters
    ----------
    settings : WebSettings, optional
        Defaults to the environment (``HEPANAV_WEB_*``).
    start_jobs : bool
        Start the Dask cluster and the job monitor (tests of pages alone may skip it).
    """
    settings = settings or WebSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for folder in (settings.cases_dir, settings.jobs_dir, settings.uploads_dir):
        folder.mkdir(parents=True, exist_ok=True)
    engine = make_web_engine(settings.db)
    audit_log = security.AuditWriter(engine)
    limiter = security.LoginLimiter(settings.login_attempts, settings.login_window_s)
    # Autoescape every template (the names end in .html.j2, which Starlette's default
    # extension-based autoescape would miss): all user text is escaped.
    templates = Jinja2Templates(
        env=Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    )
    templates.env.globals.update(disclaimer=DISCLAIMER, version=__version__)
    from hepanav.core.report import format_margin, format_percent

    templates.env.filters["pct"] = format_percent  # never "100 %" for 0.996
    templates.env.filters["margin"] = format_margin  # never "0.0" for -0.014

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        manager = None
        if start_jobs:
            from hepanav.core.jobs import JobCluster
            from hepanav.web.jobs import JobManager

            cluster = await asyncio.to_thread(JobCluster, settings.scheduler, settings.workers)
            manager = JobManager(engine, settings.jobs_dir, cluster)
            manager.start()
        app.state.jobs = manager
        yield
        if manager is not None:
            manager.stop()
            await asyncio.to_thread(manager.cluster.close)
        await asyncio.to_thread(audit_log.close)  # every queued audit event is written

    app = FastAPI(
        title="HepaNav",
        version=__version__,
        description=f"HepaNav web application. {DISCLAIMER}",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.audit = audit_log
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # ------------------------------------------------------------------ helpers
    def db_session():
        with Session(engine) as db:
            yield db

    def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {"user": getattr(request.state, "user", None), "csrf": _csrf(request), **context},
            status_code=code,
        )

    def _csrf(request: Request) -> str:
        row = getattr(request.state, "session_row", None)
        return row.csrf_token if row is not None else ""

    def user_of(request: Request) -> User:
        return request.state.user

    def require(*roles: str):
        def check(request: Request) -> User:
            user = request.state.user
            if user.role not in roles:
                raise HTTPException(403, f"your role ({user.role}) may not do this")
            return user

        return check

    async def require_csrf(request: Request) -> None:
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
        if not security.csrf_ok(request.state.session_row, sent):
            raise HTTPException(403, "the form has expired or was not sent by HepaNav; reload")

    def audit(request: Request, action: str, target: str = "", outcome: str = "ok") -> None:
        user = getattr(request.state, "user", None)
        audit_log.record(user.username if user else "-", action, target, outcome)

    app.state.require_csrf = require_csrf
    app.state.require = require

    # ------------------------------------------------------------ middleware
    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        path = request.url.path
        request.state.user = None
        request.state.session_row = None
        if path not in PUBLIC:
            token = request.cookies.get(security.COOKIE)

            def lookup():
                with Session(engine, expire_on_commit=False) as db:
                    return security.session_user(db, token, settings.session_minutes)

            # Database work off the event loop (in the thread pool), never blocking it.
            found = await run_in_threadpool(lookup)
            if found is None:
                wants_html = "text/html" in request.headers.get("accept", "")
                if wants_html and request.method == "GET" and not path.startswith("/api/"):
                    return RedirectResponse("/login", status_code=303)
                return JSONResponse({"detail": "log in first"}, status_code=401)
            request.state.user, request.state.session_row = found
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline' 'unsafe-eval'; connect-src 'self' blob: data:; "
            "worker-src 'self' blob:; frame-ancestors 'self'",
        )
        return response

    # ------------------------------------------------------- errors to pages
    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        from hepanav.web.messages import for_the_page

        # One line, server paths as the page names them (``web.messages``).
        message = for_the_page(str(exc), settings.data_dir)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=400)
        return page(request, "error.html.j2", code=400, message=message)

    @app.exception_handler(RequestValidationError)
    async def form_error(request: Request, exc: RequestValidationError):
        # A form field missing or of the wrong type: the pages' one message naming the
        # field by its label (``web.messages``); the API keeps FastAPI's JSON.
        from hepanav.web.messages import field_problem

        if request.url.path.startswith("/api/"):
            return await request_validation_exception_handler(request, exc)
        return page(request, "error.html.j2", code=400, message=field_problem(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get(
            "accept", ""
        ):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return page(request, "error.html.j2", code=exc.status_code, message=str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = "internal error; the server log has the details"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=500)
        return page(request, "error.html.j2", code=500, message=message)

    # ------------------------------------------------------------ public
    @app.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        """Liveness check (no login needed, no data)."""
        return {"status": "ok", "version": __version__}

    @app.get("/login", response_class=HTMLResponse, tags=["session"])
    def login_page(request: Request):
        return page(request, "login.html.j2")

    @app.post("/login", tags=["session"])
    def login(
        request: Request,
        username: str = Form(..., max_length=64),
        password: str = Form(..., max_length=1024),
        db: Session = Depends(db_session),
    ):
        """Log in; sets the session cookie. Rate-limited per user name and client."""
        client = request.client.host if request.client else "-"
        if limiter.blocked(username, client):
            audit_log.record(username, "login", outcome="rate-limited")
            return page(request, "login.html.j2", code=429, message="too many failed logins; wait")
        user = db.scalar(select(User).where(User.username == username))
        if (
            user is None
            or not user.active
            or not security.verify_password(user.password_hash, password)
        ):
            limiter.failed(username, client)
            audit_log.record(username, "login", outcome="failed")
            return page(request, "login.html.j2", code=401, message="wrong user name or password")
        limiter.succeeded(username, client)
        token, _ = security.open_session(db, user)
        audit_log.record(user.username, "login")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            security.COOKIE,
            token,
            httponly=True,
            secure=settings.cookie_secure,
            samesite="strict",
            max_age=settings.session_minutes * 60,
        )
        return response

    @app.post("/logout", tags=["session"], dependencies=[Depends(require_csrf)])
    def logout(request: Request, db: Session = Depends(db_session)):
        security.close_session(db, request.cookies.get(security.COOKIE))
        audit(request, "logout")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(security.COOKIE)
        return response

    # ------------------------------------------------------------- cases
    @app.get("/", response_class=HTMLResponse, tags=["cases"])
    def worklist(request: Request, user: User = Depends(require(*CAN_VIEW_CASES, "coordinator"))):
        """The worklist: cases in the watched folder (and recent jobs)."""
        cases = list_cases(settings.cases_dir) if user.role in CAN_VIEW_CASES else []
        with Session(engine) as db:
            jobs = db.scalars(select(Job).order_by(Job.id.desc()).limit(20)).all()
        audit(request, "view", "worklist")
        return page(request, "worklist.html.j2", cases=cases, jobs=jobs)

    @app.get("/pacs", response_class=HTMLResponse, tags=["cases"])
    def pacs_worklist(request: Request, _: User = Depends(require(*CAN_VIEW_CASES))):
        """Studies in the configured PACS (DICOMweb or DIMSE, ``HEPANAV_PACS_*``)."""
        from hepanav.web.pacs import list_studies

        studies, message = list_studies()
        audit(request, "view", "pacs")
        return page(request, "pacs.html.j2", studies=studies, message=message)

    @app.post("/pacs/fetch", tags=["cases"], dependencies=[Depends(require_csrf)])
    def pacs_fetch(
        request: Request,
        study_uid: str = Form(..., max_length=64),
        user: User = Depends(require(*CAN_VIEW_CASES)),
    ):
        """Retrieve a study from PACS into the worklist (a job); the case id is a hash of
        the Study Instance UID, never a patient attribute."""
        from hepanav.web.pacs import case_id_for, fetch_steps

        case_id = case_id_for(study_uid)
        job_id = request.app.state.jobs.create(
            "fetch", case_id, fetch_steps(study_uid), {"case": case_id}, user.username
        )
        audit(request, "fetch", f"job:{job_id}:case:{case_id}")
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    @app.get("/cases/{case_id}", response_class=HTMLResponse, tags=["cases"])
    def case_page(request: Request, case_id: str, _: User = Depends(require(*CAN_VIEW_CASES))):
        case = get_case(settings.cases_dir, case_id)
        with Session(engine) as db:
            jobs = db.scalars(
                select(Job).where(Job.case_id == case_id).order_by(Job.id.desc())
            ).all()
        audit(request, "view", f"case:{case_id}")
        return page(request, "case.html.j2", case=case, jobs=jobs)

    @app.get("/cases/{case_id}/series/{name}", tags=["cases"])
    def series_file(
        request: Request, case_id: str, name: str, _: User = Depends(require(*CAN_VIEW_CASES))
    ):
        """The image of a series for the viewer (DICOM folders converted to NIfTI once)."""
        case = get_case(settings.cases_dir, case_id)
        path = series_path(case, name)
        if path.is_dir():
            from hepanav.web.viewer import nifti_of_dicom

            path = nifti_of_dicom(path, settings.data_dir / "viewer-cache" / case_id)
        audit(request, "view", f"case:{case_id}/series:{name}")
        media = "application/gzip" if path.name.endswith(".gz") else "application/octet-stream"
        return FileResponse(path, media_type=media, filename=path.name)

    @app.get("/cases/{case_id}/margin", response_class=HTMLResponse, tags=["margin"])
    def margin_page(request: Request, case_id: str, _: User = Depends(require(*CAN_RUN_IMAGING))):
        """Ablation-margin workflow: pick pre/post, click tumour and zone, inspect, run."""
        case = get_case(settings.cases_dir, case_id)
        fields = (
            "tumor_seed",
            "ablation_seed",
            "tumor_include",
            "tumor_exclude",
            "zone_include",
            "zone_exclude",
        )
        prefill = {f: request.query_params.get(f, "")[:2000] for f in fields}
        # Where the cursor starts: the tumour seed being corrected, else the MAM point of
        # the case's latest margin result, else the middle of the image.
        start = None
        if prefill["tumor_seed"]:
            try:
                start = list(parse_point(prefill["tumor_seed"], "tumour seed"))
            except InputError:
                start = None
        if start is None:
            start = _latest_mam(case_id)
        return page(request, "margin.html.j2", case=case, prefill=prefill, start=start)

    def _latest_mam(case_id: str) -> list[float] | None:
        """The MAM point (LPS mm) of the case's latest finished margin job, if any."""
        with Session(engine) as db:
            jobs = db.scalars(
                select(Job)
                .where(Job.case_id == case_id, Job.kind == "margin", Job.state == "done")
                .order_by(Job.id.desc())
                .limit(5)
            ).all()
        manager = getattr(app.state, "jobs", None)  # None: started without jobs (tests)
        for job in jobs if manager is not None else []:
            summary = _result_summary(manager.job_dir(job.id))
            point = summary and summary.get("data", {}).get("mam_point_lps_mm")
            if point:
                return [float(v) for v in point]
        return None

    @app.post("/cases/{case_id}/margin", tags=["margin"], dependencies=[Depends(require_csrf)])
    def margin_run(
        request: Request,
        case_id: str,
        pre: str = Form(...),
        post: str = Form(...),
        tumor_seed: str = Form(""),
        ablation_seed: str = Form(""),
        tumor_mask: str = Form(""),
        ablation_mask: str = Form(""),
        liver_pre: str = Form(""),
        liver_post: str = Form(""),
        tumor_include: str = Form(""),
        tumor_exclude: str = Form(""),
        zone_include: str = Form(""),
        zone_exclude: str = Form(""),
        action: str = Form("run"),
        user: User = Depends(require(*CAN_RUN_IMAGING)),
    ):
        """Start registration + margin as a background job (``action=run``), or segment the
        clicked tumour and zone for inspection first (``action=preview``)."""
        from hepanav.web.workflows import parse_points, segment_steps

        case = get_case(settings.cases_dir, case_id)
        if action == "preview":
            if not (tumor_seed and ablation_seed):
                raise InputError("click the tumour and the zone first", "seeds")
            edits = {
                name: parse_points(text, name)
                for name, text in (
                    ("tumor_include", tumor_include),
                    ("tumor_exclude", tumor_exclude),
                    ("zone_include", zone_include),
                    ("zone_exclude", zone_exclude),
                )
            }
            steps = segment_steps(
                case,
                pre=pre,
                post=post,
                tumor_seed=parse_point(tumor_seed, "tumour seed"),
                ablation_seed=parse_point(ablation_seed, "zone seed"),
                edits=edits,
            )
            job_id = request.app.state.jobs.create(
                "segment",
                case_id,
                steps,
                {
                    "pre": pre,
                    "post": post,
                    "tumor_seed": tumor_seed,
                    "ablation_seed": ablation_seed,
                    **{
                        k: ";".join(",".join(f"{v:.1f}" for v in p) for p in pts)
                        for k, pts in edits.items()
                    },
                },
                user.username,
            )
            audit(request, "run", f"job:{job_id}:segment:case:{case_id}")
            return RedirectResponse(f"/jobs/{job_id}", status_code=303)
        steps = margin_steps(
            case,
            pre=pre,
            post=post,
            tumor_seed=parse_point(tumor_seed, "tumour seed") if tumor_seed else None,
            ablation_seed=parse_point(ablation_seed, "zone seed") if ablation_seed else None,
            tumor_mask=tumor_mask or None,
            ablation_mask=ablation_mask or None,
            liver_pre=liver_pre or None,
            liver_post=liver_post or None,
        )
        job_id = request.app.state.jobs.create(
            "margin", case_id, steps, {"pre": pre, "post": post}, user.username
        )
        audit(request, "run", f"job:{job_id}:margin:case:{case_id}")
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    @app.get("/cases/{case_id}/plan", response_class=HTMLResponse, tags=["planning"])
    def plan_page(request: Request, case_id: str, _: User = Depends(require(*CAN_RUN_IMAGING))):
        """Planning workflow: planning CT, tumour, margin, device, risk structures."""
        from hepanav.planning.devices import builtin_devices

        case = get_case(settings.cases_dir, case_id)
        return page(request, "plan.html.j2", case=case, devices=sorted(builtin_devices()))

    @app.post("/cases/{case_id}/plan", tags=["planning"], dependencies=[Depends(require_csrf)])
    def plan_run(
        request: Request,
        case_id: str,
        ct: str = Form(...),
        tumor: str = Form(...),
        labels: str = Form(""),
        margin_mm: float = Form(5.0),
        device: str = Form(...),
        user: User = Depends(require(*CAN_RUN_IMAGING)),
    ):
        """Start a planning job; redirects to the job page."""
        from hepanav.web.workflows import plan_steps

        case = get_case(settings.cases_dir, case_id)
        steps = plan_steps(
            case, ct=ct, tumor=tumor, labels=labels or None, margin_mm=margin_mm, device=device
        )
        job_id = request.app.state.jobs.create(
            "plan", case_id, steps, {"ct": ct, "tumor": tumor}, user.username
        )
        audit(request, "run", f"job:{job_id}:plan:case:{case_id}")
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    @app.post("/jobs/{job_id}/margin", tags=["margin"], dependencies=[Depends(require_csrf)])
    def margin_from_preview(
        request: Request,
        job_id: int,
        liver_pre: str = Form(""),
        liver_post: str = Form(""),
        db: Session = Depends(db_session),
        user: User = Depends(require(*CAN_RUN_IMAGING)),
    ):
        """Run registration + margin with the masks of an inspected segmentation job."""
        job = _job(db, job_id)
        result = request.app.state.jobs.job_dir(job_id) / "result"
        if job.kind != "segment" or job.state != "done":
            raise InputError("needs a finished segmentation", f"job {job_id}")
        case = get_case(settings.cases_dir, job.case_id)
        steps = margin_steps(
            case,
            pre=job.params["pre"],
            post=job.params["post"],
            tumor_seed=None,
            ablation_seed=None,
            tumor_mask=None,
            ablation_mask=None,
            liver_pre=liver_pre or None,
            liver_post=liver_post or None,
            tumor_path=result / "tumor.nii.gz",
            zone_path=result / "zone.nii.gz",
        )
        new_id = request.app.state.jobs.create(
            "margin",
            job.case_id,
            steps,
            {"pre": job.params["pre"], "post": job.params["post"], "from_segment": job_id},
            user.username,
        )
        audit(request, "run", f"job:{new_id}:margin:segment:{job_id}")
        return RedirectResponse(f"/jobs/{new_id}", status_code=303)

    @app.post("/jobs/{job_id}/placement", tags=["planning"], dependencies=[Depends(require_csrf)])
    def placement_run(
        request: Request,
        job_id: int,
        control_ct: str = Form(...),
        db: Session = Depends(db_session),
        user: User = Depends(require(*CAN_RUN_IMAGING)),
    ):
        """Check needle placement on a control CT against a finished plan."""
        from hepanav.web.workflows import placement_steps

        job = _job(db, job_id)
        plan_json = request.app.state.jobs.job_dir(job_id) / "result" / "plan" / "plan.json"
        if job.kind != "plan" or job.state != "done" or not plan_json.is_file():
            raise InputError("needs a finished plan", f"job {job_id}")
        if not json.loads(plan_json.read_text()).get("feasible", False):
            raise InputError(
                "the plan is not feasible: its needles are not a placement plan", f"job {job_id}"
            )
        case = get_case(settings.cases_dir, job.case_id)
        steps = placement_steps(case, plan_json=plan_json, control_ct=control_ct)
        new_id = request.app.state.jobs.create(
            "placement", job.case_id, steps, {"plan_job": job_id, "ct": control_ct}, user.username
        )
        audit(request, "run", f"job:{new_id}:placement:plan:{job_id}")
        return RedirectResponse(f"/jobs/{new_id}", status_code=303)

    # -------------------------------------------------------------- jobs
    def _job(db: Session, job_id: int) -> Job:
        job = db.get(Job, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/jobs/{job_id}", response_class=HTMLResponse, tags=["jobs"])
    def job_page(
        request: Request,
        job_id: int,
        db: Session = Depends(db_session),
        _: User = Depends(require(*CAN_VIEW_CASES)),
    ):
        job = _job(db, job_id)
        status = request.app.state.jobs.status(job_id) if request.app.state.jobs else {}
        result = (
            _result_summary(request.app.state.jobs.job_dir(job_id)) if job.state == "done" else None
        )
        from hepanav.web.workflows import pacs_blocker

        case = None
        if job.case_id and job.kind != "fetch":  # a fetched case exists when the job is done
            case = get_case(settings.cases_dir, job.case_id)
        # The sign-off form's PACS choice is disabled, with the reason, when impossible.
        blocker = pacs_blocker(case, job.kind, job.params) if result else None
        audit(request, "view", f"job:{job_id}")
        return page(
            request,
            "job.html.j2",
            job=job,
            status=status,
            result=result,
            case=case,
            pacs_blocker=blocker,
        )

    @app.get("/jobs/{job_id}/pre-in-post", tags=["margin"])
    def pre_in_post(
        request: Request,
        job_id: int,
        db: Session = Depends(db_session),
        _: User = Depends(require(*CAN_VIEW_CASES)),
    ):
        """The pre CT warped into the post CT's space (for the fused view), NIfTI."""
        from hepanav.web.viewer import warped_pre

        job = _job(db, job_id)
        if job.kind != "margin" or job.state != "done":
            raise HTTPException(404, "no finished margin result")
        case = get_case(settings.cases_dir, job.case_id)
        result = request.app.state.jobs.job_dir(job_id) / "result" / "margin"
        pre = series_path(case, job.params["pre"])
        path = warped_pre(pre, result, settings.data_dir / "viewer-cache" / f"job-{job_id}")
        if path is None:
            raise HTTPException(404, "this result has no registration (masks in one space)")
        return FileResponse(path, media_type="application/gzip", filename=path.name)

    @app.get("/api/jobs/{job_id}/needles", tags=["planning"])
    def plan_needles(request: Request, job_id: int, _: User = Depends(require(*CAN_VIEW_CASES))):
        """The plan's needles as a NiiVue connectome (RAS mm) for the 3D view."""
        from hepanav.web.workflows import needles_connectome

        path = request.app.state.jobs.job_dir(job_id) / "result" / "plan" / "plan.json"
        if not path.is_file():
            raise HTTPException(404, "no finished plan for this job")
        return needles_connectome(json.loads(path.read_text()))

    @app.get("/api/jobs/{job_id}", tags=["jobs"])
    def job_status(request: Request, job_id: int, _: User = Depends(require(*CAN_VIEW_CASES))):
        """State and progress of a job as JSON."""
        status = request.app.state.jobs.status(job_id)
        if not status:
            raise HTTPException(404, f"no job {job_id}")
        return status

    @app.get("/api/jobs/{job_id}/events", tags=["jobs"])
    async def job_events(
        request: Request, job_id: int, _: User = Depends(require(*CAN_VIEW_CASES))
    ):
        """Server-sent events with the job's progress until it ends (survives reloads:
        the state comes from the database and the job folder, not from this connection)."""
        manager = request.app.state.jobs
        if not manager.status(job_id):
            raise HTTPException(404, f"no job {job_id}")

        async def stream():
            last = None
            while not await request.is_disconnected():
                status = await asyncio.to_thread(manager.status, job_id)
                if status != last:
                    yield f"data: {json.dumps(status)}\n\n"
                    last = status
                if status.get("state") in ("done", "failed"):
                    break
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get("/jobs/{job_id}/files/{path:path}", tags=["jobs"])
    def job_file(
        request: Request, job_id: int, path: str, _: User = Depends(require(*CAN_VIEW_CASES))
    ):
        """A file of a finished job's result folder (report, maps, masks)."""
        root = (request.app.state.jobs.job_dir(job_id) / "result").resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise HTTPException(404, "no such result file")
        audit(request, "view", f"job:{job_id}/{path}")
        media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.name.endswith(".nii.gz"):
            media = "application/gzip"
        return FileResponse(target, media_type=media)

    @app.post("/jobs/{job_id}/signoff", tags=["jobs"], dependencies=[Depends(require_csrf)])
    def signoff(
        request: Request,
        job_id: int,
        send_pacs: bool = Form(False),
        patient_id: str = Form("", max_length=64),
        procedure_id: str = Form("", max_length=64),
        lesion_id: str = Form("", max_length=64),
        db: Session = Depends(db_session),
        user: User = Depends(require(*CAN_RUN_IMAGING)),
    ):
        """Sign off a finished result: store its DICOM objects to PACS and its figures in
        the registry (a job); the sign-off is recorded when every store succeeded."""
        from hepanav.web.workflows import signoff_steps

        job = _job(db, job_id)
        if job.state != "done" or job.kind not in ("margin", "plan"):
            raise InputError("only a finished margin or plan can be signed off", f"job {job_id}")
        if job.signed_off_by:
            raise InputError(f"already signed off by {job.signed_off_by}", f"job {job_id}")
        if job.kind == "plan":
            plan_json = request.app.state.jobs.job_dir(job_id) / "result" / "plan" / "plan.json"
            if not json.loads(plan_json.read_text()).get("feasible", False):
                # Its zones do not cover the target: never stored as a plan in PACS.
                raise InputError(
                    "an infeasible plan cannot be signed off; change the margin, "
                    "device or risk settings and plan again",
                    f"job {job_id}",
                )
        ids = {
            "patient_id": patient_id.strip(),
            "procedure_id": procedure_id.strip(),
            "lesion_id": lesion_id.strip(),
        }
        registry = ids if any(ids.values()) else None
        if registry and not all(ids.values()):
            raise InputError("give patient, procedure and lesion id (pseudonymous)", "registry")
        from hepanav.web.workflows import pacs_blocker

        source = None
        case = get_case(settings.cases_dir, job.case_id) if job.case_id else None
        if send_pacs:
            # Refused before anything is written: no half-done sign-off.
            blocker = pacs_blocker(case, job.kind, job.params)
            if blocker is not None:
                raise InputError(
                    f"{blocker}; untick it to sign off"
                    + (" and store in the registry only" if job.kind == "margin" else ""),
                    "Store to PACS",
                )
            source = series_path(case, job.params.get("post") or job.params.get("ct"))
        manager = request.app.state.jobs
        steps = signoff_steps(
            manager.job_dir(job_id) / "result",
            kind=job.kind,
            source=source,
            send_to_pacs=send_pacs,
            registry=registry,
            registry_db=settings.registry_db,
            signed_by=user.username,
            job_id=job_id,
        )
        new_id = manager.create(
            "signoff",
            job.case_id,
            steps,
            {"signs_off": job_id, "pacs": send_pacs, "registry": registry is not None},
            user.username,
        )
        audit(request, "sign-off", f"job:{job_id}:via:{new_id}")
        return RedirectResponse(f"/jobs/{new_id}", status_code=303)

    # ---------------------------------------------------------- therapy
    @app.get("/therapy", response_class=HTMLResponse, tags=["therapy"])
    def therapy_page(request: Request, _: User = Depends(user_of)):
        from hepanav.web.workflows import therapy_example

        return page(
            request,
            "therapy.html.j2",
            report=None,
            case_text="",
            message=None,
            example=therapy_example(),
        )

    @app.post(
        "/therapy",
        response_class=HTMLResponse,
        tags=["therapy"],
        dependencies=[Depends(require_csrf)],
    )
    def therapy_run(
        request: Request,
        case_text: str = Form(..., max_length=100_000),
        user: User = Depends(user_of),
    ):
        """Evaluate a therapy case (YAML, the CLI's case format) and show the verdicts."""
        from hepanav.web.workflows import run_therapy

        try:
            report = run_therapy(case_text, settings.uploads_dir)
        except InputError as exc:
            # Keep what was typed, say what is wrong (one message, no traceback).
            audit(request, "run", "therapy", "refused")
            return page(
                request,
                "therapy.html.j2",
                code=400,
                report=None,
                case_text=case_text,
                message=" ".join(str(exc).split()),
                example="",
            )
        audit(request, "run", "therapy")
        return page(request, "therapy.html.j2", report=report, case_text=case_text, example="")

    @app.get("/therapy/dose", response_class=HTMLResponse, tags=["therapy"])
    def dose_page(request: Request, _: User = Depends(require(*CAN_CHECK_DOSE))):
        """Dose check (``hepanav therapy dose``): a sourced regimen or the historical table."""
        from hepanav.web.workflows import dose_options

        return page(
            request, "dose.html.j2", options=dose_options(), form={}, result=None, message=None
        )

    @app.post(
        "/therapy/dose",
        response_class=HTMLResponse,
        tags=["therapy"],
        dependencies=[Depends(require_csrf)],
    )
    def dose_run(
        request: Request,
        drug: str = Form("", max_length=64),
        regimen: str = Form("", max_length=64),
        dose: str = Form("", max_length=32),
        unit: str = Form("mg", max_length=16),
        per: str = Form("session", max_length=16),
        route: str = Form("intra-arterial", max_length=32),
        height_cm: str = Form("", max_length=32),
        weight_kg: str = Form("", max_length=32),
        historical: str = Form("", max_length=8),
        _: User = Depends(require(*CAN_CHECK_DOSE)),
    ):
        """Check a dose against a sourced regimen or the historical intra-arterial table;
        the verdict is shown with its source (the form keeps what was typed)."""
        from hepanav.web.workflows import dose_options, run_dose_check

        form = {
            "drug": drug,
            "regimen": regimen,
            "dose": dose,
            "unit": unit,
            "per": per,
            "route": route,
            "height_cm": height_cm,
            "weight_kg": weight_kg,
            "historical": historical,
        }
        try:
            result = run_dose_check(form)
        except InputError as exc:
            audit(request, "run", "therapy-dose", "refused")
            return page(
                request,
                "dose.html.j2",
                code=400,
                options=dose_options(),
                form=form,
                result=None,
                message=" ".join(str(exc).split()),
            )
        audit(request, "run", "therapy-dose")
        return page(
            request, "dose.html.j2", options=dose_options(), form=form, result=result, message=None
        )

    # ---------------------------------------------------------- registry
    @app.get("/registry", response_class=HTMLResponse, tags=["registry"])
    def registry_page(
        request: Request,
        date_from: str = "",
        date_to: str = "",
        procedure_type: str = "",
        centre: str = "",
        _: User = Depends(user_of),
    ):
        """Registry dashboard: counts, and per procedure type the key rates with their
        denominators, filtered by period, procedure type and centre."""
        from hepanav.web.workflows import registry_dashboard, registry_summary

        summary = registry_summary(settings.registry_db)
        filters = {
            "date_from": date_from,
            "date_to": date_to,
            "procedure_type": procedure_type,
            "centre": centre,
        }
        board = (
            None
            if summary.get("error")
            else registry_dashboard(
                settings.registry_db, **{k: v or None for k, v in filters.items()}
            )
        )
        audit(request, "view", "registry")
        return page(
            request, "registry.html.j2", summary=summary, errors=None, board=board, filters=filters
        )

    @app.post(
        "/registry/import",
        response_class=HTMLResponse,
        tags=["registry"],
        dependencies=[Depends(require_csrf)],
    )
    async def registry_import(
        request: Request, file: UploadFile, user: User = Depends(require(*CAN_EDIT_REGISTRY))
    ):
        """Import a CSV/XLSX template; row errors are shown in the page, nothing half-stored."""
        from hepanav.web.workflows import registry_import_file, registry_summary

        saved = await save_upload(
            file, settings.uploads_dir, settings.max_upload_mb, (".csv", ".xlsx")
        )
        try:
            errors = await asyncio.to_thread(
                registry_import_file,
                saved,
                settings.registry_db,
                data_dir=settings.data_dir,
                filename=file.filename,
            )
        finally:
            saved.unlink(missing_ok=True)
        audit(request, "import", "registry", "failed" if errors else "ok")
        summary = registry_summary(settings.registry_db)
        return page(
            request,
            "registry.html.j2",
            summary=summary,
            errors=errors,
            board=None,
            filters={},
            code=400 if errors else 200,
        )

    # ------------------------------------------------------- fluorescence
    @app.get("/fluoro", response_class=HTMLResponse, tags=["fluorescence"])
    def fluoro_page(request: Request, _: User = Depends(require(*CAN_RUN_FLUORO))):
        return page(request, "fluoro.html.j2")

    @app.post("/fluoro", tags=["fluorescence"], dependencies=[Depends(require_csrf)])
    async def fluoro_run(
        request: Request,
        nir: UploadFile,
        bit_depth: str = Form("auto"),
        user: User = Depends(require(*CAN_RUN_FLUORO)),
    ):
        """Upload a NIR recording (video) and analyse it as a background job.

        ``bit_depth``: ``auto`` (the recording's pixel type decides) or 8, 12 or 16;
        anything else, or a recording whose first frame the analysis refuses (not a
        video, 16 bit chosen for an 8-bit codec), is refused with one message before a
        job starts, and the upload is not kept.
        """
        from hepanav.web.workflows import check_recording, fluoro_steps, parse_bit_depth

        depth = parse_bit_depth(bit_depth)
        saved = await save_upload(
            nir, settings.uploads_dir, settings.max_upload_mb, (".mp4", ".avi", ".mkv", ".mov")
        )
        try:
            await asyncio.to_thread(check_recording, saved, depth, settings.data_dir, nir.filename)
        except InputError:
            saved.unlink(missing_ok=True)  # refused: nothing kept, no job
            raise
        steps = fluoro_steps(saved, depth)
        job_id = request.app.state.jobs.create("fluoro", "", steps, {}, user.username)
        audit(request, "run", f"job:{job_id}:fluoro")
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    @app.get("/fluoro/live", response_class=HTMLResponse, tags=["fluorescence"])
    def fluoro_live_page(request: Request, _: User = Depends(require(*CAN_RUN_FLUORO))):
        """The operating-room page: the analysed camera stream (overlay, TBR labels,
        margin warning, added latency drawn on every frame)."""
        audit(request, "view", "fluoro-live")
        return page(request, "live.html.j2", source_set=settings.live_source is not None)

    @app.get("/fluoro/live/stream", tags=["fluorescence"])
    def fluoro_live_stream(request: Request, _: User = Depends(require(*CAN_RUN_FLUORO))):
        """MJPEG (``multipart/x-mixed-replace``) of the analysed live frames; each part
        carries ``X-Latency-Ms``, the added latency of that frame."""
        from hepanav.web.live import live_stream

        if settings.live_source is None:
            raise InputError("no live source is configured (HEPANAV_WEB_LIVE_SOURCE)", "live")
        media, parts = live_stream(settings.live_source, settings.live_white)
        return StreamingResponse(parts, media_type=media)

    # ------------------------------------------------------------- admin
    @app.get("/admin/audit", response_class=HTMLResponse, tags=["admin"])
    def audit_page(
        request: Request, db: Session = Depends(db_session), _: User = Depends(require(*CAN_ADMIN))
    ):
        audit_log.flush()
        events = db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(500)).all()
        return page(request, "audit.html.j2", events=events)

    @app.get("/api/audit", tags=["admin"])
    def audit_json(db: Session = Depends(db_session), _: User = Depends(require(*CAN_ADMIN))):
        """The audit log (latest 500 events) as JSON."""
        audit_log.flush()
        events = db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(500)).all()
        return [
            {
                "at": e.at.isoformat(),
                "user": e.username,
                "action": e.action,
                "target": e.target,
                "outcome": e.outcome,
            }
            for e in events
        ]

    # ----------------------------------------------- registry records API
    from hepanav.registry import api as registry_api

    def registry_engine():
        from hepanav.registry.db import open_registry
        from hepanav.registry.settings import resolve_database_url

        engine = open_registry(resolve_database_url(settings.registry_db))
        try:
            yield engine
        finally:
            engine.dispose()

    async def registry_guard(request: Request) -> None:
        """Reading: every role; changing: coordinator and admin, with the CSRF token."""
        if request.method not in ("GET", "HEAD"):
            if request.state.user.role not in CAN_EDIT_REGISTRY:
                raise HTTPException(
                    403, f"your role ({request.state.user.role}) may not change registry records"
                )
            await require_csrf(request)

    app.dependency_overrides[registry_api.get_engine] = registry_engine

    def registry_user(request: Request) -> str:
        return request.state.user.username

    app.dependency_overrides[registry_api.get_user] = registry_user
    app.include_router(
        registry_api.router, prefix="/api/registry", dependencies=[Depends(registry_guard)]
    )

    @app.get("/registry/records/{table}", response_class=HTMLResponse, tags=["registry"])
    def registry_record_page(request: Request, table: str, key: str, _: User = Depends(user_of)):
        """One registry record with its edit history and a correction form."""
        from hepanav.registry import records

        engine = next(registry_engine())
        try:
            names = records.key_columns(table)
            parts = key.split("/")
            if len(parts) != len(names):
                raise InputError(f"the key of {table} is {'/'.join(names)}", "key")
            record = records.get_record(engine, table, dict(zip(names, parts, strict=True)))
            history = records.history(engine, f"{table}:{key}")
        finally:
            engine.dispose()
        audit(request, "view", f"registry:{table}:{key}")
        key_map = dict(zip(names, parts, strict=True))
        return page(
            request,
            "record.html.j2",
            table=table,
            key=key,
            names=names,
            key_map=key_map,
            record=record,
            history=history,
        )

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    return app


def _result_summary(job_dir: Path) -> dict[str, Any] | None:
    """What the job page shows of a finished result (margin.json's key figures)."""
    result = job_dir / "result"
    for candidate in sorted(result.rglob("margin.json")):
        data = json.loads(candidate.read_text())
        rel = candidate.parent.relative_to(result).as_posix()
        surface = (candidate.parent / "surface" / "tumour.surf.gii").is_file()
        return {
            "kind": "margin",
            "data": data,
            "folder": rel,
            "surface": surface,
            "verdict": _margin_verdict(data),
        }
    if (result / "tumor.nii.gz").is_file() and (result / "zone.nii.gz").is_file():
        return {"kind": "segment", "folder": "."}
    for candidate in sorted(result.rglob("plan.json")):
        data = json.loads(candidate.read_text())
        rel = candidate.parent.relative_to(result).as_posix()
        return {"kind": "plan", "data": data, "folder": rel}
    for candidate in sorted(result.rglob("report.html")):
        return {"kind": "report", "folder": candidate.parent.relative_to(result).as_posix()}
    return None


def _margin_verdict(data: dict) -> dict[str, Any] | None:
    """The MAM verdict of a margin.json as the terminal says it (hepanav.margin.verdict);
    None for a file this version cannot read (the page then shows the bare figures)."""
    from pydantic import ValidationError

    from hepanav.margin.schema import MarginResult
    from hepanav.margin.verdict import verdict

    try:
        return verdict(MarginResult.model_validate(data))
    except ValidationError:
        return None
