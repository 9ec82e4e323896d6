//! The browser registration flow: `/self-service/registration/browser`,
//! `/self-service/registration/flows`, `POST /self-service/registration` with the password
//! method. A successful registration signs the new identity in, as Kratos' `session` hook does.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::context::Ctx;
use super::error::EmulatorError;
use super::flows;
use super::model;
use super::state::{CreateIdentityError, FlowKind, UiText};

/// Kratos' default minimum password length.
const MIN_PASSWORD_LEN: usize = 8;

pub(crate) async fn browser(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
) -> Result<HttpResponse, EmulatorError> {
    flows::create_browser_flow(&ctx, &req, FlowKind::Registration)
}

pub(crate) async fn get_flow(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
) -> Result<HttpResponse, EmulatorError> {
    flows::get_flow(&ctx, &req, FlowKind::Registration)
}

pub(crate) async fn submit(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, EmulatorError> {
    let (mut flow, fields) = match flows::begin_submit(
        &ctx,
        &req,
        &body,
        FlowKind::Registration,
        (4000001, "Could not find a strategy to sign you up with"),
    )? {
        Ok(started) => started,
        Err(answer) => return Ok(answer),
    };
    let email = fields
        .get("traits.email")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let password = fields.get("password").cloned().unwrap_or_default();
    flow.values.insert("traits.email".to_owned(), email.clone());

    if email.is_empty() {
        flow.field_messages.push((
            "traits.email".to_owned(),
            UiText::error(4000002, "Property email is missing."),
        ));
    } else if !looks_like_email(&email) {
        flow.field_messages.push((
            "traits.email".to_owned(),
            UiText::error(4000001, format!("\"{email}\" is not valid \"email\"")),
        ));
    }
    let password_len = password.chars().count();
    if password.is_empty() {
        flow.field_messages.push((
            "password".to_owned(),
            UiText::error(4000002, "Property password is missing."),
        ));
    } else if password_len < MIN_PASSWORD_LEN {
        flow.field_messages.push((
            "password".to_owned(),
            UiText::error(
                4000032,
                format!(
                    "The password must be at least {MIN_PASSWORD_LEN} characters long, but got {password_len}."
                ),
            ),
        ));
    }
    if !flow.field_messages.is_empty() {
        return Ok(flows::reject(&ctx, &req, flow));
    }

    let identity = match ctx.store.create_identity(&email, Some(&password)) {
        Ok(identity) => identity,
        Err(CreateIdentityError::Duplicate) => {
            flow.messages.push(UiText::error(
                4000007,
                "An account with the same identifier (email, phone, username, ...) exists \
                 already.",
            ));
            return Ok(flows::reject(&ctx, &req, flow));
        }
    };
    let session = ctx.start_session(&identity, &req);
    let mut body = flows::session_body(&ctx, &session, &identity);
    if let Value::Object(obj) = &mut body {
        obj.insert(
            "identity".to_owned(),
            model::identity_json(&identity, &ctx.settings),
        );
    }
    Ok(flows::succeed(&ctx, &req, &flow, &session, body))
}

/// The format check of the identity schema's `"format": "email"`, loosely.
fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}
