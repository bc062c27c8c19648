//! `--html FILE`: a self-contained report (inline SVG, no scripts, nothing fetched) with the
//! summary, the latency-by-percentile plot of every operation, and throughput and latency over
//! time. Opened straight from disk or attached to a CI run.

use crate::report::{per_second, Report};
use std::fmt::Write;

const COLORS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

struct Axis {
    label: &'static str,
    log: bool,
    /// `(value, label)`; for a log axis, values are already `log10`.
    ticks: Vec<(f64, String)>,
}

pub fn render(report: &Report) -> String {
    let mut html = String::new();
    let title = format!("pagecore-bench {}", report.command);
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} th{{background:#f3f3f3}}\
         td:first-child{{text-align:left}} pre{{background:#f6f6f6;padding:8px;overflow:auto}}\
         </style></head><body><h1>{title}</h1>"
    );
    let _ = write!(
        html,
        "<p><b>{:.1} {}</b> over {:.1} s; {} errors, {} late, {} skipped.</p>",
        report.throughput_per_s,
        report.throughput_unit,
        report.elapsed.as_secs_f64(),
        report.total.error_count(),
        report.total.late,
        report.total.skipped
    );
    html += &summary_table(report);
    html += "<h2>Latency by percentile</h2>";
    html += &percentile_chart(report);
    if report.intervals.len() > 1 {
        html += "<h2>Throughput over time</h2>";
        html += &throughput_chart(report);
        html += "<h2>Latency over time</h2>";
        html += &latency_over_time_chart(report);
    }
    for key in ["ratios", "ceiling"] {
        if let Some(value) = report.extra.get(key) {
            let text = serde_json::to_string_pretty(value).unwrap_or_default();
            let _ = write!(html, "<h2>{key}</h2><pre>{}</pre>", escape(&text));
        }
    }
    let config = serde_json::to_string_pretty(&report.config).unwrap_or_default();
    let _ = writeln!(html, "<h2>Configuration</h2><pre>{}</pre></body></html>", escape(&config));
    html
}

fn summary_table(report: &Report) -> String {
    let mut html = String::from(
        "<table><tr><th>operation</th><th>count</th><th>per s</th><th>mean ms</th><th>p50 ms</th>\
         <th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>p99.99 ms</th><th>max ms</th></tr>",
    );
    for (op, s) in report.summaries() {
        let _ =
            write!(
            html,
            "<tr><td>{op}</td><td>{}</td><td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            s.count, s.throughput_per_s, s.mean_us / 1e3, s.p50_us / 1e3, s.p90_us / 1e3,
            s.p99_us / 1e3, s.p999_us / 1e3, s.p9999_us / 1e3, s.max_us / 1e3
        );
    }
    html + "</table>"
}

fn percentile_chart(report: &Report) -> String {
    // x = -log10(1 - p): 0 at the median's left end, 1 at p90, 2 at p99, ...
    let series: Vec<Series> = report
        .total
        .ops
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(op, h)| {
            let max_x = (h.len() as f64).log10().clamp(1.0, 6.0);
            let points = (0..=(max_x * 20.0) as usize)
                .map(|i| {
                    let x = i as f64 / 20.0;
                    let p = 1.0 - 10f64.powf(-x);
                    (x, (h.value_at_quantile(p) as f64 / 1e6).max(1e-4).log10())
                })
                .collect();
            Series { name: op.to_string(), points }
        })
        .collect();
    let x_ticks = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
        .iter()
        .enumerate()
        .map(|(i, label)| (i as f64, label.to_string()))
        .collect();
    let x = Axis { label: "percentile", log: false, ticks: x_ticks };
    let y = Axis { label: "latency (ms, log scale)", log: true, ticks: Vec::new() };
    chart(&series, x, y)
}

fn throughput_chart(report: &Report) -> String {
    let points = report
        .intervals
        .iter()
        .map(|i| ((i.start + i.duration).as_secs_f64(), per_second(i.units, i.duration)))
        .collect();
    let series = vec![Series { name: report.throughput_unit.to_string(), points }];
    let x = Axis { label: "seconds", log: false, ticks: Vec::new() };
    let y = Axis { label: report.throughput_unit, log: false, ticks: Vec::new() };
    chart(&series, x, y)
}

fn latency_over_time_chart(report: &Report) -> String {
    let mut series = Vec::new();
    for op in report.total.ops.keys() {
        for (name, pick) in [("p50", 0usize), ("p99", 1)] {
            let points = report
                .intervals
                .iter()
                .filter_map(|i| {
                    let s = i.ops.get(*op).filter(|s| s.count > 0)?;
                    let us = if pick == 0 { s.p50_us } else { s.p99_us };
                    Some(((i.start + i.duration).as_secs_f64(), (us / 1e3).max(1e-4).log10()))
                })
                .collect();
            series.push(Series { name: format!("{op} {name}"), points });
        }
    }
    let x = Axis { label: "seconds", log: false, ticks: Vec::new() };
    let y = Axis { label: "latency (ms, log scale)", log: true, ticks: Vec::new() };
    chart(&series, x, y)
}

/// Draws a line chart; for a log axis, point values are `log10` already.
fn chart(series: &[Series], x: Axis, y: Axis) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = bounds(all().map(|p| p.0));
    let (mut y0, mut y1) = bounds(all().map(|p| p.1));
    if !x.ticks.is_empty() {
        x0 = x0.min(x.ticks[0].0);
        x1 = x1.max(x0 + 1.0);
    }
    if y.log {
        (y0, y1) = (y0.floor(), y1.ceil().max(y0.floor() + 1.0));
    } else {
        (y0, y1) = (0.0, if y1 > 0.0 { y1 * 1.1 } else { 1.0 });
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let px = |v: f64| LEFT + (v - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT);
    let py = |v: f64| HEIGHT - BOTTOM - (v - y0) / (y1 - y0) * (HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-size=\"11\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    );
    let x_ticks = if x.ticks.is_empty() { linear_ticks(x0, x1) } else { x.ticks };
    for (value, label) in x_ticks.iter().filter(|(v, _)| *v >= x0 && *v <= x1) {
        let at = px(*value);
        let _ = write!(
            svg,
            "<line x1=\"{at:.1}\" y1=\"{TOP}\" x2=\"{at:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
            <text x=\"{at:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 15.0
        );
    }
    let y_ticks: Vec<(f64, String)> = if y.log {
        (y0 as i32..=y1 as i32).map(|e| (f64::from(e), format_ms(10f64.powi(e)))).collect()
    } else {
        linear_ticks(y0, y1)
    };
    for (value, label) in &y_ticks {
        let at = py(*value);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{at:.1}\" x2=\"{:.1}\" y2=\"{at:.1}\" stroke=\"#eee\"/>\
            <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            WIDTH - RIGHT,
            LEFT - 5.0,
            at + 4.0
        );
    }
    let _ = write!(svg, "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#888\"/>\
        <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
        <text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
        WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM, (LEFT + WIDTH - RIGHT) / 2.0, HEIGHT - 8.0, x.label,
        (TOP + HEIGHT - BOTTOM) / 2.0, (TOP + HEIGHT - BOTTOM) / 2.0, y.label);
    for (index, s) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let path: Vec<String> =
            s.points.iter().map(|&(vx, vy)| format!("{:.1},{:.1}", px(vx), py(vy))).collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.8\" points=\"{}\"/>\
            <rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
            <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            path.join(" "),
            WIDTH - RIGHT + 10.0,
            TOP + 16.0 * index as f64,
            WIDTH - RIGHT + 24.0,
            TOP + 9.0 + 16.0 * index as f64,
            escape(&s.name)
        );
    }
    svg + "</svg>"
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

fn linear_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(raw);
    let mut ticks = Vec::new();
    let mut value = (lo / step).ceil() * step;
    while value <= hi + step * 1e-9 {
        ticks.push((value, format_number(value)));
        value += step;
    }
    ticks
}

fn format_number(value: f64) -> String {
    if value.abs() >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value.abs() >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn format_ms(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
