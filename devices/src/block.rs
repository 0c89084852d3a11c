//! The host-backend trait for block devices (hard disks, CD-ROMs,
//! floppies). The frontend provides file-backed implementations (raw
//! images now, other formats later); devices only see this trait.

use thiserror::Error;

/// A failed backend operation, reported to the guest as a media error.
#[derive(Debug, Error)]
pub enum BlockError {
    #[error("access at byte {offset} of {len} bytes is outside the {size}-byte image")]
    OutOfRange { offset: u64, len: usize, size: u64 },
    #[error("the image is read-only")]
    ReadOnly,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Storage behind an emulated drive.
pub trait BlockBackend: Send {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// True when writes must fail (read-only file, CD image).
    fn read_only(&self) -> bool;
    /// Read `buf.len()` bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Write `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), BlockError>;
    /// Make written data durable (the guest's FLUSH CACHE).
    fn flush(&mut self) -> Result<(), BlockError>;
}

/// An image held in memory (tests, and images built on the fly).
#[derive(Debug, Clone, Default)]
pub struct MemBackend {
    pub data: Vec<u8>,
    pub read_only: bool,
    /// How many times `flush` was called (tests check FLUSH CACHE reaches the backend).
    pub flushes: u64,
}

impl MemBackend {
    pub fn new(data: Vec<u8>) -> MemBackend {
        MemBackend { data, read_only: false, flushes: 0 }
    }

    fn range(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>, BlockError> {
        let size = self.data.len() as u64;
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(offset as usize..end as usize),
            _ => Err(BlockError::OutOfRange { offset, len, size }),
        }
    }
}

impl BlockBackend for MemBackend {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let r = self.range(offset, buf.len())?;
        self.data[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.flushes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_backend_bounds_and_read_only() {
        let mut b = MemBackend::new(vec![0; 1024]);
        b.write_at(512, &[1, 2, 3]).unwrap();
        let mut buf = [0; 3];
        b.read_at(512, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3]);
        assert!(matches!(b.read_at(1023, &mut buf), Err(BlockError::OutOfRange { .. })));
        assert!(matches!(b.read_at(u64::MAX, &mut buf), Err(BlockError::OutOfRange { .. })));
        b.read_only = true;
        assert!(matches!(b.write_at(0, &[0]), Err(BlockError::ReadOnly)));
        b.flush().unwrap();
        assert_eq!(b.flushes, 1);
    }
}
