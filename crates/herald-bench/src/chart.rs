//! The throughput chart: grouped bars, one group per scenario and payload
//! size, one bar per server, as a PNG.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::compare::Report;

const COLORS: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
];

/// Draws `report`'s throughput rows into `path`.
///
/// # Errors
/// Drawing or encoding fails (fonts missing, say).
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let mut groups: Vec<(String, usize)> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for row in report.rows.iter().filter(|r| charted(r)) {
        let group = (group_label(row), row.size);
        if !groups.contains(&group) {
            groups.push(group);
        }
        let target = format!("{} ({})", row.target.server, row.target.protocol);
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let max = report
        .rows
        .iter()
        .filter(|r| charted(r))
        .map(|r| r.msgs_per_sec / 1e6)
        .fold(0.0f64, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("messages delivered per second — {}", report.date),
            ("sans-serif", 24),
        )
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..groups.len() as f64, 0f64..max.max(0.1))
        .map_err(|e| anyhow!("{e}"))?;
    let labels = groups.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("million messages / s")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let width = 0.8 / targets.len() as f64;
    for (t, target) in targets.iter().enumerate() {
        let color = COLORS[t % COLORS.len()];
        let bars = report.rows.iter().filter(|r| charted(r)).filter_map(|row| {
            let name = format!("{} ({})", row.target.server, row.target.protocol);
            if &name != target {
                return None;
            }
            let g = groups
                .iter()
                .position(|(label, size)| *label == group_label(row) && *size == row.size)?;
            let x0 = g as f64 + 0.1 + t as f64 * width;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.9, row.msgs_per_sec / 1e6)],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)
            .map_err(|e| anyhow!("{e}"))?
            .label(target.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// The throughput rows of the lean clients (the chart's subject).
fn charted(row: &crate::compare::Row) -> bool {
    row.p99_us.is_none()
        && row.client == crate::scenario::Client::Raw
        && row.scenario != crate::scenario::Scenario::JsConsumeClient
}

/// A scenario's label under its bars, without the parenthesized detail
/// (`stream pub (256 in flight)` is `stream pub`), so neighbors do not overlap.
fn group_label(row: &crate::compare::Row) -> String {
    let name = row.label.split(" (").next().unwrap_or(&row.label);
    format!("{name} {}B", row.size)
}
