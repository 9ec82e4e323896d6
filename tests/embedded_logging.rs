//! The proxy run as a library under a logger of the embedder's own (as the demo installs
//! env_logger itself): whether an access line is written is that logger's answer, at the
//! level it allows. The proxy's own logging front asks its filter once at start; without that
//! front the installed logger must still be asked.
//!
//! One test in this file: it takes the process's logger and its stderr.

use std::io::{Read as _, Seek as _};
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use ory_emulator::demo_app::{DemoOptions, DemoStack};

/// A logger that lets everything through and writes nothing (the proxy writes its access
/// lines itself, to stderr, without a logging front of its own).
struct Open;

impl log::Log for Open {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &log::Record<'_>) {}
    fn flush(&self) {}
}

/// Stderr (fd 2) sent to a file while this lives; put back on drop.
struct StderrToFile {
    saved: i32,
    file: std::fs::File,
}

impl StderrToFile {
    fn new() -> StderrToFile {
        let file = tempfile::tempfile().expect("a temporary file");
        // SAFETY: dup/dup2 on descriptors this process owns; fd 2 is put back on drop.
        let saved = unsafe { libc::dup(2) };
        assert!(saved >= 0, "dup(2)");
        assert!(unsafe { libc::dup2(file.as_raw_fd(), 2) } >= 0, "dup2");
        StderrToFile { saved, file }
    }

    fn text(&mut self) -> String {
        let mut s = String::new();
        self.file.rewind().expect("rewind");
        self.file.read_to_string(&mut s).expect("read");
        s
    }
}

impl Drop for StderrToFile {
    fn drop(&mut self) {
        // SAFETY: as in new.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
    }
}

fn access_lines(text: &str, start: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("ory_proxy::access] ") && l.contains(start))
        .map(str::to_string)
        .collect()
}

#[actix_web::test]
async fn an_embedders_logger_decides_whether_access_lines_are_written() {
    log::set_boxed_logger(Box::new(Open)).expect("the only logger of this process");
    log::set_max_level(log::LevelFilter::Info);
    ory_proxy::config::log_level_owned_by_env();
    let mut stderr = StderrToFile::new();
    let demo = DemoStack::start(DemoOptions {
        port: Some(0),
        publish_url: None,
    })
    .expect("the demo starts");
    let client = awc::Client::default();

    let res = client
        .get(format!("{}/?seen=1", demo.url()))
        .send()
        .await
        .expect("the proxy answers");
    let status = res.status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while seen.is_empty() && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        seen = access_lines(&stderr.text(), "GET / ");
    }

    // The embedder's level turns them off, live.
    log::set_max_level(log::LevelFilter::Warn);
    let quiet = client
        .get(format!("{}/quiet", demo.url()))
        .send()
        .await
        .expect("the proxy answers")
        .status();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let text = stderr.text();
    drop(stderr);

    assert!(status.is_success(), "{status}");
    assert!(quiet.as_u16() < 500, "{quiet}");
    assert_eq!(seen.len(), 1, "one access line for GET /: {text}");
    assert!(seen[0].contains(" 200 "), "{}", seen[0]);
    assert!(seen[0].contains("upstream=app"), "{}", seen[0]);
    assert!(
        !seen[0].contains("seen=1"),
        "the query stays out: {}",
        seen[0]
    );
    assert_eq!(access_lines(&text, "GET /quiet"), Vec::<String>::new());
}
