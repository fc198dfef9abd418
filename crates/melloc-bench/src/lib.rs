//! melloc-bench
