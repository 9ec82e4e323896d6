//! What the login and registration flows share: creating a browser flow (CSRF cookie + 303 to
//! the UI, or the flow JSON), fetching it, and the submission steps (load, CSRF check, parse,
//! answer with an error or a new session).

use std::collections::HashMap;
use std::time::SystemTime;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::context::Ctx;
use super::cookies;
use super::error::EmulatorError;
use super::model;
use super::respond;
use super::return_to;
use super::state::{Aal, Flow, FlowKind, Identity, Session, UiText};

/// Where Kratos sends the browser after a flow when no `return_to` was given.
pub(crate) const WELCOME_PATH: &str = "/ui/welcome";

fn after_flow_url(ctx: &Ctx, return_to: Option<&str>) -> String {
    return_to
        .map(str::to_owned)
        .unwrap_or_else(|| ctx.settings.url(WELCOME_PATH))
}

/// `GET /self-service/{login,registration}/browser`. A login with `?aal=aal2` asks a
/// signed-in user for the second factor.
pub(crate) fn create_browser_flow(
    ctx: &Ctx,
    req: &HttpRequest,
    kind: FlowKind,
) -> Result<HttpResponse, EmulatorError> {
    // Checked first, as Kratos does: an open redirect is refused signed in or not.
    let return_to = return_to::checked(ctx, respond::query_param(req, "return_to").as_deref())?;
    let refresh = respond::query_param(req, "refresh").as_deref() == Some("true");
    let aal = match kind {
        FlowKind::Login => requested_aal(req)?,
        FlowKind::Registration => Aal::Aal1,
    };
    let session_aal = ctx.cookie_session(req).map(|(session, _)| session.aal());
    match session_aal {
        // The second factor needs the first: there is no session to upgrade.
        None if aal > Aal::Aal1 => return Err(EmulatorError::SessionAal1Required),
        // Kratos refuses a new login/registration for a level the session has already.
        Some(has) if !refresh && aal <= has => {
            if respond::wants_json(req) {
                return Err(EmulatorError::SessionAlreadyAvailable);
            }
            return Ok(respond::see_other(&after_flow_url(
                ctx,
                return_to.as_deref(),
            )));
        }
        _ => {}
    }
    // Reuse the browser's CSRF token: several tabs may run flows side by side.
    let csrf_token = cookies::get(req, &ctx.settings.csrf_cookie_name)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let request_url = ctx.settings.url(
        req.uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or(""),
    );
    let mut flow = Flow::new(kind, csrf_token, return_to, request_url);
    if aal == Aal::Aal2 {
        flow.requested_aal = Aal::Aal2;
        flow.messages.push(UiText::info(
            1010004,
            "Please complete the second authentication challenge.",
        ));
    }
    ctx.store.insert_flow(flow.clone());

    let mut res = if respond::wants_json(req) {
        respond::json(StatusCode::OK, &model::flow_json(&flow, &ctx.settings))
    } else {
        let (_, ui) = model::flow_paths(kind);
        respond::see_other(&ctx.settings.url(&format!("{ui}?flow={}", flow.id)))
    };
    append_set_cookie(&mut res, &cookies::csrf(&ctx.settings, &flow.csrf_token));
    Ok(res)
}

/// `?aal=`: empty or `aal1` for the first factor, `aal2` for the second.
fn requested_aal(req: &HttpRequest) -> Result<Aal, EmulatorError> {
    match respond::query_param(req, "aal").as_deref() {
        None | Some("aal1") => Ok(Aal::Aal1),
        Some("aal2") => Ok(Aal::Aal2),
        Some(other) => Err(EmulatorError::BadRequest(format!(
            "Unable to parse AuthenticationMethod Assurance Level (AAL): expected one of \
             [aal1, aal2] but got {other}"
        ))),
    }
}

/// `GET /self-service/{login,registration}/flows?id=<id>`.
pub(crate) fn get_flow(
    ctx: &Ctx,
    req: &HttpRequest,
    kind: FlowKind,
) -> Result<HttpResponse, EmulatorError> {
    let flow = live_flow(ctx, req, "id", kind)?;
    Ok(respond::json(
        StatusCode::OK,
        &model::flow_json(&flow, &ctx.settings),
    ))
}

/// The unexpired flow named by the query parameter `param`.
fn live_flow(
    ctx: &Ctx,
    req: &HttpRequest,
    param: &str,
    kind: FlowKind,
) -> Result<Flow, EmulatorError> {
    let id = respond::query_param(req, param).ok_or(EmulatorError::MissingFlowId)?;
    let flow = ctx
        .store
        .flow(&id, kind)
        .ok_or(EmulatorError::FlowNotFound)?;
    if flow.is_expired(SystemTime::now()) {
        return Err(EmulatorError::FlowExpired);
    }
    Ok(flow)
}

/// The flow named by `?flow=` of a submission, if it can still be submitted.
/// A submission's form or JSON fields.
pub(crate) type Fields = HashMap<String, String>;

/// The start of every submission: the flow still open, the fields parsed, CSRF checked, old
/// messages cleared, and the flow's method (`password`, or `totp` for a second factor;
/// anything else is answered with the flow and `no_strategy`, Kratos' message for it).
/// `Ok(Err(answer))` means the answer is ready.
pub(crate) fn begin_submit(
    ctx: &Ctx,
    req: &HttpRequest,
    body: &[u8],
    kind: FlowKind,
    no_strategy: (u32, &str),
) -> Result<Result<(Flow, Fields), HttpResponse>, EmulatorError> {
    let mut flow = load_for_submit(ctx, req, kind)?;
    let fields = parse_submission(req, body)?;
    check_csrf(ctx, req, &flow, &fields)?;
    flow.messages.clear();
    flow.field_messages.clear();
    let method = fields
        .get("method")
        .map(String::as_str)
        .unwrap_or(flow.method());
    if method != flow.method() {
        let (id, text) = no_strategy;
        flow.messages
            .push(UiText::error(id, format!("{text}: {method}")));
        return Ok(Err(reject(ctx, req, flow)));
    }
    Ok(Ok((flow, fields)))
}

fn load_for_submit(ctx: &Ctx, req: &HttpRequest, kind: FlowKind) -> Result<Flow, EmulatorError> {
    live_flow(ctx, req, "flow", kind)
}

/// The submitted fields, from a form or a JSON body. Nested JSON objects are flattened with
/// dots (`{"traits":{"email":..}}` → `traits.email`), which is how the form names them.
pub(crate) fn parse_submission(
    req: &HttpRequest,
    body: &[u8],
) -> Result<HashMap<String, String>, EmulatorError> {
    let content_type = respond::header_str(req, header::CONTENT_TYPE);
    if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| EmulatorError::BadRequest(format!("Unable to decode JSON body: {e}")))?;
        let Value::Object(map) = value else {
            return Err(EmulatorError::BadRequest(
                "The JSON body must be an object.".to_owned(),
            ));
        };
        let mut fields = HashMap::new();
        flatten("", &Value::Object(map), &mut fields);
        Ok(fields)
    } else if content_type.is_empty()
        || content_type.starts_with("application/x-www-form-urlencoded")
    {
        Ok(url::form_urlencoded::parse(body).into_owned().collect())
    } else {
        Err(EmulatorError::BadRequest(format!(
            "Unable to decode body because HTTP Request Content-Type \"{content_type}\" is unknown."
        )))
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// Browser flows are CSRF-protected: the CSRF cookie and the submitted token must both match
/// the token the flow was created with.
pub(crate) fn check_csrf(
    ctx: &Ctx,
    req: &HttpRequest,
    flow: &Flow,
    fields: &HashMap<String, String>,
) -> Result<(), EmulatorError> {
    let cookie = cookies::get(req, &ctx.settings.csrf_cookie_name);
    let submitted = fields.get("csrf_token");
    let ok = cookie.as_deref() == Some(flow.csrf_token.as_str())
        && submitted.map(String::as_str) == Some(flow.csrf_token.as_str());
    if ok {
        Ok(())
    } else {
        Err(EmulatorError::CsrfViolation)
    }
}

/// The submission failed validation: keep the messages in the flow and show it again (303 to
/// the UI for a browser, 400 with the flow for JSON).
pub(crate) fn reject(ctx: &Ctx, req: &HttpRequest, mut flow: Flow) -> HttpResponse {
    flow.updated_at = SystemTime::now();
    flow.active = Some(flow.method());
    ctx.store.update_flow(flow.clone());
    if respond::wants_json(req) {
        respond::json(
            StatusCode::BAD_REQUEST,
            &model::flow_json(&flow, &ctx.settings),
        )
    } else {
        let (_, ui) = model::flow_paths(flow.kind);
        respond::see_other(&ctx.settings.url(&format!("{ui}?flow={}", flow.id)))
    }
}

/// The submission succeeded and `session` was created (or upgraded): set the session cookie,
/// then 303 to the flow's `return_to` (or the welcome page), or 200 with `body` for JSON
/// clients. An upgraded session keeps its token, and Kratos sends its cookie again all the
/// same.
pub(crate) fn succeed(
    ctx: &Ctx,
    req: &HttpRequest,
    flow: &Flow,
    session: &Session,
    body: Value,
) -> HttpResponse {
    ctx.store.remove_flow(&flow.id);
    let mut res = if respond::wants_json(req) {
        respond::json(StatusCode::OK, &body)
    } else {
        respond::see_other(&after_flow_url(ctx, flow.return_to.as_deref()))
    };
    append_set_cookie(&mut res, &cookies::session(&ctx.settings, &session.token));
    res
}

/// The `{"session": ..}` body of a successful browser submission (browser flows never return
/// the session token itself: the cookie is the credential).
pub(crate) fn session_body(ctx: &Ctx, session: &Session, identity: &Identity) -> Value {
    json!({ "session": model::session_json(session, identity, &ctx.settings) })
}

/// Adds one `Set-Cookie` line; a value that is not a valid header is dropped rather than
/// panicking (cookie values here are generated, so this does not happen in practice).
pub(crate) fn append_set_cookie(res: &mut HttpResponse, cookie: &str) {
    if let Ok(value) = header::HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
}
