//! ferrite-bios: the project's own BIOS ([`own`]: ROM stubs assembled from
//! Rust with iced-x86's code assembler, services in Rust behind a trap
//! port) and loading of external BIOS and option ROM images (what the CPU
//! tests, `--bios` and `--vga-bios` share).

pub mod e820;
pub mod linux;
pub mod own;

use ferrite_core::{GuestMemory, MemError, PhysAddr};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BiosError {
    #[error("BIOS image is {0} bytes; it must be 64 KiB to 256 KiB and a multiple of 64 KiB")]
    BadSize(usize),
    #[error(transparent)]
    Mem(#[from] MemError),
    #[error(transparent)]
    Rom(#[from] own::RomError),
    #[error("option ROM image is {0} bytes; it must be 2 KiB to 128 KiB")]
    OptionRomSize(usize),
    #[error("option ROM image does not start with the 55h AAh signature")]
    OptionRomSignature,
}

pub use own::{Bios, BiosDisk, BootHook, DiskIoError, DiskKind, Platform, SectorIo};

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

/// Map an option ROM image (a VGA BIOS) at 0xC0000 as read-only memory,
/// where a BIOS's option ROM scan finds it. The image must carry the 55h
/// AAh signature; its length is rounded up to whole pages. Returns the
/// first backing page, so the board can show the same image at the
/// display adapter's expansion ROM BAR.
pub fn map_vga_rom(mem: &mut GuestMemory, image: &[u8]) -> Result<u32, BiosError> {
    if !(2 << 10..=128 << 10).contains(&image.len()) {
        return Err(BiosError::OptionRomSize(image.len()));
    }
    if image[0] != 0x55 || image[1] != 0xAA {
        return Err(BiosError::OptionRomSignature);
    }
    Ok(mem.map_rom(PhysAddr(0xC_0000), image)?)
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
    fn a_vga_rom_is_mapped_read_only_at_c0000_if_it_looks_like_one() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let mut rom = vec![0u8; 0x8000];
        rom[0] = 0x55;
        rom[1] = 0xAA;
        rom[2] = 0x40;
        map_vga_rom(&mut mem, &rom).unwrap();
        assert_eq!((mem.peek(PhysAddr(0xC0000)), mem.peek(PhysAddr(0xC0002))), (0x55, 0x40));
        assert_eq!(mem.page_kind(PhysAddr(0xC7000)), ferrite_core::PageKind::Rom);
        assert!(matches!(map_vga_rom(&mut mem, &[0u8; 4096]), Err(BiosError::OptionRomSignature)));
        assert!(matches!(map_vga_rom(&mut mem, &[0x55, 0xAA]), Err(BiosError::OptionRomSize(2))));
    }

    #[test]
    fn odd_sizes_are_refused() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        assert!(matches!(map_external_bios(&mut mem, &[0; 1000]), Err(BiosError::BadSize(1000))));
    }
}
