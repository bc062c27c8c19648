use super::*;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

fn sample_report() -> Report {
    let mut first = Recorder::default();
    let mut second = Recorder::default();
    for us in 1..=100 {
        first.record("get_page", Duration::from_micros(us));
        first.record("transaction", Duration::from_micros(us + 5));
        second.record("transaction", Duration::from_micros(2 * us));
    }
    second.error("get_page NotFound");
    let mut total = first.clone();
    total.merge(&second);
    let second_start = Duration::from_secs(1);
    Report {
        command: "run",
        config: json!({ "clients": 1 }),
        started: SystemTime::now(),
        elapsed: Duration::from_secs(2),
        throughput_per_s: 100.0,
        throughput_unit: "tps",
        intervals: vec![
            Interval::new(
                Duration::ZERO,
                Duration::from_secs(1),
                first.count("transaction"),
                &first,
            ),
            Interval::new(
                second_start,
                Duration::from_secs(1),
                second.count("transaction"),
                &second,
            ),
        ],
        total,
        extra: Map::new(),
    }
}

#[test]
fn json_has_the_documented_keys() {
    let doc = sample_report().json();
    for key in [
        "schema_version",
        "command",
        "config",
        "duration_s",
        "throughput_per_s",
        "errors",
        "late",
        "skipped",
        "failed",
        "ops",
        "intervals",
    ] {
        assert!(doc.get(key).is_some(), "missing {key}");
    }
    let op = &doc["ops"]["transaction"];
    for key in [
        "count",
        "throughput_per_s",
        "mean_us",
        "stddev_us",
        "min_us",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "p9999_us",
        "max_us",
    ] {
        assert!(op.get(key).is_some(), "missing ops.transaction.{key}");
    }
    assert_eq!(op["count"], 200);
    assert_eq!(doc["errors"]["get_page NotFound"], 1);
    let interval = &doc["intervals"][1];
    assert_eq!(interval["throughput_per_s"], 100.0);
    assert_eq!(interval["errors"], 1);
    assert_eq!(interval["ops"]["transaction"]["count"], 100);
}

#[test]
fn hdr_log_reads_back_with_hdrhistogram() {
    let report = sample_report();
    let path =
        std::env::temp_dir().join(format!("pagecore-bench-test-{}.hlog", std::process::id()));
    crate::hdr_log::write(&report, &path).unwrap();
    let text = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut histograms = Vec::new();
    for entry in IntervalLogIterator::new(&text) {
        if let LogEntry::Interval(interval) = entry.unwrap() {
            let bytes = base64_decode(interval.encoded_histogram());
            let histogram: Histogram<u64> =
                Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
            histograms.push((
                interval.tag().unwrap().as_str().to_string(),
                interval.start_timestamp(),
                histogram,
            ));
        }
    }
    assert_eq!(histograms.len(), 3);
    let (tag, start, histogram) = &histograms[2];
    assert_eq!((tag.as_str(), *start), ("transaction", Duration::from_secs(1)));
    assert_eq!(histogram.len(), 100);
    assert_eq!(histogram.max(), histogram.highest_equivalent(200_000));
}

#[test]
fn html_is_self_contained() {
    let html = crate::html::render(&sample_report());
    assert!(html.contains("<svg"));
    assert!(!html.contains("src="), "nothing may be fetched");
    assert!(!html.contains("<script src"));
}

#[test]
fn base64_matches_rfc_4648() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').map(value).collect();
        let word =
            digits.iter().enumerate().fold(0u32, |w, (i, d)| w | u32::from(*d) << (18 - 6 * i));
        out.extend(&word.to_be_bytes()[1..digits.len()]);
    }
    out
}
