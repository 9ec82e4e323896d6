//! A minimal hosted UI, like Ory Network's: `/ui/login`, `/ui/registration`, `/ui/welcome` and
//! `/ui/logout`. Every link and form action is absolute on the base URL, so a proxy in front
//! has to rewrite them. Inputs have stable ids for browser tests.

use std::time::SystemTime;

use actix_web::{web, HttpRequest, HttpResponse};

use super::context::Ctx;
use super::flows;
use super::logout;
use super::model;
use super::respond;
use super::state::{Aal, Flow, FlowKind, UiText};
use ory_proxy::html::escape as esc;

fn message_html(m: &UiText) -> String {
    format!(
        "<p class=\"message {}\" data-id=\"{}\">{}</p>\n",
        m.kind,
        m.id,
        esc(&m.text)
    )
}

fn page(title: &str, body: &str) -> HttpResponse {
    respond::html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} | Ory emulator</title>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n\
         {body}</main>\n</body>\n</html>\n",
        title = esc(title),
    ))
}

/// The form of a flow, its messages and one link to the other flow (for the second factor: a
/// way out, signing out).
fn flow_page(ctx: &Ctx, flow: &Flow) -> HttpResponse {
    let (title, other_id, other_text, other_path) = match (flow.kind, flow.requested_aal) {
        (FlowKind::Login, Aal::Aal2) => (
            "Second factor",
            "logout",
            "Cannot enter a code? Sign out",
            "/ui/logout",
        ),
        (FlowKind::Login, Aal::Aal1) => (
            "Sign in",
            "switch",
            "No account? Sign up",
            "/ui/registration",
        ),
        (FlowKind::Registration, _) => {
            ("Sign up", "switch", "Have an account? Sign in", "/ui/login")
        }
    };
    let mut body = String::new();
    if !flow.messages.is_empty() {
        body.push_str("<div id=\"messages\">\n");
        for m in &flow.messages {
            body.push_str(&message_html(m));
        }
        body.push_str("</div>\n");
    }
    body.push_str(&format!(
        "<form id=\"flow\" action=\"{}\" method=\"POST\">\n",
        esc(&model::flow_action(flow, &ctx.settings))
    ));
    for field in model::fields(flow) {
        let value = esc(&model::field_value(flow, &field));
        let name = field.name;
        if field.input_type == "submit" {
            let label = field.label.map(|(_, t)| t).unwrap_or("Submit");
            body.push_str(&format!(
                "<button type=\"submit\" id=\"submit\" name=\"{name}\" value=\"{value}\">{label}</button>\n"
            ));
            continue;
        }
        if field.input_type == "hidden" {
            body.push_str(&format!(
                "<input type=\"hidden\" id=\"{name}\" name=\"{name}\" value=\"{value}\">\n"
            ));
            continue;
        }
        let label = field.label.map(|(_, t)| t).unwrap_or(name);
        let autocomplete = field.autocomplete.unwrap_or("off");
        body.push_str(&format!(
            "<div>\n<label for=\"{name}\">{label}</label>\n\
             <input type=\"{}\" id=\"{name}\" name=\"{name}\" value=\"{value}\" \
             autocomplete=\"{autocomplete}\" required>\n",
            field.input_type
        ));
        for (_, m) in flow.field_messages.iter().filter(|(n, _)| n == name) {
            body.push_str(&message_html(m));
        }
        body.push_str("</div>\n");
    }
    body.push_str("</form>\n");
    body.push_str(&format!(
        "<p><a id=\"{other_id}\" href=\"{}\">{other_text}</a></p>\n",
        esc(&ctx.settings.url(other_path))
    ));
    page(title, &body)
}

/// Renders the flow named by `?flow=`, or starts a new one when it is missing or stale.
fn show_flow(ctx: &Ctx, req: &HttpRequest, kind: FlowKind) -> HttpResponse {
    let flow = respond::query_param(req, "flow")
        .and_then(|id| ctx.store.flow(&id, kind))
        .filter(|f| !f.is_expired(SystemTime::now()));
    match flow {
        Some(flow) => flow_page(ctx, &flow),
        None => {
            let start = match kind {
                FlowKind::Login => "/self-service/login/browser",
                FlowKind::Registration => "/self-service/registration/browser",
            };
            respond::see_other(&ctx.settings.url(start))
        }
    }
}

pub(crate) async fn login(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    show_flow(&ctx, &req, FlowKind::Login)
}

pub(crate) async fn registration(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    show_flow(&ctx, &req, FlowKind::Registration)
}

/// Who is signed in, with a sign-out link; or links to sign in and up.
pub(crate) async fn welcome(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let body = match ctx.cookie_session(&req) {
        Some((session, identity)) => format!(
            "<p id=\"status\">Signed in as <span id=\"email\">{}</span> \
             (<span id=\"aal\">{}</span>).</p>\n\
             <p><a id=\"logout\" href=\"{}\">Sign out</a></p>\n",
            esc(&identity.email),
            session.aal().as_str(),
            esc(&ctx.settings.url("/ui/logout"))
        ),
        None => format!(
            "<p id=\"status\">You are not signed in.</p>\n\
             <p><a id=\"login\" href=\"{}\">Sign in</a> or \
             <a id=\"registration\" href=\"{}\">sign up</a>.</p>\n",
            esc(&ctx.settings.url("/self-service/login/browser")),
            esc(&ctx.settings.url("/self-service/registration/browser"))
        ),
    };
    page("Welcome", &body)
}

/// Creates a logout token for the browser's session and sends it to the logout endpoint, the
/// way Ory's hosted UI turns `/self-service/logout/browser` into a redirect.
pub(crate) async fn logout(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    match ctx.cookie_session(&req) {
        Some((session, _)) => {
            let token = ctx.store.create_logout_token(&session.token);
            let return_to = respond::query_param(&req, "return_to");
            respond::see_other(&logout::logout_url(&ctx, &token, return_to.as_deref()))
        }
        None => respond::see_other(&ctx.settings.url(flows::WELCOME_PATH)),
    }
}
