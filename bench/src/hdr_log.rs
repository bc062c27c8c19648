//! `--hdr-log FILE`: the HdrHistogram interval log of a command, in the standard text format
//! (format version 1.3, V2 compressed histograms, base64), readable by HdrHistogram's own tools
//! (`HistogramLogProcessor`, the online log analyzer, `hdrhistogram`'s `IntervalLogIterator`).
//!
//! One line per operation per interval, tagged with the operation name (`Tag=get_page,...`).
//! Values are nanoseconds, the unit those tools assume by default; the max column is in
//! milliseconds, as the Java writer's default `maxValueUnitRatio` of 10^6 gives. Interval start
//! times are seconds since `BaseTime` (the command's start).

use crate::report::Report;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use std::io::Write;
use std::path::Path;

pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let mut text = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&format!(
                "[Logged with pagecore-bench {} {}]",
                env!("CARGO_PKG_VERSION"),
                report.command
            ))
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(report.started)
            .with_base_time(report.started);
        builder.begin_log_with(&mut text, &mut serializer)?;
    }
    writeln!(
        text,
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
    )?;
    // Interval lines exactly as the crate's `IntervalLogWriter` writes them; the histograms
    // were V2-deflate-serialized with the crate when each interval closed (report::Interval).
    for interval in &report.intervals {
        for (op, histogram) in &interval.ops {
            anyhow::ensure!(Tag::new(op).is_some(), "operation name {op} is not a valid tag");
            writeln!(
                text,
                "Tag={op},{:.3},{:.3},{:.3},{}",
                interval.start.as_secs_f64(),
                interval.duration.as_secs_f64(),
                histogram.max_ns as f64 / 1e6,
                histogram.encoded
            )?;
        }
    }
    std::fs::write(path, text)?;
    Ok(())
}
