//! `bootcd`: a minimal ISO 9660 image with an El Torito boot catalog and a
//! no-emulation boot image (ECMA-119 volume descriptors; El Torito 1.0
//! boot record, validation entry with checksum, default entry). The boot
//! image prints on the debug console and exits through 0xF4 with 0; it also
//! checks that the BIOS passed a drive number in DL (SeaBIOS uses 0xE0+).

use iced_x86::code_asm::*;

/// What the boot image prints.
pub const MESSAGE: &str = "booted from CD (El Torito, no emulation)\n";

const SECTOR: usize = 2048;
/// Sectors: 0-15 system area, 16 PVD, 17 boot record, 18 terminator,
/// 19 boot catalog, 20 boot image, 21 root directory.
const SECTORS: usize = 24;
const CATALOG: u32 = 19;
const IMAGE: u32 = 20;
const ROOT: u32 = 21;

/// The ISO image.
pub fn image() -> Vec<u8> {
    let mut iso = vec![0u8; SECTORS * SECTOR];
    let s = |n: u32| n as usize * SECTOR;
    // Primary volume descriptor.
    let pvd = &mut iso[s(16)..s(17)];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[40..72].copy_from_slice(&pad::<32>(b"FERRITE_BOOTCD"));
    both32(&mut pvd[80..88], SECTORS as u32); // volume space size
    both16(&mut pvd[120..124], 1); // volume set size
    both16(&mut pvd[124..128], 1); // volume sequence number
    both16(&mut pvd[128..132], SECTOR as u16); // logical block size
                                               // Root directory record (34 bytes) at 156.
    dir_record(&mut pvd[156..190], ROOT, SECTOR as u32);
    pvd[881] = 1; // file structure version
                  // Boot record volume descriptor (El Torito).
    let br = &mut iso[s(17)..s(18)];
    br[0] = 0;
    br[1..6].copy_from_slice(b"CD001");
    br[6] = 1;
    br[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
    br[0x47..0x4B].copy_from_slice(&CATALOG.to_le_bytes());
    // Volume descriptor set terminator.
    let t = &mut iso[s(18)..s(19)];
    t[0] = 255;
    t[1..6].copy_from_slice(b"CD001");
    t[6] = 1;
    // Boot catalog: validation entry + default entry.
    let cat = &mut iso[s(CATALOG)..s(CATALOG) + 64];
    cat[0] = 1; // header id
    cat[1] = 0; // platform x86
    cat[4..28].copy_from_slice(&pad::<24>(b"FERRITE"));
    cat[30] = 0x55;
    cat[31] = 0xAA;
    // Checksum: the 16-bit words of the entry sum to zero.
    let sum = cat[..32].chunks(2).fold(0u16, |a, w| a.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    let fix = 0u16.wrapping_sub(sum);
    cat[28..30].copy_from_slice(&fix.to_le_bytes());
    cat[32] = 0x88; // bootable
    cat[33] = 0; // no emulation
    cat[34..36].copy_from_slice(&0u16.to_le_bytes()); // load segment 0 = 0x07C0
    cat[38..40].copy_from_slice(&4u16.to_le_bytes()); // 4 virtual sectors = 2 KiB
    cat[40..44].copy_from_slice(&IMAGE.to_le_bytes());
    // Boot image.
    let code = boot_code();
    iso[s(IMAGE)..s(IMAGE) + code.len()].copy_from_slice(&code);
    // Root directory: "." and "..".
    let root = &mut iso[s(ROOT)..s(ROOT + 1)];
    dir_record(&mut root[0..34], ROOT, SECTOR as u32);
    dir_record(&mut root[34..68], ROOT, SECTOR as u32);
    root[34 + 33] = 1;
    iso
}

fn pad<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [b' '; N];
    out[..s.len()].copy_from_slice(s);
    out
}

fn both16(dst: &mut [u8], v: u16) {
    dst[..2].copy_from_slice(&v.to_le_bytes());
    dst[2..4].copy_from_slice(&v.to_be_bytes());
}

fn both32(dst: &mut [u8], v: u32) {
    dst[..4].copy_from_slice(&v.to_le_bytes());
    dst[4..8].copy_from_slice(&v.to_be_bytes());
}

/// A 34-byte directory record for a directory at `lba` of `len` bytes.
fn dir_record(r: &mut [u8], lba: u32, len: u32) {
    r[0] = 34;
    both32(&mut r[2..10], lba);
    both32(&mut r[10..18], len);
    r[25] = 2; // directory
    both16(&mut r[28..32], 1);
    r[32] = 1; // name length
    r[33] = 0; // "."
}

const MSG: u32 = 0x7C00 + 0x200;

fn boot_code() -> Vec<u8> {
    let mut a = CodeAssembler::new(16).expect("16-bit assembler");
    let assembled = (|| -> Result<Vec<u8>, IcedError> {
        let mut fail = a.create_label();
        super::boot::prologue(&mut a)?;
        // A CD boot gets a drive number with bit 7 set.
        a.test(dl, 0x80)?;
        a.jz(fail)?;
        super::boot::report(&mut a, &mut fail, MSG)?;
        a.assemble(0x7C00)
    })()
    .expect("boot image assembles");
    let mut code = assembled;
    assert!(code.len() <= 0x200, "boot code too long");
    code.resize(0x200, 0);
    code.extend_from_slice(MESSAGE.as_bytes());
    code.push(0);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_volume_descriptors_and_a_valid_boot_catalog() {
        let iso = image();
        assert_eq!(&iso[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(&iso[17 * SECTOR + 7..17 * SECTOR + 30], b"EL TORITO SPECIFICATION");
        let cat = &iso[19 * SECTOR..19 * SECTOR + 32];
        let sum = cat.chunks(2).fold(0u16, |a, w| a.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
        assert_eq!(sum, 0, "validation entry checksum");
        assert_eq!(iso[19 * SECTOR + 32], 0x88);
    }
}
