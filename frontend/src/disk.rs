//! File-backed block devices: raw disk, CD (ISO 9660) and floppy images.
//! An image the user cannot write is opened read-only (the guest then gets
//! write errors), and FLUSH CACHE reaches the file with `sync_data`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context};
use ferrite_devices::block::{BlockBackend, BlockError};

/// A raw image file.
pub struct FileBackend {
    file: File,
    size: u64,
    read_only: bool,
}

impl FileBackend {
    /// Open `path`; `want_write` false forces read-only (CD images). A file
    /// that cannot be opened for writing is opened read-only with a warning.
    pub fn open(path: &Path, want_write: bool) -> anyhow::Result<FileBackend> {
        let (file, read_only) = match want_write {
            true => match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => (f, false),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    tracing::warn!("{} is not writable: the guest sees it read-only", path.display());
                    (File::open(path).with_context(|| format!("cannot open image {}", path.display()))?, true)
                }
                Err(e) => return Err(e).with_context(|| format!("cannot open image {}", path.display())),
            },
            false => (File::open(path).with_context(|| format!("cannot open image {}", path.display()))?, true),
        };
        let meta = file.metadata().with_context(|| format!("cannot read the size of image {}", path.display()))?;
        if !meta.is_file() {
            bail!("image {} is not a regular file", path.display());
        }
        if meta.len() == 0 {
            bail!("image {} is empty", path.display());
        }
        Ok(FileBackend { file, size: meta.len(), read_only })
    }

    fn check(&self, offset: u64, len: usize) -> Result<(), BlockError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(BlockError::OutOfRange { offset, len, size: self.size }),
        }
    }
}

impl BlockBackend for FileBackend {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check(offset, buf.len())?;
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)?;
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.check(offset, buf.len())?;
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(buf)?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        if !self.read_only {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrite-disk-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("img");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_writes_and_flushes_reach_the_file() {
        let p = temp("rw", &[0u8; 4096]);
        let mut b = FileBackend::open(&p, true).unwrap();
        b.write_at(512, b"ferrite").unwrap();
        b.flush().unwrap();
        let mut buf = [0u8; 7];
        b.read_at(512, &mut buf).unwrap();
        assert_eq!(&buf, b"ferrite");
        assert_eq!(&std::fs::read(&p).unwrap()[512..519], b"ferrite");
        assert!(matches!(b.read_at(4090, &mut buf), Err(BlockError::OutOfRange { .. })));
    }

    #[test]
    fn cd_images_are_read_only_and_missing_files_name_the_path() {
        let p = temp("ro", &[1u8; 2048]);
        let mut b = FileBackend::open(&p, false).unwrap();
        assert!(b.read_only());
        assert!(matches!(b.write_at(0, &[0]), Err(BlockError::ReadOnly)));
        assert_eq!(std::fs::read(&p).unwrap()[0], 1, "the user's image is untouched");
        let err = FileBackend::open(Path::new("/nonexistent/disk.img"), true).err().unwrap();
        assert!(format!("{err:#}").contains("/nonexistent/disk.img"));
        let empty = temp("empty", &[]);
        assert!(format!("{:#}", FileBackend::open(&empty, true).err().unwrap()).contains("empty"));
    }
}
