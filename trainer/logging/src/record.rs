//! TFRecord framing, as TensorFlow's `RecordWriter` writes it:
//! `u64 len (LE) | u32 masked_crc32c(len bytes) | data | u32 masked_crc32c(data)`.

use std::io::{self, Write};

/// TensorFlow's CRC mask (`tensorflow/core/lib/hash/crc32c.h`): rotate right by 15, add a constant.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Writes one framed record.
pub fn write_record(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    w.write_all(&len)?;
    w.write_all(&masked_crc32c(&len).to_le_bytes())?;
    w.write_all(data)?;
    w.write_all(&masked_crc32c(data).to_le_bytes())
}

/// Why a byte stream is not a valid record file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "record at byte {offset}: length crc mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    LengthCrc { offset: usize, stored: u32, computed: u32 },
    #[error("record at byte {offset}: data crc mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    DataCrc { offset: usize, stored: u32, computed: u32 },
}

/// The records of a file, each crc-checked. A record cut short at the end of the stream (a
/// writer killed mid-write) ends the list and sets the flag, as TensorFlow's reader does.
pub fn read_records(bytes: &[u8]) -> Result<(Vec<&[u8]>, bool), RecordError> {
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes.len() - pos < 12 {
            return Ok((out, true));
        }
        let len_bytes = &bytes[pos..pos + 8];
        let (stored, computed) = (u32_at(pos + 8), masked_crc32c(len_bytes));
        if stored != computed {
            return Err(RecordError::LengthCrc { offset: pos, stored, computed });
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let start = pos + 12;
        if bytes.len() - start < len.saturating_add(4) {
            return Ok((out, true));
        }
        let data = &bytes[start..start + len];
        let (stored, computed) = (u32_at(start + len), masked_crc32c(data));
        if stored != computed {
            return Err(RecordError::DataCrc { offset: pos, stored, computed });
        }
        out.push(data);
        pos = start + len + 4;
    }
    Ok((out, false))
}
