//! End-to-end: JSON lines in, SVG files out; malformed input is reported by line.

use std::path::PathBuf;

use bitlinear_plot::{deployed_packed_bytes, parse_jsonl, read_all, render_all, Error};

/// A fresh directory under the system temp dir, unique to this process and test.
fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bitlinear-plot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The contents of every `<text>` element of an SVG, trimmed.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|rest| {
            let body = &rest[rest.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// Two implementations at three batch sizes on a 1024→1024 CPU layer, plus ceilings and memory.
const RESULTS: &str = r#"
{"op":"linear","impl":"f32-matmul","m":1,"k":1024,"n":1024,"threads":2,"cache":"cold","median_us":183.37,"gops":11.4}
{"op":"linear","impl":"burn-bitlinear-deployed","m":1,"k":1024,"n":1024,"threads":2,"cache":"cold","median_us":10.98,"backend":"ndarray","packed_bytes":262148}
{"op":"linear","impl":"f32-matmul","m":64,"k":1024,"n":1024,"threads":2,"cache":"cold","median_us":1500.0}
{"op":"linear","impl":"burn-bitlinear-deployed","m":64,"k":1024,"n":1024,"threads":2,"cache":"cold","median_us":180.0,"backend":"ndarray","packed_bytes":262148}
{"op":"linear","impl":"f32-matmul","m":512,"k":1024,"n":1024,"threads":2,"cache":"cold","median_us":9000.0}
{"op":"linear","impl":"burn-bitlinear-deployed","m":512,"k":1024,"n":1024,"threads":2,"cache":"cold","median_us":1300.0,"backend":"ndarray","packed_bytes":262148}
{"op":"linear","impl":"f32-matmul","m":512,"k":1024,"n":1024,"threads":2,"cache":"hot","median_us":1.0}
{"op":"train-step","impl":"burn-bitlinear-train-step","m":64,"k":1024,"n":1024,"median_us":12812.59}
{"op":"membw","impl":"read","bytes":536870912,"threads":2,"median_us":16435.3,"gbps":32.7}
{"op":"int8-peak","impl":"vpdpbusd-zmm","threads":2,"gmacs":450.6,"gops":901.3}
{"op":"memory","form":"burn-linear-f32","k":1024,"n":1024,"bytes":4198400}
{"op":"memory","form":"bitlinear-train","k":1024,"n":1024,"bytes":4198400}
{"op":"memory","form":"bitlinear-deployed","k":1024,"n":1024,"bytes":266244}
{"op":"summary","all_checks_ok":true}
"#;

#[test]
fn renders_every_figure_from_a_small_result_file() {
    let dir = temp_dir("render");
    let input = dir.join("results.jsonl");
    std::fs::write(&input, RESULTS).expect("write input");
    let records = read_all(&[&input]).expect("parse");
    let out = dir.join("figures");
    let written = render_all(&records, &out).expect("render");

    let expected = [
        "latency-cpu-1024x1024.svg",
        "throughput-cpu-1024x1024.svg",
        "memory.svg",
        "bandwidth-floor-cpu.svg",
    ];
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, expected);
    for name in expected {
        let svg = std::fs::read_to_string(out.join(name)).expect(name);
        assert!(svg.contains("<svg"), "{name} is not an SVG");
    }

    let latency = std::fs::read_to_string(out.join("latency-cpu-1024x1024.svg")).unwrap();
    let labels = texts(&latency);
    for label in [
        "BitLinear deployed (Burn)",
        "f32 matmul (gemm crate)",
        "Latency, 1024→1024, CPU (cold cache)",
    ] {
        assert!(
            labels.iter().any(|t| t == label),
            "latency figure lacks {label}"
        );
    }

    let throughput = std::fs::read_to_string(out.join("throughput-cpu-1024x1024.svg")).unwrap();
    assert!(throughput.contains("Roofline: int8 peak 901 GOPS, 32.7 GB/s"));

    let memory = std::fs::read_to_string(out.join("memory.svg")).unwrap();
    for label in [
        "f32 Linear",
        "BitLinear (training)",
        "BitLinear (deployed, 2-bit)",
    ] {
        assert!(memory.contains(label), "memory legend lacks {label}");
    }

    let floor = std::fs::read_to_string(out.join("bandwidth-floor-cpu.svg")).unwrap();
    // 262148 B in 10.98 µs is 23.9 GB/s, 73 % of 32.7 GB/s (not a multiple of a tick step).
    assert!(
        texts(&floor).iter().any(|t| t == "73%"),
        "floor figure lacks the 73% bar label"
    );

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn output_is_deterministic() {
    let dir = temp_dir("deterministic");
    let records = parse_jsonl("results.jsonl", RESULTS).unwrap();
    let first = render_all(&records, &dir.join("a")).unwrap();
    let second = render_all(&records, &dir.join("b")).unwrap();
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_line_is_reported_with_its_number() {
    let text = "{\"op\":\"membw\",\"gbps\":10.0}\n{\"op\":\n";
    let error = parse_jsonl("results.jsonl", text).unwrap_err();
    assert!(matches!(error, Error::InvalidJson { line: 2, .. }));
    let message = error.to_string();
    assert!(
        message.starts_with("results.jsonl:2: invalid JSON: "),
        "unexpected message: {message}"
    );
}

#[test]
fn unknown_or_incomplete_objects_and_blank_lines_are_skipped() {
    let text = "\n{\"op\":\"gpu\"}\n{\"op\":\"linear\",\"impl\":\"x\"}\n  \n[1,2]\n";
    assert_eq!(parse_jsonl("f", text).unwrap(), vec![]);
}

#[test]
fn packed_bytes_of_the_deployed_layout() {
    assert_eq!(deployed_packed_bytes(1024, 1024), 262_148);
    assert_eq!(deployed_packed_bytes(4096, 4096), 4_194_308);
    // Both dimensions pad to 16: 17→17 stores 32·32 two-bit weights.
    assert_eq!(deployed_packed_bytes(17, 17), 32 * 32 / 4 + 4);
}
