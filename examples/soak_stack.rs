//! The soak test's upstreams (`bench/soak.sh`): the demo's Ory emulator and an app with what
//! the soak's traffic needs beside the demo's page: uploads, downloads and a WebSocket.
//! Prints `ORY=<url>` and `APP=<url>` on stdout, then serves until killed.
//!
//!     cargo run --release --example soak_stack -- <proxy port>
//!
//! The app's endpoints:
//! - `GET /`: verifies the proxy's JWT against `http://127.0.0.1:<proxy port>/.ory/jwks.json`
//!   (as the demo app does) and answers `jwt <email>`, `anonymous`, or 401 `refused: <why>`;
//! - `POST /upload`: reads the body, answers its length;
//! - `GET /download?bytes=N`: N bytes, streamed in 64 KiB pieces;
//! - `GET /ws`: WebSocket echo.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::StreamExt as _;
use ory_proxy::emulator::demo_app::JwtVerifier;
use ory_proxy::emulator::{Emulator, EmulatorConfig};

struct AppState {
    verifier: JwtVerifier,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let proxy_port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(4700);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ory = Emulator::start(EmulatorConfig {
        session_lifespan: Duration::from_secs(24 * 3600),
        ..Default::default()
    })?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let app_url = format!("http://{}", listener.local_addr()?);
    let state = web::Data::new(AppState {
        verifier: JwtVerifier::new(
            format!("http://127.0.0.1:{proxy_port}/.ory/jwks.json"),
            ory.url(),
        ),
    });
    println!("ORY={}", ory.url());
    println!("APP={app_url}");
    HttpServer::new(move || {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(5))
            .finish();
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(client))
            .route("/", web::get().to(index))
            .route("/upload", web::post().to(upload))
            .route("/download", web::get().to(download))
            .route("/ws", web::get().to(ws_echo))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}

async fn index(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let Some(authorization) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return HttpResponse::Ok().body("anonymous");
    };
    match state.verifier.verify(&client, authorization).await {
        Ok(claims) => {
            let email = claims["session"]["identity"]["traits"]["email"]
                .as_str()
                .unwrap_or("?")
                .to_owned();
            HttpResponse::Ok().body(format!("jwt {email}"))
        }
        Err(e) => HttpResponse::Unauthorized().body(format!("refused: {e}")),
    }
}

async fn upload(mut body: web::Payload) -> HttpResponse {
    let mut n = 0usize;
    while let Some(piece) = body.next().await {
        match piece {
            Ok(p) => n += p.len(),
            Err(e) => return HttpResponse::BadRequest().body(format!("upload broke: {e}")),
        }
    }
    HttpResponse::Ok().body(n.to_string())
}

async fn download(req: HttpRequest) -> HttpResponse {
    let n: usize =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("bytes")?.parse().ok())
            .unwrap_or(0);
    let piece = Bytes::from(vec![b'x'; 64 * 1024]);
    let pieces = (0..n.div_ceil(piece.len())).map(move |i| {
        let len = (n - i * piece.len()).min(piece.len());
        Ok::<_, std::convert::Infallible>(piece.slice(..len))
    });
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(actix_web::body::SizedStream::new(
            n as u64,
            futures_util::stream::iter(pieces),
        ))
}

async fn ws_echo(req: HttpRequest, body: web::Payload) -> actix_web::Result<HttpResponse> {
    let (res, mut session, mut stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = stream.recv().await {
            let ok = match msg {
                actix_ws::Message::Text(t) => session.text(t).await.is_ok(),
                actix_ws::Message::Binary(b) => session.binary(b).await.is_ok(),
                actix_ws::Message::Ping(p) => session.pong(&p).await.is_ok(),
                actix_ws::Message::Close(reason) => {
                    let _ = session.close(reason).await;
                    return;
                }
                _ => true,
            };
            if !ok {
                return;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(res)
}
