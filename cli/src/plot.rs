//! The PNG plots of a run: `loss.png` (training curves), `profile.png` (the learned solution
//! against the exact one along a diameter of the ball) and `variance.png` (how much the loss and the
//! term estimates move with the step's random directions).
//!
//! Text is drawn with plotters' `ab_glyph` renderer from a font compiled into the binary, so the
//! plots need no system fonts or fontconfig on the machine that draws them.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::CliError;
use crate::history::VarianceCurves;

/// The family name plotters asks for by default.
const FONT_FAMILY: &str = "sans-serif";

/// Whether the embedded font was registered (plotters keeps fonts in a process-wide table).
static FONT_REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers the embedded font once per process.
fn ensure_font(path: &Path) -> Result<(), CliError> {
    let ok = *FONT_REGISTERED.get_or_init(|| {
        register_font(
            FONT_FAMILY,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(CliError::Plot {
            path: path.to_path_buf(),
            reason: "the embedded font could not be loaded".into(),
        })
    }
}

fn plot_error(path: &Path) -> impl Fn(String) -> CliError + '_ {
    move |reason| CliError::Plot {
        path: path.to_path_buf(),
        reason,
    }
}

/// A log-scale y range covering the positive finite values, padded a little.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (1e-3, 1.0);
    }
    let (lo, hi) = if lo == hi {
        (lo / 10.0, hi * 10.0)
    } else {
        (lo, hi)
    };
    (lo / 1.5, hi * 1.5)
}

/// A white 900×600 chart of values over steps `0..steps` on a log scale `lo..hi`, with its mesh
/// and axis labels drawn (the loss and variance plots).
fn step_chart<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    title: &str,
    steps: u64,
    (lo, hi): (f64, f64),
    y_desc: &str,
    err: &impl Fn(String) -> CliError,
) -> Result<
    ChartContext<
        'a,
        BitMapBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>,
    >,
    CliError,
> {
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..steps.max(1) as f64, (lo..hi).log_scale())
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style((FONT_FAMILY, 15))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    Ok(chart)
}

/// Draws the legend of every labelled series in the upper right corner and writes the image.
fn finish<'a, 'b: 'a, CT: CoordTranslate>(
    root: &DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    chart: &mut ChartContext<'a, BitMapBackend<'b>, CT>,
    err: &impl Fn(String) -> CliError,
) -> Result<(), CliError> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 15))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Draws the loss and the relative L2 error against the step, log y.
///
/// # Errors
/// [`CliError::Plot`] if drawing or encoding fails.
pub fn loss_plot(
    path: &Path,
    title: &str,
    curves: &[(u64, f64, Option<f64>)],
    steps: u64,
) -> Result<(), CliError> {
    ensure_font(path)?;
    let err = plot_error(path);
    let loss: Vec<(f64, f64)> = curves
        .iter()
        .filter(|r| r.1.is_finite() && r.1 > 0.0)
        .map(|r| (r.0 as f64, r.1))
        .collect();
    let rel: Vec<(f64, f64)> = curves
        .iter()
        .filter_map(|r| {
            r.2.filter(|v| v.is_finite() && *v > 0.0)
                .map(|v| (r.0 as f64, v))
        })
        .collect();
    let (lo, hi) = log_range(loss.iter().chain(&rel).map(|p| p.1));
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    let mut chart = step_chart(&root, title, steps, (lo, hi), "value (log scale)", &err)?;
    let loss_color = RGBColor(31, 119, 180);
    let rel_color = RGBColor(214, 39, 40);
    chart
        .draw_series(LineSeries::new(loss, loss_color.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("training loss (mean squared residual)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], loss_color.stroke_width(2)));
    // Evaluations are sparse, so each is also marked.
    chart
        .draw_series(rel.iter().map(|&p| Circle::new(p, 3, rel_color.filled())))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(rel, rel_color.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("relative L2 error (test set)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], rel_color.stroke_width(2)));
    finish(&root, &mut chart, &err)
}

/// Draws `u_θ`, and `u*` where the problem has an exact solution, against `t` (the position along
/// the diameter).
///
/// # Errors
/// [`CliError::Plot`] if drawing or encoding fails.
pub fn profile_plot(
    path: &Path,
    title: &str,
    t: &[f64],
    model: &[f64],
    exact: Option<&[f64]>,
) -> Result<(), CliError> {
    ensure_font(path)?;
    let err = plot_error(path);
    let finite = model
        .iter()
        .chain(exact.unwrap_or_default())
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo > hi { (-1.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_FAMILY, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(-1f64..1f64, (lo - pad)..(hi + pad))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("t   (x = t·(1, …, 1)/√d)")
        .y_desc("u(x)")
        .label_style((FONT_FAMILY, 15))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let model_color = RGBColor(31, 119, 180);
    let exact_color = BLACK;
    let series = |values: &[f64]| -> Vec<(f64, f64)> {
        t.iter()
            .copied()
            .zip(values.iter().copied())
            .filter(|p| p.1.is_finite())
            .collect()
    };
    if let Some(exact) = exact {
        chart
            .draw_series(LineSeries::new(series(exact), exact_color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label("exact solution u*")
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], exact_color.stroke_width(2))
            });
    }
    chart
        .draw_series(LineSeries::new(series(model), model_color.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("trained network u")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], model_color.stroke_width(2)));
    finish(&root, &mut chart, &err)
}

/// Draws the relative standard deviation over the step's random directions of the loss
/// (`√loss_var / loss`) and of every random term's estimate (`√rel_var`: its standard deviation over
/// its root-mean-square value), against the step, log y.
///
/// # Errors
/// [`CliError::Plot`] if drawing or encoding fails.
pub fn variance_plot(
    path: &Path,
    title: &str,
    curves: &VarianceCurves,
    steps: u64,
) -> Result<(), CliError> {
    ensure_font(path)?;
    let err = plot_error(path);
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let loss: Vec<(f64, f64)> = curves
        .rows
        .iter()
        .filter_map(|row| {
            let rel = row.loss_var?.sqrt() / row.loss.abs();
            positive(rel).then_some((row.step as f64, rel))
        })
        .collect();
    let terms: Vec<(&str, Vec<(f64, f64)>)> = curves
        .terms
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let points = curves
                .rows
                .iter()
                .filter_map(|row| {
                    let sd = row.rel_var.get(k).copied().flatten()?.sqrt();
                    positive(sd).then_some((row.step as f64, sd))
                })
                .collect();
            (name.as_str(), points)
        })
        .filter(|(_, points): &(&str, Vec<(f64, f64)>)| !points.is_empty())
        .collect();
    let (lo, hi) = log_range(
        loss.iter()
            .chain(terms.iter().flat_map(|(_, p)| p))
            .map(|p| p.1),
    );
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    let mut chart = step_chart(
        &root,
        title,
        steps,
        (lo, hi),
        "relative standard deviation over the directions (log scale)",
        &err,
    )?;
    let loss_color = RGBColor(31, 119, 180);
    chart
        .draw_series(LineSeries::new(loss, loss_color.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("loss: sd / loss")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], loss_color.stroke_width(2)));
    // Matplotlib's default cycle after the loss's blue.
    let palette = [
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
    ];
    for (i, (name, points)) in terms.into_iter().enumerate() {
        let color = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(format!("term {name}: sd / RMS of its estimate"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    finish(&root, &mut chart, &err)
}
