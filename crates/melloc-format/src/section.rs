//! A route's output: a list of typed byte sections.
//!
//! A route (raw, paper, causal) turns one block of values into sections. The container then
//! stores each section with a back end (zstd, lz4 or none, whichever is smaller), its raw
//! length and a checksum. Routes never see back ends or checksums.

/// One stream of bytes produced by a route. `kind` is route-defined (documented in
/// `docs/format.md`) and lets a decoder check it received the stream it expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Route-defined stream identifier.
    pub kind: u8,
    /// The raw (not yet back-end-compressed) bytes.
    pub data: Vec<u8>,
}

impl Section {
    /// Builds a section.
    pub fn new(kind: u8, data: Vec<u8>) -> Self {
        Self { kind, data }
    }
}

/// Returns the data of the section of `kind` at position `index`, or a `Corrupt` error naming
/// what was expected.
pub fn expect_section(sections: &[Section], index: usize, kind: u8) -> crate::error::Result<&[u8]> {
    match sections.get(index) {
        Some(s) if s.kind == kind => Ok(&s.data),
        Some(s) => Err(crate::error::corrupt!(
            "section {index}: expected kind {kind}, found kind {}",
            s.kind
        )),
        None => Err(crate::error::corrupt!(
            "missing section {index} (kind {kind}); only {} present",
            sections.len()
        )),
    }
}
