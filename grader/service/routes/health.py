"""The service's own state: the queue (for any token), /healthz (for a load balancer), /metrics (Prometheus)."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from grader.service.deps import Caller, ServiceDep
from grader.service.schemas import Health, QueueState, errors

log = logging.getLogger("grader.service")
router = APIRouter()


@router.get("/api/v1/queue", response_model=QueueState, responses=errors(401, 503))
def queue_state(caller: Caller, service: ServiceDep) -> QueueState:
    counts, oldest = service.store.counts()
    age = round(max(0.0, time.time() - oldest), 3) if oldest is not None else None
    return QueueState(counts=counts, oldest_queued_age_s=age, workers=service.capacity)


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(service: ServiceDep) -> JSONResponse:
    try:
        service.store.ping()
        database = True
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        database = False
    ok = database and service.healthy_workers()
    return JSONResponse({"ok": ok}, 200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {"text/plain": {}}}})
def metrics(service: ServiceDep) -> Response:
    metrics = service.metrics
    try:
        counts, _ = service.store.counts()
        for status, count in counts.items():
            metrics.submissions.labels(status).set(count)
        metrics.queue_depth.set(counts.get("queued", 0))
    except Exception as exc:  # noqa: BLE001 - the database is away: serve what this process knows
        log.warning("metrics: the database did not answer (%s)", str(exc).splitlines()[0][:200])
    metrics.healthy_workers.set(1 if service.healthy_workers() else 0)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
