//! `bootfloppy`: a 1.44 MB floppy image whose boot sector reads the second
//! sector with INT 13h AH=02h (which on a floppy goes through the 82077AA
//! and 8237 DMA channel 2), checks its marker, reports on the debug console
//! and exits through 0xF4 with 0.

use iced_x86::code_asm::*;

/// What the boot sector prints when the check passed.
pub const MESSAGE: &str = "booted from floppy: sector 2 read\n";

const MSG: u32 = 0x7D80;

/// The 1,474,560-byte image.
pub fn image() -> Vec<u8> {
    let mut img = vec![0u8; 1_474_560];
    let mut a = CodeAssembler::new(16).expect("16-bit assembler");
    let code = (|| -> Result<Vec<u8>, IcedError> {
        let mut fail = a.create_label();
        super::boot::prologue(&mut a)?;
        // Read cylinder 0, head 0, sector 2 of drive DL to 0000:8000.
        a.mov(ax, 0x0201u32)?;
        a.mov(cx, 0x0002u32)?;
        a.mov(dh, 0)?;
        a.mov(bx, 0x8000u32)?;
        a.int(0x13)?;
        a.jc(fail)?;
        a.cmp(dword_ptr(0x8000u32), 0x5050_4C46u32)?; // "FLPP"
        a.jne(fail)?;
        super::boot::report(&mut a, &mut fail, MSG)?;
        a.assemble(0x7C00)
    })()
    .expect("boot sector assembles");
    assert!(code.len() < (MSG - 0x7C00) as usize);
    img[..code.len()].copy_from_slice(&code);
    let m = (MSG - 0x7C00) as usize;
    img[m..m + MESSAGE.len()].copy_from_slice(MESSAGE.as_bytes());
    img[510] = 0x55;
    img[511] = 0xAA;
    img[512..516].copy_from_slice(b"FLPP");
    img
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_is_a_bootable_1440k_floppy() {
        let img = super::image();
        assert_eq!(img.len(), 1_474_560);
        assert_eq!(&img[510..512], &[0x55, 0xAA]);
        assert_eq!(&img[512..516], b"FLPP");
    }
}
