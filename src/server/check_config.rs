//! `--check-config`: the effective configuration, or with `--explain "GET /path"` what the
//! access rules do with that request. Nothing is bound or started.

use std::process::ExitCode;

use super::logging;
use crate::access::explain::{explain, Asked};
use crate::config::{Loaded, Loader};
use crate::proxy::route::{self, Upstream};

/// Loads the settings and prints what was asked: exit 0 when they are valid, 1 when not, 2 for
/// a request to explain that is not one.
pub(super) fn run(loader: &Loader, explain_request: Option<&str>) -> ExitCode {
    let asked = match explain_request.map(Asked::parse).transpose() {
        Ok(a) => a,
        Err(e) => {
            logging::print_before_exit(&format!("ory-proxy: --explain {e}\n"));
            return ExitCode::from(2);
        }
    };
    match loader.load() {
        Ok(l) => {
            match asked {
                Some(a) => print!("{}", explanation(&l, &a)),
                None => print!("{}", crate::config::print::effective_config(&l)),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            logging::print_before_exit(&format!("ory-proxy: invalid configuration: {e}\n"));
            ExitCode::from(1)
        }
    }
}

/// The access rules' view of `asked`; requests under `/.ory` are routed before any rule.
fn explanation(loaded: &Loaded, asked: &Asked) -> String {
    if route::route(&asked.path_and_query).upstream == Upstream::Ory {
        return format!(
            "{} {}\n  goes to Ory, or is one of the proxy's own routes (JWKS, health): access rules never apply\n",
            asked.method, asked.path_and_query
        );
    }
    explain(&loaded.settings.live.access, asked)
}
