//! The error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading benchmark results or writing figures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of an input file is not valid JSON.
    #[error("{file}:{line}: invalid JSON: {source}")]
    InvalidJson {
        /// The input file as named on the command line.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What the JSON parser reported.
        #[source]
        source: serde_json::Error,
    },
    /// An input file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The output directory could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Drawing or writing a figure failed.
    #[error("cannot draw {}: {message}", path.display())]
    Draw {
        /// The figure being written.
        path: PathBuf,
        /// What plotters (or the file system below it) reported.
        message: String,
    },
}
