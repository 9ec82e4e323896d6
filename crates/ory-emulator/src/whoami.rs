//! `GET /sessions/whoami`: the session behind a cookie, `X-Session-Token` or bearer token.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::context::Ctx;
use super::error::EmulatorError;
use super::model;
use super::respond;

/// The credential of a whoami request. Like Kratos, an explicit token (header) wins over the
/// cookie, and a bad token is not rescued by a good cookie.
fn credential(ctx: &Ctx, req: &HttpRequest) -> Option<String> {
    let token_header = req
        .headers()
        .get("x-session-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(token) = token_header {
        return Some(token.to_owned());
    }
    let bearer = respond::header_str(req, header::AUTHORIZATION);
    let bearer = bearer
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .map(|_| bearer[7..].trim())
        .filter(|t| !t.is_empty());
    if let Some(token) = bearer {
        return Some(token.to_owned());
    }
    ctx.cookie_token(req)
}

pub(crate) async fn whoami(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
) -> Result<HttpResponse, EmulatorError> {
    ctx.store.count_whoami();
    // Decided on arrival, delivered after the delay, as by an Ory far away: a logout that lands
    // meanwhile does not change an answer already on its way back.
    let answer = answer(&ctx, &req);
    let delay = ctx.store.whoami_delay();
    if !delay.is_zero() {
        actix_rt::time::sleep(delay).await;
    }
    if ctx.store.whoami_trickle() {
        return Ok(trickle());
    }
    answer
}

/// A 200 whose body never quite arrives: JSON whitespace, a byte a second, for a minute.
fn trickle() -> HttpResponse {
    let body = futures_util::stream::unfold(0u32, |sent| async move {
        if sent > 0 {
            actix_rt::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        (sent < 60).then(|| {
            (
                Ok::<_, actix_web::Error>(bytes::Bytes::from_static(b" ")),
                sent + 1,
            )
        })
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .streaming(body)
}

fn answer(ctx: &Ctx, req: &HttpRequest) -> Result<HttpResponse, EmulatorError> {
    if let Some(status) = ctx.store.whoami_failure() {
        return Err(EmulatorError::Injected(status));
    }
    let token = credential(ctx, req).ok_or(EmulatorError::Unauthorized)?;
    let (session, identity) = ctx
        .store
        .active_session(&token)
        .ok_or(EmulatorError::Unauthorized)?;
    let body = model::session_json(&session, &identity, &ctx.settings);
    let mut res = respond::json(StatusCode::OK, &body);
    // Kratos names the identity in a header so that gateways need not parse the body.
    if let Ok(value) = header::HeaderValue::from_str(&identity.id) {
        res.headers_mut().insert(
            header::HeaderName::from_static("x-kratos-authenticated-identity-id"),
            value,
        );
    }
    Ok(res)
}
