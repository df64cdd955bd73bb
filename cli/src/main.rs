//! The `stde` binary: command-line parsing, dispatch to the subcommands, and the mapping of every
//! failure to one `error: …` line and an exit code (0 ok, 1 runtime failure, 2 bad input).

mod args;
mod backends;
mod bench;
mod config;
mod error;
mod history;
mod list;
mod plot;
mod system;
mod train;
mod web;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::EXIT_INPUT;

/// `println!` that ignores a closed stdout (`stde list | head` must not panic).
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use ::std::io::Write as _;
        let _ = writeln!(::std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that ignores a closed stderr.
#[macro_export]
macro_rules! note {
    ($($t:tt)*) => {{
        use ::std::io::Write as _;
        let _ = writeln!(::std::io::stderr(), $($t)*);
    }};
}

fn main() -> ExitCode {
    // Mesa's Vulkan drivers print an error line for every instance when this is unset (headless
    // machines, CI); a private temporary directory silences them without changing behaviour. This
    // runs before any thread is started.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = match &cli.command {
        Command::Train(args) => on_worker(|| train::run(args)),
        Command::Bench(args) => on_worker(|| bench::run(args)),
        Command::List => {
            list::run();
            Ok(())
        }
        Command::Web(args) => web::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Runs `f` on a worker of rayon's global pool, so that the CPU backend's parallel kernels start
/// from inside the pool instead of sending every kernel from outside it and sleeping until it ends.
fn on_worker<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    // Called from outside the pool, `scope` runs its body on a worker and blocks this thread once.
    rayon::scope(|_| f())
}

/// Help and version go to stdout as clap formats them; real usage errors become one line.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = e.render().to_string();
            let line = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("Usage:")
                        && !l.starts_with("For more information")
                })
                .collect::<Vec<_>>()
                .join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            note!("error: {line}");
            ExitCode::from(EXIT_INPUT as u8)
        }
    }
}
