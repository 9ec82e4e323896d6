//! The layer in front of every route: the metrics listener's answers; then, around the CORS
//! layer and the handlers, the access line, the request counters, the bound of requests in
//! flight ([`super::streams`]), and `--dev`'s error pages.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::streams::{self, Tracked};
use super::{access_log, local_routes};
use crate::metrics::Answerer;
use crate::proxy::answer::{self, ProxyError};
use crate::proxy::route::{self, Upstream};
use crate::proxy::{cors, ProxyState};

/// Who will answer `req`, for the metrics: known before the request is handed on, except for
/// the proxy's own refusals ([`ProxyError::is_refusal`]). Local routes are matched on the path
/// actix routes on (percent-decoded where unambiguous), Ory and the app on the raw one.
fn answerer(req: &ServiceRequest) -> Answerer {
    if cors::is_preflight(req) || local_routes::is_local(req.match_info().as_str()) {
        return Answerer::Proxy;
    }
    match route::route(req.path()).upstream {
        Upstream::App => Answerer::App,
        Upstream::Ory => Answerer::Ory,
    }
}

/// The layer itself (for `actix_web::middleware::from_fn`). One `from_fn` layer rather than
/// several, as each costs two boxed futures per request.
pub(super) async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let Some(state) = req.app_data::<web::Data<ProxyState>>() else {
        return Err(actix_web::error::ErrorInternalServerError("no proxy state"));
    };
    if state
        .metrics_addr
        .is_some_and(|a| a == req.app_config().local_addr())
    {
        // The metrics listener serves metrics and nothing else: no proxying, no CORS.
        let res = local_routes::metrics_listener(req.request(), &state.metrics);
        return Ok(req
            .into_response(res)
            .map_body(|_, b| Tracked::new(EitherBody::right(b), None)));
    }
    let by = answerer(&req);
    let line = access_log::Line::start(&req, started);
    // The health probes are never refused for load: a liveness probe failing under a burst
    // would have the orchestrator restart a busy proxy, and lose what it was serving.
    let path = req.path();
    let probe = path == local_routes::HEALTH_ALIVE || path == local_routes::HEALTH_READY;
    let admitted = if probe {
        Ok(None)
    } else {
        streams::enter(&req).map(Some)
    };
    let (res, in_flight) = match admitted {
        Ok(in_flight) => (
            cors::preflight_layer(req, next)
                .await
                .map(ServiceResponse::map_into_left_body),
            in_flight,
        ),
        Err(busy) => (Ok(req.error_response(busy).map_into_right_body()), None),
    };
    if let Ok(r) = &res {
        count(r, by, started);
    }
    if let Some(line) = line {
        line.finish(&res);
    }
    let res = answer::with_dev_page(res?);
    Ok(res.map_body(|_, b| Tracked::new(EitherBody::left(b), in_flight)))
}

/// Counts the answer under who gave it: the proxy for its own refusals, even on a route that
/// would have gone upstream.
fn count<B>(res: &ServiceResponse<B>, by: Answerer, started: Instant) {
    let by = match ProxyError::of(res) {
        Some(e) if e.is_refusal() => Answerer::Proxy,
        _ => by,
    };
    if let Some(state) = res.request().app_data::<web::Data<ProxyState>>() {
        state
            .metrics
            .request(by, res.status().as_u16(), started.elapsed());
    }
}
