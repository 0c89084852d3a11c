//! `bootdisk`: a 1 MiB hard-disk image whose boot sector checks the BIOS
//! disk services a boot loader relies on — INT 13h AH=02h (CHS read),
//! AH=41h (extensions present) and AH=42h (LBA read of the last sector) —
//! then reports on the debug console and exits through 0xF4 (0 = passed).
//! Booted by a BIOS (SeaBIOS, or ferrite's own later) from an IDE disk.

use iced_x86::code_asm::*;

/// What the boot sector prints when every check passed.
pub const MESSAGE: &str = "booted from disk: CHS and LBA reads ok\n";
/// Size of the image in 512-byte sectors.
pub const SECTORS: u64 = 2048;

/// The disk image.
pub fn image() -> Vec<u8> {
    let mut disk = vec![0u8; (SECTORS * 512) as usize];
    disk[..512].copy_from_slice(&boot_sector());
    disk[512..516].copy_from_slice(b"FERR");
    let last = ((SECTORS - 1) * 512) as usize;
    disk[last..last + 4].copy_from_slice(b"LAST");
    disk
}

// Data at fixed places in the boot sector (code stays below 0x7D7F).
const DRIVE: u32 = 0x7D7F;
const DAP: u32 = 0x7D80;
const OK_MSG: u32 = 0x7D90;

fn boot_sector() -> Vec<u8> {
    let mut a = CodeAssembler::new(16).expect("16-bit assembler");
    build(&mut a).expect("boot sector assembles");
    let mut code = a.assemble(0x7C00).expect("boot sector assembles");
    assert!(code.len() <= (DRIVE - 0x7C00) as usize, "boot code too long: {} bytes", code.len());
    code.resize(512, 0);
    let at = |addr: u32| (addr - 0x7C00) as usize;
    code[at(DRIVE)] = 0x80;
    // Disk address packet: size 16, 1 sector, buffer 0000:9000, LBA.
    let mut dap = vec![16, 0, 1, 0, 0x00, 0x90, 0x00, 0x00];
    dap.extend_from_slice(&(SECTORS - 1).to_le_bytes());
    code[at(DAP)..at(DAP) + 16].copy_from_slice(&dap);
    code[at(OK_MSG)..at(OK_MSG) + MESSAGE.len()].copy_from_slice(MESSAGE.as_bytes());
    code[510] = 0x55;
    code[511] = 0xAA;
    code
}

fn build(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut fail = a.create_label();
    super::boot::prologue(a)?;
    a.mov(byte_ptr(DRIVE), dl)?;
    // CHS read: cylinder 0, head 0, sector 2 -> 0000:8000.
    a.mov(ax, 0x0201u32)?;
    a.mov(cx, 0x0002u32)?;
    a.mov(dh, 0)?;
    a.mov(bx, 0x8000u32)?;
    a.int(0x13)?;
    a.jc(fail)?;
    a.cmp(dword_ptr(0x8000u32), 0x5252_4546u32)?; // "FERR"
    a.jne(fail)?;
    // Extensions present?
    a.mov(ah, 0x41)?;
    a.mov(bx, 0x55AAu32)?;
    a.mov(dl, byte_ptr(DRIVE))?;
    a.int(0x13)?;
    a.jc(fail)?;
    a.cmp(bx, 0xAA55u32)?;
    a.jne(fail)?;
    // LBA read of the last sector -> 0000:9000.
    a.mov(si, DAP)?;
    a.mov(ah, 0x42)?;
    a.mov(dl, byte_ptr(DRIVE))?;
    a.int(0x13)?;
    a.jc(fail)?;
    a.cmp(dword_ptr(0x9000u32), 0x5453_414Cu32)?; // "LAST"
    a.jne(fail)?;
    super::boot::report(a, &mut fail, OK_MSG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_has_a_boot_signature_and_the_marker_sectors() {
        let d = image();
        assert_eq!(d.len(), 1 << 20);
        assert_eq!(&d[510..512], &[0x55, 0xAA]);
        assert_eq!(&d[512..516], b"FERR");
        assert_eq!(&d[(1 << 20) - 512..(1 << 20) - 508], b"LAST");
    }
}
