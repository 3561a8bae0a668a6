//! `bitlinear-plot --out DIR FILE.jsonl [FILE.jsonl ...]`: draws the benchmark figures as SVG.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: bitlinear-plot --out DIR FILE.jsonl [FILE.jsonl ...]";

/// Parsed command line.
struct Args {
    out: PathBuf,
    inputs: Vec<PathBuf>,
}

/// Parses `--out DIR` (or `--out=DIR`) and the input files, in any order.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = None;
    let mut inputs = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "--out" || arg == "-o" {
            out = Some(args.next().ok_or("--out needs a directory")?.into());
        } else if let Some(dir) = arg.strip_prefix("--out=") {
            out = Some(dir.into());
        } else if arg == "--help" || arg == "-h" {
            return Err(String::new());
        } else if arg.starts_with('-') && arg != "-" {
            return Err(format!("unknown option {arg}"));
        } else {
            inputs.push(arg.into());
        }
    }
    let out = out.ok_or("missing --out DIR")?;
    if inputs.is_empty() {
        return Err("no input files".to_string());
    }
    Ok(Args { out, inputs })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("bitlinear-plot: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = bitlinear_plot::read_all(&args.inputs)
        .and_then(|records| bitlinear_plot::render_all(&records, &args.out));
    match result {
        Ok(files) if files.is_empty() => {
            eprintln!("bitlinear-plot: no figure could be drawn from these records");
            ExitCode::SUCCESS
        }
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bitlinear-plot: {error}");
            ExitCode::FAILURE
        }
    }
}
