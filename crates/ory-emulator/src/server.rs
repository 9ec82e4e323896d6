//! The route table and the server's own thread with its own actix `System`, so the emulator
//! runs the same under `#[actix_web::test]`, `#[tokio::test]`, plain sync code and examples.

use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use super::context::Ctx;
use super::error;
use super::{login, logout, meta, middleware, model, registration, ui, whoami};

/// Every route, with a JSON 405 for wrong methods and a JSON 404 for unknown paths.
fn routes(cfg: &mut web::ServiceConfig) {
    let resource =
        |path: &str| web::resource(path).default_service(web::to(error::method_not_allowed));
    cfg.service(resource("/sessions/whoami").route(web::get().to(whoami::whoami)))
        .service(resource("/self-service/login/browser").route(web::get().to(login::browser)))
        .service(resource("/self-service/login/flows").route(web::get().to(login::get_flow)))
        .service(resource("/self-service/login").route(web::post().to(login::submit)))
        .service(
            resource("/self-service/registration/browser")
                .route(web::get().to(registration::browser)),
        )
        .service(
            resource("/self-service/registration/flows")
                .route(web::get().to(registration::get_flow)),
        )
        .service(resource("/self-service/registration").route(web::post().to(registration::submit)))
        .service(resource("/self-service/logout/browser").route(web::get().to(logout::browser)))
        .service(resource("/self-service/logout").route(web::get().to(logout::submit)))
        .service(resource("/self-service/logout/api").route(web::delete().to(logout::api)))
        .service(resource("/health/alive").route(web::get().to(meta::health)))
        .service(resource("/health/ready").route(web::get().to(meta::health)))
        .service(resource(model::SCHEMA_PATH).route(web::get().to(meta::identity_schema)))
        .service(resource("/ui/login").route(web::get().to(ui::login)))
        .service(resource("/ui/registration").route(web::get().to(ui::registration)))
        .service(resource("/ui/welcome").route(web::get().to(ui::welcome)))
        .service(resource("/ui/logout").route(web::get().to(ui::logout)))
        .default_service(web::to(error::not_found));
}

/// A running server: the handle to stop it and the thread that runs it.
pub(crate) struct Running {
    pub handle: ServerHandle,
    pub thread: JoinHandle<()>,
}

/// Starts serving `listener` on a new thread and returns once the server is running.
pub(crate) fn spawn(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<Running> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("ory-emulator".to_owned())
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::from(ctx);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        // Plenty for any form; larger bodies get actix' 413.
                        .app_data(web::PayloadConfig::new(1 << 20))
                        .configure(routes)
                        .wrap(from_fn(middleware::gzip))
                        .wrap(from_fn(middleware::record))
                })
                // One worker: handlers are cheap and async, and the machines have few cores.
                .workers(1)
                // Tests and demos own the process' signals, not the emulator.
                .disable_signals()
                .shutdown_timeout(1);
                let server = match tls {
                    Some(tls) => server.listen_rustls_0_23(listener, (*tls).clone()),
                    None => server.listen(listener),
                };
                let server = match server {
                    Ok(server) => server.run(),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                if tx.send(Ok(server.handle())).is_err() {
                    return;
                }
                if let Err(e) = server.await {
                    log::warn!("ory emulator stopped with an error: {e}");
                }
            });
        })?;
    match rx.recv() {
        Ok(Ok(handle)) => Ok(Running { handle, thread }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(std::io::Error::other(
                "the emulator thread ended before listening",
            ))
        }
    }
}
