//! Deterministic tar writing (fixed mtime/uid/mode), so the same seed gives the same bytes.

use std::io::Write;
use std::path::Path;

use crate::error::{DataError, Result};

/// Writes `members` (`(name, bytes)`, in order) as an uncompressed ustar archive.
pub fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) -> Result<()> {
    let io = |e| DataError::io(path.display().to_string(), e);
    let file = std::fs::File::create(path).map_err(io)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data.as_slice()).map_err(io)?;
    }
    let mut w = b.into_inner().map_err(io)?;
    w.flush().map_err(io)
}
