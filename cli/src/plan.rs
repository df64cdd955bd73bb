//! `stde plan`: prints how a problem's terms are estimated at a configuration, without training.

use stde_core::report::plan_report;

use crate::args::PlanArgs;
use crate::error::CliError;
use crate::{config, problem, say, train};

/// Resolves the configuration and problem, and prints the report.
///
/// # Errors
/// [`CliError`] for a bad flag, configuration or problem, or a problem that cannot be planned.
pub fn run(args: &PlanArgs) -> Result<(), CliError> {
    let (mut cfg, _) = config::resolve(&train::cli_defaults(), &Default::default(), &args.cfg)?;
    let (spec, _) = problem::load(&cfg, None)?;
    problem::apply_defaults(&mut cfg, &spec, &args.cfg);
    train::check_limits(&cfg)?;
    cfg.validate_generic()?;
    let report = plan_report(&spec, &cfg).map_err(|e| CliError::Problem {
        message: e.to_string(),
    })?;
    say!("{}", report.trim_end());
    Ok(())
}
