//! ferrite-bios: the project's own BIOS (ROM stubs assembled from Rust with
//! iced-x86's code assembler, services in Rust behind a trap port) and loading
//! of external BIOS images. The BIOS itself lands with the PC issue; the
//! external-image loader below is what the CPU tests and `--bios` share.

pub mod e820;

use ferrite_core::{GuestMemory, MemError, PhysAddr};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BiosError {
    #[error("BIOS image is {0} bytes; it must be 64 KiB to 256 KiB and a multiple of 64 KiB")]
    BadSize(usize),
    #[error(transparent)]
    Mem(#[from] MemError),
}

/// Map an external BIOS image as QEMU does: at the top of the 4 GiB space,
/// with its last 128 KiB (the whole image if smaller) also at 0xE0000-0xFFFFF
/// (or 0xF0000 for a 64 KiB image).
pub fn map_external_bios(mem: &mut GuestMemory, image: &[u8]) -> Result<(), BiosError> {
    let len = image.len();
    if !(64 << 10..=256 << 10).contains(&len) || !len.is_multiple_of(64 << 10) {
        return Err(BiosError::BadSize(len));
    }
    let first = mem.map_rom(PhysAddr(0u32.wrapping_sub(len as u32)), image)?;
    let low = len.min(128 << 10) as u32;
    let low_pages = low >> 12;
    let skip = (len as u32 - low) >> 12;
    mem.alias_rom(PhysAddr(0x10_0000 - low), first + skip, low_pages)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_appears_at_4g_and_below_1m() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let mut image = vec![0u8; 256 << 10];
        let n = image.len();
        image[n - 16] = 0xEA; // far jump at the reset vector
        image[n - (128 << 10)] = 0x55;
        map_external_bios(&mut mem, &image).unwrap();
        assert_eq!(mem.peek(PhysAddr(0xFFFF_FFF0)), 0xEA);
        assert_eq!(mem.peek(PhysAddr(0xFFFF0)), 0xEA);
        assert_eq!(mem.peek(PhysAddr(0xE0000)), 0x55);
    }

    #[test]
    fn odd_sizes_are_refused() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        assert!(matches!(map_external_bios(&mut mem, &[0; 1000]), Err(BiosError::BadSize(1000))));
    }
}
