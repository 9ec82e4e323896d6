//! Shell completions and the man page, generated from the clap definition of the flags in
//! [`crate::cli`], so they cannot drift from it. Reached through two hidden flags,
//! `--completions <SHELL>` and `--man`: they are for packagers, and stay out of `--help`.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;

/// Handles `--completions`/`--man`: `Some(exit code)` when one was given (output written to
/// stdout), `None` when the proxy should run.
pub fn run(cli: &Cli) -> Option<ExitCode> {
    let mut out = std::io::stdout().lock();
    let written = match (cli.completions, cli.man) {
        (Some(shell), _) => completions(shell, &mut out),
        (None, true) => man(&mut out),
        (None, false) => return None,
    };
    Some(match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ory-proxy: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    })
}

/// The completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    // clap_complete writes straight to `out` and cannot report a failed write: render into
    // memory first, so that a closed pipe is an error here and not a panic.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ory-proxy", &mut script);
    out.write_all(&script)
}

/// The man page, roff source (`ory-proxy --man | man -l -`).
pub fn man(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(Cli::command())
        .date(crate::version::BUILD_DATE)
        .render(out)
}
