//! The demo: a small web app behind the proxy, as a real app would be written, and
//! [`DemoStack`], which runs it with the [emulator](crate) and the proxy in one process. Used by
//! `cargo run --example demo` and by the demo and browser tests, so they cannot drift apart.
//!
//! The app has three pages. `/` is open to all: the proxy sends it `Authorization: Bearer <JWT>`
//! when the visitor has an Ory session; the app verifies the token against the proxy's
//! `/.ory/jwks.json` ([`JwtVerifier`]) and shows who is signed in, or links to sign in and up.
//! `/account` and `/admin` are protected by the proxy's access rules ([`DEMO_ACCESS_RULES`]): a
//! session for the first, a second factor (`aal2`) for the second. The app itself checks
//! nothing there; it shows who the proxy let in, from the token and the identity headers.

mod logout;
mod page;
mod stack;
mod verify;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

pub use stack::{DemoError, DemoOptions, DemoStack, DEMO_ACCESS_RULES};
pub use verify::{JwtVerifier, VerifyError};

/// How long the app waits for the proxy (JWKS, logout URL).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// What the app needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The URL visitors open (the proxy's `PUBLISH_URL`), no trailing slash: where Ory's flows
    /// return to.
    pub publish_url: String,
    /// The proxy's `/.ory` prefix as the app reaches it, no trailing slash, for server-side
    /// calls to Ory (`http://127.0.0.1:<proxy port>/.ory`).
    pub ory_url: String,
    /// The issuer the tokens must name (the proxy's `[jwt].issuer`, by default the Ory URL).
    pub issuer: String,
}

/// What every worker shares.
struct AppState {
    config: AppConfig,
    verifier: JwtVerifier,
}

/// Builds the app's server on `listener`. It ignores OS signals: whoever runs it stops it
/// through the server's handle (the demo after the proxy has stopped).
pub fn serve(listener: TcpListener, config: AppConfig) -> std::io::Result<actix_web::dev::Server> {
    let verifier = JwtVerifier::new(format!("{}/jwks.json", config.ory_url), &config.issuer);
    let state = web::Data::new(AppState { config, verifier });
    let server = HttpServer::new(move || {
        // awc clients are per thread; one per worker.
        let client = awc::Client::builder()
            .timeout(UPSTREAM_TIMEOUT)
            .disable_redirects()
            .finish();
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(client))
            .route("/", web::get().to(index))
            .route("/account", web::get().to(account))
            .route("/admin", web::get().to(admin))
    })
    // One worker is plenty for a demo and keeps the machine free for the browser.
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

/// `GET /account`: any signed-in visitor (the proxy's `session` rule).
async fn account(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    protected(&req, &state, &client, page::Protected::Account).await
}

/// `GET /admin`: a visitor who completed the second factor (the proxy's `aal2` rule).
async fn admin(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    protected(&req, &state, &client, page::Protected::Admin).await
}

/// A protected page: what the proxy let through, read from the verified token and the
/// identity headers.
async fn protected(
    req: &HttpRequest,
    state: &AppState,
    client: &awc::Client,
    which: page::Protected,
) -> HttpResponse {
    let claims = match req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        None => Err("the proxy sent no token".to_owned()),
        Some(authorization) => state
            .verifier
            .verify(client, authorization)
            .await
            .map_err(|e| format!("token refused: {e}")),
    };
    let identity_header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let asked = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |pq| pq.as_str().to_owned());
    let headers = page::IdentityHeaders {
        email: identity_header(stack::EMAIL_HEADER),
        user: identity_header(stack::USER_HEADER),
    };
    html_page(page::protected(which, claims.as_ref(), &headers, &asked))
}

fn html_page(html: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        // The page depends on the session: no cache may keep it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// `GET /`: the signed-in page when the proxy sent a token that verifies, else signed out.
async fn index(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let publish_url = &state.config.publish_url;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let html = match authorization {
        None => page::signed_out(publish_url, None),
        Some(authorization) => match state.verifier.verify(&client, authorization).await {
            Ok(claims) => {
                // A client may split its cookies over several headers; Ory needs them all.
                let cookie = req
                    .headers()
                    .get_all(header::COOKIE)
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join("; ");
                let logout = logout::logout_url(
                    &client,
                    &state.config.ory_url,
                    &cookie,
                    &format!("{publish_url}/"),
                )
                .await;
                if let Err(e) = &logout {
                    log::warn!("demo app: no logout URL: {e}");
                }
                page::signed_in(&claims, logout.as_deref().map_err(String::as_str))
            }
            Err(e) => {
                log::warn!("demo app: token refused: {e}");
                page::signed_out(publish_url, Some(&e.to_string()))
            }
        },
    };
    html_page(html)
}
