//! The browser logout flow: `/self-service/logout/browser` hands out a logout URL with a
//! one-time token; `/self-service/logout?token=` revokes the session and clears the cookie.
//! Native apps log out with `DELETE /self-service/logout/api`, naming the session token in the
//! body.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::context::Ctx;
use super::cookies;
use super::error::EmulatorError;
use super::flows;
use super::respond;

/// The absolute logout URL for a token, keeping the caller's `return_to`.
pub(crate) fn logout_url(ctx: &Ctx, token: &str, return_to: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("token", token);
    if let Some(return_to) = return_to {
        query.append_pair("return_to", return_to);
    }
    ctx.settings
        .url(&format!("/self-service/logout?{}", query.finish()))
}

/// `GET /self-service/logout/browser`: needs the session cookie (not a token, as in Kratos).
pub(crate) async fn browser(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
) -> Result<HttpResponse, EmulatorError> {
    let (session, _) = ctx
        .cookie_session(&req)
        .ok_or(EmulatorError::Unauthorized)?;
    let token = ctx.store.create_logout_token(&session.token);
    let return_to = respond::query_param(&req, "return_to");
    let body = json!({
        "logout_url": logout_url(&ctx, &token, return_to.as_deref()),
        "logout_token": token,
    });
    Ok(respond::json(StatusCode::OK, &body))
}

/// `GET /self-service/logout?token=<t>[&return_to=]`.
pub(crate) async fn submit(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
) -> Result<HttpResponse, EmulatorError> {
    let token = respond::query_param(&req, "token").ok_or(EmulatorError::InvalidLogoutToken)?;
    if !ctx.store.logout(&token) {
        return Err(EmulatorError::InvalidLogoutToken);
    }
    // AJAX clients get 204 instead of a redirect, as in Kratos.
    let mut res = if respond::wants_json(&req) {
        HttpResponse::NoContent().finish()
    } else {
        let return_to = respond::query_param(&req, "return_to")
            .unwrap_or_else(|| ctx.settings.url(flows::WELCOME_PATH));
        respond::see_other(&return_to)
    };
    flows::append_set_cookie(
        &mut res,
        &cookies::clear(&ctx.settings, &ctx.settings.session_cookie_name),
    );
    Ok(res)
}

#[derive(Deserialize)]
struct NativeLogout {
    #[serde(default)]
    session_token: String,
}

/// `DELETE /self-service/logout/api` with `{"session_token": "..."}`: 204 when the token had a
/// session (revoked now or before), 403 when it had none (an empty or missing one included),
/// 400 when the body is not JSON, as in Kratos.
pub(crate) async fn api(
    ctx: web::Data<Ctx>,
    body: web::Bytes,
) -> Result<HttpResponse, EmulatorError> {
    let request: NativeLogout = serde_json::from_slice(&body)
        .map_err(|e| EmulatorError::BadRequest(format!("The request body is not valid: {e}")))?;
    if !ctx.store.logout_session_token(&request.session_token) {
        return Err(EmulatorError::UnknownSessionToken);
    }
    Ok(HttpResponse::NoContent().finish())
}
