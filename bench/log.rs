//! Micro-benchmarks of one access line, as the worker that served the request pays for it:
//!
//! - `env_logger/devnull`: env_logger's default format written by env_logger to `/dev/null`,
//!   one `write` per line (what a line cost before it was moved off the request path, minus
//!   the pipe or terminal behind stderr).
//! - `env_logger/memory`: the same without the syscall (`Target::Pipe` to `io::sink()`): what
//!   env_logger's own formatting and per-record locking cost.
//! - `front/text`, `front/json`: the proxy's logging front (`server::logging`), whose writer
//!   thread writes to `io::sink()`: format on the worker, hand the bytes to the writer.
//! - `front/log_macro`: a `log::info!` record through the same front.
//!
//!     cargo bench --bench log -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use log::Log as _;

use ory_proxy::server::logging::{self, Access, LogFormat};

const TARGET: &str = "ory_proxy::access";

fn env_logger_to(target: env_logger::Target) -> env_logger::Logger {
    let mut b = env_logger::Builder::new();
    b.filter_level(log::LevelFilter::Info)
        .format_timestamp_millis()
        .target(target);
    b.build()
}

fn env_logger_line(logger: &env_logger::Logger, ms: f64) {
    logger.log(
        &log::Record::builder()
            .level(log::Level::Info)
            .target(TARGET)
            .args(format_args!(
                "{} {} {} {:.3}ms upstream={} auth={}",
                "GET", "/api/items", 200, ms, "app", "jwt"
            ))
            .build(),
    );
}

fn access(ms: f64) -> Access<'static> {
    Access {
        method: "GET",
        path: "/api/items",
        status: 200,
        duration: Duration::from_secs_f64(ms / 1000.0),
        upstream: "app",
        auth: "jwt",
        rule: "default",
        decision: "allow",
    }
}

fn bench(c: &mut Criterion) {
    let devnull = std::fs::File::create("/dev/null").expect("/dev/null");
    let to_devnull = env_logger_to(env_logger::Target::Pipe(Box::new(devnull)));
    c.bench_function("env_logger/devnull", |b| {
        b.iter(|| env_logger_line(&to_devnull, black_box(0.412)))
    });
    let to_memory = env_logger_to(env_logger::Target::Pipe(Box::new(std::io::sink())));
    c.bench_function("env_logger/memory", |b| {
        b.iter(|| env_logger_line(&to_memory, black_box(0.412)))
    });

    logging::init_with_output(false, Box::new(std::io::sink()));
    c.bench_function("front/text", |b| {
        b.iter(|| logging::access(TARGET, &access(black_box(0.412))))
    });
    c.bench_function("front/log_macro", |b| {
        b.iter(|| {
            log::info!(target: TARGET, "{} {} {} {:.3}ms upstream={} auth={}",
                "GET", "/api/items", 200, black_box(0.412), "app", "jwt")
        })
    });
    LogFormat::Json.set_current();
    c.bench_function("front/json", |b| {
        b.iter(|| logging::access(TARGET, &access(black_box(0.412))))
    });
    LogFormat::Text.set_current();
    logging::flush(Duration::from_secs(5));
}

criterion_group!(benches, bench);
criterion_main!(benches);
