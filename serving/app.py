"""The HTTP routes of a served run (FastAPI) and its request models, built from the run's own
fields, so an unknown field, a missing one or a value of the wrong type is a 422 naming it.

    POST /score      CTR runs: {"user", "context": {"time", shared fields}, "candidates": [{fields}]}
                     -> calibrated click probabilities "p" (and the model's "logit"), in order
    POST /recommend  next-item runs: {"user", "k", "time"} -> the top k "items" (raw ids) and "scores"
    POST /events     {"user", "events": [{"timeline", "time", fields}]} -> appended and, where the
                     model streams, folded into the user's state; 200 once it is on disk
    GET  /health, GET /run, GET /users/{user}   liveness and counters; the run; a user's windows

Fields are the processed dataset's names (serving/features.py); ids of integer vocabularies are
JSON integers. A request for the other task's endpoint is a 400 naming the task the run serves.
Errors are {"error": one line} (422 for validation, "detail" with every error beside it); no
request can stop the service: anything unexpected is a 500 for that request alone, and logged.
"""

import logging
import re
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, ValidationError, create_model

from common.errors import MDAFError
from serving.features import PRICE
from serving.scorer import Ranking, Samples
from serving.service import Service

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 2**20
Int64 = Annotated[int, Field(ge=-2**63, le=2**63 - 1)]
STRICT = ConfigDict(extra="forbid", strict=True)
UNION_TAG = re.compile(r"(constrained-)?(int|str|float|bool|none)")
TASKS = {"ctr": "click-through rate (POST /score)", "next_item": "next-item recommendation (POST /recommend)"}


def id_type(kind: type | None) -> Any:
    """The JSON type of ids: integers for an integer vocabulary; text (or an integer, read as text)
    for a text one; either where no vocabulary reads the id (a next-item user)."""
    return Int64 if kind is int else Int64 | str


def create_app(service: Service) -> FastAPI:
    scorer, features, cfg = service.scorer, service.scorer.features, service.cfg

    def loc_parts(error: dict) -> list[str]:
        """The field path of a validation error: without "body", and without the tags pydantic
        adds for the members of a union type (`constrained-int`, `str`)."""
        return [str(p) for p in error["loc"] if str(p) != "body" and not UNION_TAG.fullmatch(str(p))]

    def one_line(errors: list[dict]) -> str:
        parts = []
        for error in errors:
            if error["type"] == "json_invalid":
                parts.append(f"body: malformed JSON ({error.get('ctx', {}).get('error', error['msg'])})")
            else:
                parts.append(f"{'.'.join(loc_parts(error)) or 'body'}: {error['msg']}")
        return "; ".join(dict.fromkeys(parts))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await service.start()
        yield
        await service.stop()

    app = FastAPI(title=f"MDAF: {scorer.run_dir.name} ({scorer.model_name})", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"error": one_line(exc.errors()), "detail": errors}, status_code=422)

    @app.exception_handler(MDAFError)
    async def refused(_: Request, exc: MDAFError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}: {exc})"}, status_code=500)

    @app.middleware("http")
    async def bounded_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body: {size} bytes; at most {MAX_BODY_BYTES}"}, status_code=413)
        return await call_next(request)

    def other_task(endpoint: str) -> JSONResponse:
        return JSONResponse({"error": f"{endpoint}: this run ({scorer.model_name}) serves {TASKS[scorer.task]}"},
                            status_code=400)

    user_kind = features.value_type(features.static["user"]) if "user" in features.static else None
    User = id_type(user_kind)

    def value(space: str) -> Any:
        return id_type(features.value_type(space)) | None

    if scorer.task == "ctr":
        shared = {f: (value(s), None) for f, s in features.static.items() if f != "user"}
        if PRICE in features.derived:
            shared[PRICE] = (float | None, None)
        candidate_fields = dict(shared)
        if "item" in candidate_fields:
            candidate_fields["item"] = (value(features.static["item"]), ...)
        Candidate = create_model("Candidate", __config__=STRICT, **candidate_fields)
        Context = create_model("Context", __config__=STRICT, time=(Int64 | None, None), **shared)
        ScoreRequest = create_model(
            "ScoreRequest", __config__=STRICT, user=(User, ...), context=(Context | None, None),
            candidates=(Annotated[list[Candidate], Field(min_length=1, max_length=cfg.max_candidates)], ...))

        @app.post("/score")
        async def score(request: ScoreRequest) -> dict:
            """Calibrated click probabilities of the candidates (fields missing from a candidate and
            from the context are missing values, as in the raw data; `hour` and `dow` come from time)."""
            context = request.context.model_dump(exclude_unset=True) if request.context is not None else {}
            at = context.pop("time", None)
            at = int(time.time()) if at is None else at
            rows = []
            for k, candidate in enumerate(request.candidates):
                row = candidate.model_dump(exclude_unset=True)
                twice = sorted(set(row) & set(context))
                if twice:
                    raise MDAFError(f"candidates.{k}.{twice[0]}: also given in context; give each field once")
                rows.append({**context, **row, "user": request.user})
            static, raw = features.encode_static(rows, np.full(len(rows), at, np.int64))
            logits = await service.score(Samples(request.user, at, static, raw))
            return {"user": request.user, "time": at, "p": scorer.calibration(logits).tolist(),
                    "logit": logits.astype(float).tolist()}

        @app.post("/recommend")
        async def recommend_elsewhere() -> JSONResponse:
            return other_task("POST /recommend")
    else:
        RecommendRequest = create_model("RecommendRequest", __config__=STRICT, user=(User, ...),
                                        k=(Annotated[int, Field(ge=1, le=cfg.max_k)], 10), time=(Int64 | None, None))

        @app.post("/recommend")
        async def recommend(request: RecommendRequest) -> dict:
            """The top k items for the user, by the run's masking rules (never padding or unknown
            items; the window's items too when the run masked the history)."""
            at = int(time.time()) if request.time is None else request.time
            items, scores = await service.recommend(Ranking(request.user, request.k, at))
            return {"user": request.user, "items": items, "scores": scores}

        @app.post("/score")
        async def score_elsewhere() -> JSONResponse:
            return other_task("POST /score")

    event_models = {}
    for timeline, fields in features.timelines.items():
        spec = {f: (value(s), ...) for f, s in fields.items()}
        event_models[timeline] = create_model(f"Event_{timeline}", __config__=STRICT, timeline=(str | None, None),
                                              time=(Int64 | None, None), **spec)
    EventsRequest = create_model(
        "EventsRequest", __config__=STRICT, user=(User, ...),
        events=(Annotated[list[dict[str, Any]], Field(min_length=1, max_length=cfg.max_events)], ...))

    @app.post("/events")
    async def events(request: EventsRequest) -> dict:
        """Append the user's events (in time order; the time defaults to now, the timeline to the
        run's only one) to its windows, fold them into its state; 200 once they are on disk."""
        checked, errors = [], []
        for k, event in enumerate(request.events):
            timeline = event.get("timeline")
            if timeline is None and len(event_models) == 1:
                timeline = next(iter(event_models))
            if timeline not in event_models:
                raise MDAFError(f"events.{k}.timeline: {'required' if timeline is None else repr(timeline)}; "
                                f"this run's timelines are {sorted(event_models)}")
            try:
                checked.append(event_models[timeline].model_validate(event).model_dump(exclude_none=True))
            except ValidationError as exc:
                errors += [{**e, "loc": ("body", "events", k, *e["loc"])} for e in exc.errors()]
        if errors:
            raise RequestValidationError(errors)
        seq = await service.add_events(service.events(request.user, checked))
        return {"user": request.user, "accepted": len(checked), "seq": seq}

    @app.get("/health")
    async def health() -> dict:
        return service.health()

    @app.get("/run")
    async def run() -> dict:
        return scorer.describe()

    @app.get("/users/{user}")
    async def user(user: str) -> dict:
        """A user's windows (encoded rows) and event counts; a numeric path names an integer id."""
        return await service.user(int(user) if re.fullmatch(r"-?\d+", user) else user)

    return app
