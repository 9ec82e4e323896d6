//! The benchmark's upstream app: as fast as an app can be, so the proxy's cost shows.
//! `/` answers ~1 KiB of HTML, `/big` 1 MiB. One worker.
//!
//!     cargo run --release --example bench_app -- 127.0.0.1:3100

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3100".into());
    let page = Bytes::from(format!(
        "<!doctype html><html><head><title>bench</title></head><body>{}</body></html>",
        "<p>lorem ipsum dolor sit amet</p>".repeat(30)
    ));
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    eprintln!(
        "bench app on http://{addr} (/ = {} bytes, /big = {} bytes)",
        page.len(),
        big.len()
    );
    HttpServer::new(move || {
        let (page, big) = (page.clone(), big.clone());
        App::new()
            .route(
                "/",
                web::get().to(move || {
                    let page = page.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("text/html; charset=utf-8")
                            .body(page)
                    }
                }),
            )
            .route(
                "/big",
                web::get().to(move || {
                    let big = big.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/octet-stream")
                            .body(big)
                    }
                }),
            )
    })
    .workers(1)
    .tcp_nodelay(true)
    .backlog(4096)
    .bind(addr)?
    .run()
    .await
}
