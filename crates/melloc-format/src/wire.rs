//! Wire constants of format 1.x. `docs/format.md` is normative; the tests at the bottom check
//! these values against it.

/// Magic bytes at offset 0 (PNG-style: a high byte, the name, CR LF, ^Z, LF).
pub const MAGIC: [u8; 8] = [0x89, b'M', b'L', b'C', 0x0D, 0x0A, 0x1A, 0x0A];
/// Format major version written by this build. Readers reject other majors.
pub const MAJOR: u16 = 1;
/// Format minor version written by this build. Readers accept any minor of their major.
pub const MINOR: u16 = 3;
/// Bytes before the header body: magic, major, minor, header body length.
pub const PREAMBLE_LEN: usize = 16;
/// Upper bound of the header body length.
pub const MAX_HEADER_LEN: u32 = 4096;
/// Bytes of one chunk-table entry: offset u64, length u64, checksum u64.
pub const TABLE_ENTRY_LEN: usize = 24;
/// Bytes of a chunk header before its section descriptors.
pub const CHUNK_HEADER_LEN: usize = 4;
/// Bytes of one section descriptor.
pub const SECTION_DESC_LEN: usize = 28;

/// dtype codes.
pub const DTYPE_F32: u8 = 1;
/// dtype codes.
pub const DTYPE_F64: u8 = 2;

/// Back-end codes.
pub const BACKEND_NONE: u8 = 0;
/// Back-end codes.
pub const BACKEND_ZSTD: u8 = 1;
/// Back-end codes.
pub const BACKEND_LZ4: u8 = 2;

/// A section's raw length may be at most this many bytes per decoded value, plus
/// [`SECTION_SLACK`]; larger declarations are corrupt (decompression-bomb guard).
pub const MAX_SECTION_BYTES_PER_VALUE: u64 = 24;
/// Constant slack of the section size bound.
pub const SECTION_SLACK: u64 = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    /// The values below are copied from docs/format.md; changing a wire constant without the
    /// spec (or the reverse) fails here.
    #[test]
    fn constants_match_the_spec() {
        let spec = include_str!("../../../docs/format.md");
        assert!(spec.contains("89 4D 4C 43 0D 0A 1A 0A"));
        assert_eq!(MAGIC, [0x89, 0x4D, 0x4C, 0x43, 0x0D, 0x0A, 0x1A, 0x0A]);
        assert!(spec.contains("| 1 | f32 |") && spec.contains("| 2 | f64 |"));
        assert_eq!((DTYPE_F32, DTYPE_F64), (1, 2));
        assert!(
            spec.contains("| 0 | none |")
                && spec.contains("| 1 | zstd |")
                && spec.contains("| 2 | lz4 |")
        );
        assert_eq!((BACKEND_NONE, BACKEND_ZSTD, BACKEND_LZ4), (0, 1, 2));
        assert!(spec.contains(&format!("current version: {MAJOR}.{MINOR}")));
        assert!(spec.contains(&format!("{TABLE_ENTRY_LEN} bytes per chunk")));
        assert!(spec.contains(&format!("{SECTION_DESC_LEN} bytes per section")));
    }
}
