//! The `stde` binary: command-line parsing, dispatch to the subcommands, and the mapping of every
//! failure to one `error: …` line and an exit code (0 ok, 1 runtime failure, 2 bad input, 128 plus
//! the signal's number for a run stopped by SIGINT, SIGTERM or SIGHUP).

mod args;
mod backends;
mod bench;
mod config;
mod error;
mod files;
mod history;
mod list;
mod lock;
mod plan;
mod plot;
mod problem;
mod signals;
mod system;
mod text;
mod train;
mod web;

use std::process::ExitCode;

use clap::error::{ContextValue, ErrorKind};
use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::{CliError, EXIT_INPUT};

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
        Command::Plan(args) => plan::run(args),
        Command::Web(args) => web::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = text::one_line(&e.to_string());
            match e {
                // A stop the user asked for is reported, not blamed.
                CliError::Interrupted { .. } => note!("{line}"),
                _ => note!("error: {line}"),
            }
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

/// Help and version go to stdout as clap formats them; `stde` alone prints the usage (exit 2); real
/// usage errors become one line with the user's values quoted, escaped and cut.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_INPUT as u8)
        }
        _ => {
            let mut text = e.render().to_string();
            // The values clap echoes are the user's: a long one, or one with a newline that would
            // forge a second `error:` line, is shown quoted, escaped and cut instead.
            for (_, value) in e.context() {
                let values = match value {
                    ContextValue::String(v) => vec![v.as_str()],
                    ContextValue::Strings(vs) => vs.iter().map(String::as_str).collect(),
                    _ => Vec::new(),
                };
                for v in values {
                    let tame =
                        v.chars().count() <= text::VALUE_CHARS && !v.chars().any(char::is_control);
                    if !tame {
                        text = text.replace(&format!("'{v}'"), &text::quote(v));
                        text = text.replace(v, &text::clip(v));
                    }
                }
            }
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
            note!("error: {}", text::one_line(line));
            ExitCode::from(EXIT_INPUT as u8)
        }
    }
}
