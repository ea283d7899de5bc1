"""Online experiments: define one on a placement (PUT), read its results and verdict (GET), stop it (DELETE)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.exceptions import RequestValidationError

from deepshelf.api.deps import PrivateAuth, ServiceDep
from deepshelf.engine.experiments import RunRefused
from deepshelf.api.schemas import ExperimentIn, ExperimentList, ExperimentOut
from deepshelf.data.fields import Id
from deepshelf.storage.base import ExperimentConflict

router = APIRouter(prefix="/v1", tags=["experiments"], dependencies=[PrivateAuth])
# plain `def`: each reads or writes the store (and PUT loads runs), in the thread pool, never on the event loop

Name = Annotated[Id, Path(description="the experiment's name")]
_CONFLICT = {409: {"description": "another experiment runs on the placement, or this server would hold more "
                                  "variant runs than max_variant_runs"}}


def _invalid(loc: tuple, message: str) -> RequestValidationError:
    # no `input`: a run path is the server's, not to be echoed back
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": "value_error"}])


@router.get("/experiments", response_model=ExperimentList)
def list_experiments(service: ServiceDep, active: bool = False) -> ExperimentList:
    """Every experiment (only the running ones with `active=true`), by name, each with its results and verdict
    as GET /v1/experiments/{name} gives them: what the dashboard's experiments panel shows."""
    names = [row["name"] for row in service.store.experiments(active_only=active)]
    found = (service.experiments.results(name) for name in names)
    return ExperimentList(experiments=[ExperimentOut(**r) for r in found if r is not None])


@router.put("/experiments/{name}", response_model=ExperimentOut, responses=_CONFLICT)
def put_experiment(name: Name, body: ExperimentIn, service: ServiceDep) -> ExperimentOut:
    """Define (or redefine) an experiment: list requests for `placement` are served by one variant's run per
    shopper (or session), chosen by a stable hash of its id and the experiment's name. Every variant's run must
    load on this server (422 naming the variant's `run` otherwise); other servers on the store follow within
    `experiment_refresh_s`."""
    names = [v.name for v in body.variants]
    if len(set(names)) != len(names):
        raise _invalid(("variants",), "variant names must be distinct")
    if abs(sum(v.share for v in body.variants) - 1.0) > 1e-6:
        raise _invalid(("variants",), "the variants' shares must sum to 1")
    variants = [v.model_dump() for v in body.variants]
    try:
        service.experiments.define(name, body.placement, body.allocation, variants)
    except RunRefused as exc:
        if exc.index < 0:
            raise HTTPException(409, str(exc)) from None
        raise _invalid(("variants", exc.index, "run"), str(exc)) from None
    except ExperimentConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return ExperimentOut(**service.experiments.results(name))


@router.get("/experiments/{name}", response_model=ExperimentOut)
def get_experiment(name: Name, service: ServiceDep) -> ExperimentOut:
    """Per variant: impressions, clicks, CTR with its 95% interval, conversions, revenue; and the verdict (fixed
    allocation: a two-proportion z-test on CTR; thompson: each variant's posterior probability of being best;
    README, "Experiments")."""
    results = service.experiments.results(name)
    if results is None:
        raise HTTPException(404, f"no experiment {name!r}")
    return ExperimentOut(**results)


@router.delete("/experiments/{name}", response_model=ExperimentOut)
def stop_experiment(name: Name, service: ServiceDep) -> ExperimentOut:
    """Stop the experiment: its placement is served by the served run again; its results stay readable."""
    service.experiments.stop_experiment(name)
    results = service.experiments.results(name)
    if results is None:
        raise HTTPException(404, f"no experiment {name!r}")
    return ExperimentOut(**results)
