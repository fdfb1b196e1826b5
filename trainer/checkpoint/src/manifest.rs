//! `manifest.json`: the length and CRC-32C of every file of a checkpoint, written last before the
//! folder is published, and checked before a resume trusts the folder. Shared filesystems can
//! truncate or flip bytes after a write succeeded; without this a damaged `model.bpk` either
//! loaded silently or stopped the run although the previous checkpoint was intact.
//!
//! CRC-32C (Castagnoli, hardware-accelerated through SSE4.2 / ARMv8 CRC) detects every burst of up
//! to 32 flipped bits and any truncation (the length is checked first); it guards against damage,
//! not tampering. It reads at memory speed, so verifying a multi-GB checkpoint costs about as much
//! as reading it once.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";

/// Length and checksum of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    pub bytes: u64,
    /// CRC-32C of the contents, lower-case hex.
    pub crc32c: String,
}

/// Every file of a checkpoint folder (but the manifest itself), by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub files: BTreeMap<String, FileSum>,
}

impl Manifest {
    /// Sums every regular file in `dir` (not recursing; a checkpoint folder is flat).
    pub fn of_dir(dir: &Path) -> std::io::Result<Self> {
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != MANIFEST && entry.file_type()?.is_file() {
                files.insert(name, sum_file(&entry.path())?);
            }
        }
        Ok(Self { files })
    }

    /// Writes `dir/manifest.json` (synced) for the files now in `dir`.
    pub fn write(dir: &Path) -> std::io::Result<()> {
        let manifest = Self::of_dir(dir)?;
        let path = dir.join(MANIFEST);
        let json = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
        fs::write(&path, json)?;
        fs::File::open(&path)?.sync_all()
    }

    /// Checks `dir` against its manifest: `Ok(true)` when every listed file has its length and
    /// checksum, `Ok(false)` for a folder without a manifest (written before manifests existed),
    /// `Err` naming the first file that differs and how.
    pub fn verify(dir: &Path) -> Result<bool, String> {
        let path = dir.join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("{MANIFEST}: {e}")),
        };
        let manifest: Self = serde_json::from_str(&text).map_err(|e| format!("{MANIFEST}: {e}"))?;
        for (name, want) in &manifest.files {
            let file = dir.join(name);
            let len = fs::metadata(&file).map_err(|e| format!("{name}: {e}"))?.len();
            if len != want.bytes {
                return Err(format!("{name}: {len} bytes, the manifest says {}", want.bytes));
            }
            let got = sum_file(&file).map_err(|e| format!("{name}: {e}"))?;
            if got.crc32c != want.crc32c {
                return Err(format!(
                    "{name}: CRC-32C {} differs from the manifest's {} (contents damaged)",
                    got.crc32c, want.crc32c
                ));
            }
        }
        Ok(true)
    }
}

fn sum_file(path: &Path) -> std::io::Result<FileSum> {
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut crc, mut bytes) = (0u32, 0u64);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        bytes += n as u64;
    }
    Ok(FileSum { bytes, crc32c: format!("{crc:08x}") })
}
