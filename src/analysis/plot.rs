//! Line charts as PNG, one line per series. The font is embedded so plots
//! render the same on a machine without any fonts installed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Tableau 10: distinct and readable on white.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
}

fn register_font() {
    REGISTER.call_once(|| {
        // The bytes are our own embedded font; a failure would be a build bug.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws `chart` into a 1000×600 PNG at `path`.
pub fn line_chart(path: &Path, chart: &Chart<'_>) -> Result<()> {
    register_font();
    draw(path, chart)
        .map_err(|e| Error::runtime(format!("{}: cannot draw plot: {e}", path.display())))
}

fn bounds(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    let pad = |lo: f64, hi: f64| {
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, hi + 0.5)
        }
    };
    (pad(x0, x1), pad(y0.min(0.0), y1 * 1.05))
}

/// Draws `chart` into a 1000×600 SVG at `path`.
pub fn line_chart_svg(path: &Path, chart: &Chart<'_>) -> Result<()> {
    register_font();
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    draw_on(root, chart)
        .map_err(|e| Error::runtime(format!("{}: cannot draw plot: {e}", path.display())))
}

fn draw(path: &Path, chart: &Chart<'_>) -> std::result::Result<(), Box<dyn std::error::Error>> {
    draw_on(
        BitMapBackend::new(path, (1000, 600)).into_drawing_area(),
        chart,
    )
}

fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart<'_>,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let ((x0, x1), (y0, y1)) = bounds(chart.series);
    let mut ctx = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        ctx.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(s.name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
