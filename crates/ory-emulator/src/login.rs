//! The browser login flow: `/self-service/login/browser`, `/self-service/login/flows`,
//! `POST /self-service/login` with the password method, or with the one-time code of the
//! second factor ([`second_factor`](super::second_factor)) in an `aal2` flow.

use actix_web::{web, HttpRequest, HttpResponse};

use super::context::Ctx;
use super::error::EmulatorError;
use super::flows::{self, Fields};
use super::second_factor;
use super::state::{Aal, Flow, FlowKind, UiText};

pub(crate) async fn browser(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
) -> Result<HttpResponse, EmulatorError> {
    flows::create_browser_flow(&ctx, &req, FlowKind::Login)
}

pub(crate) async fn get_flow(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
) -> Result<HttpResponse, EmulatorError> {
    flows::get_flow(&ctx, &req, FlowKind::Login)
}

pub(crate) async fn submit(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, EmulatorError> {
    let (flow, fields) = match flows::begin_submit(
        &ctx,
        &req,
        &body,
        FlowKind::Login,
        (4010002, "Could not find a strategy to log you in with"),
    )? {
        Ok(started) => started,
        Err(answer) => return Ok(answer),
    };
    match flow.requested_aal {
        Aal::Aal1 => password(&ctx, &req, flow, &fields),
        Aal::Aal2 => second_factor::submit(&ctx, &req, flow, &fields),
    }
}

/// The first factor: identifier and password; a new `aal1` session.
fn password(
    ctx: &Ctx,
    req: &HttpRequest,
    mut flow: Flow,
    fields: &Fields,
) -> Result<HttpResponse, EmulatorError> {
    let identifier = fields
        .get("identifier")
        .or_else(|| fields.get("password_identifier"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let password = fields.get("password").cloned().unwrap_or_default();
    flow.values
        .insert("identifier".to_owned(), identifier.clone());
    for (name, value) in [("identifier", &identifier), ("password", &password)] {
        if value.is_empty() {
            flow.field_messages.push((
                name.to_owned(),
                UiText::error(4000002, format!("Property {name} is missing.")),
            ));
        }
    }
    if !flow.field_messages.is_empty() {
        return Ok(flows::reject(ctx, req, flow));
    }

    let Some(identity) = ctx.store.check_password(&identifier, &password) else {
        flow.messages.push(UiText::error(
            4000006,
            "The provided credentials are invalid, check for spelling mistakes in your \
             password or username, email address, or phone number.",
        ));
        return Ok(flows::reject(ctx, req, flow));
    };
    let session = ctx.start_session(&identity, req);
    let body = flows::session_body(ctx, &session, &identity);
    Ok(flows::succeed(ctx, req, &flow, &session, body))
}
