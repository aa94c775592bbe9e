"""Every group of the API's routes, included once per process and shared by each app built in it.

FastAPI builds an included router's routes (their dependencies and answer models) for the app that included
it, when a request is first matched against it, and a request is matched against each group before its own.
An engine process usually builds one app; one that builds several (an embedded engine restarted in the same
process, each in-process engine of the tests) would pay 0.1-0.8 s for each. Included here once, the groups'
routes are built once per process, then found built by every app that takes them (``create_app``).
"""

from __future__ import annotations

import functools

from fastapi import APIRouter, Depends
from starlette.routing import BaseRoute

from twinengine.api import health
from twinengine.api.routes import access as access_api
from twinengine.api.routes import assimilation as assimilation_api
from twinengine.api.routes import assimilation_skill as assimilation_skill_api
from twinengine.api.routes import auth as auth_api
from twinengine.api.routes import calibration as calibration_api
from twinengine.api.routes import catalog as catalog_api
from twinengine.api.routes import compute as compute_api
from twinengine.api.routes import ensembles as ensembles_api
from twinengine.api.routes import groups as group_api
from twinengine.api.routes import lake as lake_api
from twinengine.api.routes import ml as ml_api
from twinengine.api.routes import ml_quality as ml_quality_api
from twinengine.api.routes import openeo as openeo_api
from twinengine.api.routes import signin as signin_api
from twinengine.api.routes import stac as stac_api
from twinengine.api.routes import streams as streams_api
from twinengine.api.routes import streams_buffers as buffers_api
from twinengine.api.routes import subscriptions as subscriptions_api
from twinengine.api.routes import tokens as token_api
from twinengine.api.routes import twins as twins_api
from twinengine.api.routes import twins_batch as twins_batch_api
from twinengine.api.routes import twins_fleet as fleet_api
from twinengine.api.routes import twins_forecasts as forecasts_api
from twinengine.api.routes import twins_relationships as relationships_api
from twinengine.api.routes import views as views_api
from twinengine.api.routes import workflows as workflows_api
from twinengine.api.routes import workflows_quality as workflows_quality_api
from twinengine.api.routing import operation_id
from twinengine.api.text import refuse_unstorable_text

__all__ = ["api_routes"]


def _routers() -> list[APIRouter]:
    """In the order requests are matched against them."""
    return [health.router, auth_api.router, catalog_api.router, twins_api.router, access_api.router,
            workflows_api.router, *openeo_api.routers, lake_api.router, stac_api.router, streams_api.router,
            buffers_api.router, ml_api.router, forecasts_api.router, twins_batch_api.router, ensembles_api.router,
            *fleet_api.routers, relationships_api.router, workflows_quality_api.router, ml_quality_api.router,
            views_api.router, assimilation_api.router, assimilation_skill_api.router, calibration_api.router,
            subscriptions_api.router,
            signin_api.api, signin_api.browser,  # institutional sign-in: the providers, then the browser's redirects
            *compute_api.routers, group_api.router, *token_api.routers]


@functools.cache
def api_routes() -> tuple[BaseRoute, ...]:
    """The included groups, for an app's ``router.routes``; every request's text is checked as the app's own
    routes' is (``refuse_unstorable_text``), and operation ids are made as the app makes them."""
    shared = APIRouter(dependencies=[Depends(refuse_unstorable_text)], generate_unique_id_function=operation_id)
    for router in _routers():
        shared.include_router(router)
    return tuple(shared.routes)
