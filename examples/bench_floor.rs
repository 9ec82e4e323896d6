//! The benchmark's floor: the least a reverse proxy built on the design card's stack
//! (actix-web serving, awc forwarding) can cost. It forwards every request to one upstream with
//! the same server and client tuning as ory-proxy (Nagle off both ways, 8 KiB write buffer, no
//! pool cap, no redirects, no decompression) and does nothing else: no routing, no header
//! rewriting, no sessions, no CORS, no logging. Whatever ory-proxy costs above this is ours;
//! whatever this costs above nginx is the stack's.
//!
//!     cargo run --release --example bench_floor -- 127.0.0.1:3310 http://127.0.0.1:3100

use actix_service::ServiceExt as _;
use actix_tls::connect::{Connection, Connector as TcpConnector};
use actix_web::body::{BodyStream, SizedStream};
use actix_web::{http::header, web, App, HttpRequest, HttpResponse, HttpServer};
use awc::http::Uri;

const HOP_BY_HOP: [header::HeaderName; 3] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
];

/// The same settings as `ory_proxy::proxy::upstream_client::build`, written out here: calling
/// it would link ory-proxy's TLS setup into a floor that speaks plain HTTP only.
fn client() -> awc::Client {
    let tcp =
        TcpConnector::default()
            .service()
            .map(|conn: Connection<Uri, actix_rt::net::TcpStream>| {
                let _ = conn.io_ref().set_nodelay(true);
                conn
            });
    let connector = awc::Connector::new()
        .connector(tcp)
        .max_http_version(awc::http::Version::HTTP_11)
        .limit(0);
    awc::Client::builder()
        .disable_redirects()
        .disable_timeout()
        .no_default_headers()
        .connector(connector)
        .finish()
}

async fn forward(
    req: HttpRequest,
    body: web::Payload,
    client: web::Data<awc::Client>,
    upstream: web::Data<String>,
) -> HttpResponse {
    let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = client
        .request(req.method().clone(), format!("{}{pq}", upstream.as_str()))
        .no_decompress();
    for (name, value) in req.headers() {
        if !HOP_BY_HOP.contains(name) {
            out = out.append_header((name.clone(), value.clone()));
        }
    }
    let sent = if req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING)
    {
        out.send_stream(body).await
    } else {
        out.send().await
    };
    match sent {
        Ok(answer) => {
            let mut res = HttpResponse::build(answer.status());
            for (name, value) in answer.headers() {
                if !HOP_BY_HOP.contains(name) {
                    res.append_header((name.clone(), value.clone()));
                }
            }
            // Sized when the app said how long, as ory-proxy does, so both frame alike.
            let length = answer
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            match length {
                Some(n) => res.body(SizedStream::new(n, answer)),
                None => res.body(BodyStream::new(answer)),
            }
        }
        Err(e) => HttpResponse::BadGateway().body(e.to_string()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3310".into());
    let upstream = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:3100".into());
    eprintln!("floor proxy on http://{addr} -> {upstream}");
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(client()))
            .app_data(web::Data::new(upstream.clone()))
            .default_service(web::to(forward))
    })
    .tcp_nodelay(true)
    .h1_write_buffer_size(8 * 1024)
    .backlog(4096)
    .bind(addr)?
    .run()
    .await
}
