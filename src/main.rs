//! `ory-proxy`: parses the flags and hands over to [`ory_proxy::server::main_with`].

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    ory_proxy::server::main_with(ory_proxy::cli::Cli::parse())
}
