//! `ory-proxy`: parses the flags and hands over to [`ory_proxy::server::main_with`].

use std::process::ExitCode;

use clap::error::ContextKind;
use clap::Parser as _;

fn main() -> ExitCode {
    match ory_proxy::cli::Cli::try_parse() {
        Ok(ory_proxy::cli::Cli {
            command: Some(ory_proxy::cli::Command::Keys(keys)),
            ..
        }) => ory_proxy::keys::command::run(&keys),
        Ok(cli) => match ory_proxy::completions::run(&cli) {
            Some(code) => code,
            None => ory_proxy::server::main_with(cli),
        },
        Err(e) if !e.use_stderr() => {
            // Help and version go to stdout with exit 0, as clap prints them.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One clear line on stderr, exit 2 (README, "Flags"). clap's own rendering adds a tip,
            // the usage and a pointer to --help on further lines.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // A typo's nearest flag is the most useful part of clap's tip: keep it.
            let hint = match e.get(ContextKind::SuggestedArg) {
                Some(suggested) => format!("did you mean {suggested}? "),
                None => String::new(),
            };
            eprintln!("ory-proxy: {first} ({hint}see ory-proxy --help)");
            ExitCode::from(2)
        }
    }
}
