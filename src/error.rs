//! Errors of the library. An [`Error::Input`] is the user's to fix (bad file,
//! bad flag) and makes `dz` exit with code 2; every other error exits with 1.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something the user gave us is wrong; the text names what and where.
    #[error("{0}")]
    Input(String),
    // The io error is part of the message, not a `source`, so the one-line
    // rendering at the edge does not repeat it.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A machine, node or backend did not do what was asked.
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    pub fn runtime(msg: impl Into<String>) -> Self {
        Error::Runtime(msg.into())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }

    pub fn is_input(&self) -> bool {
        matches!(self, Error::Input(_))
    }
}
