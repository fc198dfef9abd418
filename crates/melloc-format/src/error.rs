//! Errors of the container and the codec.

/// Errors from `melloc-format`. Every failure to decode untrusted bytes is one of these; the
/// decoder never panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input does not start with the melloc magic bytes.
    #[error("not a melloc file: bad magic bytes")]
    BadMagic,
    /// The file was written by a newer, incompatible format version.
    #[error("unsupported format version {major}.{minor} (this build reads 1.x)")]
    UnsupportedVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The input ended before a structure was complete.
    #[error("truncated input: {0}")]
    Truncated(String),
    /// A checksum did not match.
    #[error("checksum mismatch in {section}")]
    ChecksumMismatch {
        /// What was being verified (header, chunk N section K, content).
        section: String,
    },
    /// The bytes are structurally invalid.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A declared size exceeds the configured memory limit.
    #[error("declared size {declared} bytes exceeds the limit of {limit} bytes")]
    LimitExceeded {
        /// Declared size in bytes.
        declared: u64,
        /// The limit in force.
        limit: u64,
    },
    /// Two lengths that must agree do not.
    #[error("length mismatch: expected {expected}, got {actual}")]
    LengthMismatch {
        /// Expected length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// A caller passed an invalid argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error from the core math.
    #[error(transparent)]
    Core(#[from] melloc_core::CoreError),
    /// Reading the values to compress failed (a streamed input ended early, held more than its
    /// shape, or its reader failed): what was expected and where, in the message.
    #[error("{0}")]
    Input(String),
    /// Writing the compressed or decompressed output failed.
    #[error("{0}")]
    Output(std::io::Error),
    /// A bug: a worker panicked (the panic is caught so that the other workers stop instead
    /// of waiting for it forever).
    #[error("internal error (a bug in melloc; please report it): {0}")]
    Internal(String),
    /// An I/O error from a byte back end.
    #[error("back end {backend}: {message}")]
    Backend {
        /// Back-end name.
        backend: &'static str,
        /// Message from the back end.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// `Corrupt` error with a formatted message.
macro_rules! corrupt {
    ($($arg:tt)*) => { $crate::error::FormatError::Corrupt(format!($($arg)*)) };
}
pub(crate) use corrupt;
