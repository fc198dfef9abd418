//! Errors of the core math.

/// Errors from `melloc-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A caller passed an argument outside the documented domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Two lengths that must agree do not.
    #[error("length mismatch: expected {expected}, got {actual}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// A least-squares system was singular or not finite.
    #[error("numerical failure: {0}")]
    Numerical(String),
}
