//! `bios_disk`: INT 13h on the drive the program booted from. CHS reads
//! (one and several sectors, the last sector the geometry reaches), writes
//! read back, verify, status, drive type, the extensions (AH=41h, 42h, 43h,
//! 48h) and the El Torito status (AH=4B01h), on floppies, hard disks and
//! CDs (no emulation, floppy and hard-disk emulation). The images carry
//! markers (see `bios_rt`), so each read is checked against the sector it
//! should have come from, whatever geometry the BIOS chose.

use super::asm::{Code, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

/// The program on `media`.
pub fn image(media: Media) -> Vec<u8> {
    image_named("bios_disk", media)
}

// Variables.
const MAXCYL: u32 = VARS;
const HEADS: u32 = VARS + 4;
const SPT: u32 = VARS + 8;
const SECT: u32 = VARS + 12;
const DAP: u32 = VARS + 0x20;
const PARAMS: u32 = VARS + 0x40;
const SPEC: u32 = VARS + 0xA0;
const BUF2: u32 = 0x3000;
const BUF3: u32 = 0x5000;

fn image_named(name: &'static str, media: Media) -> Vec<u8> {
    let prog = program(name, |c, _| body(c, media));
    super::bios_rt::image(&prog, media)
}

fn drive(c: &mut Code) -> R {
    c.mov(dl, byte_ptr(DRIVE))
}

fn body(c: &mut Code, media: Media) -> R {
    let chs = media != Media::Cd;
    let real = matches!(media, Media::Floppy | Media::HardDisk);
    // Emulated drives need not support the extensions (SeaBIOS does not).
    let ext = matches!(media, Media::HardDisk | Media::Cd);

    section(c)?;
    c.mov(ah, 0)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=00h reset")?;
    section_ok(c, "reset")?;

    if chs {
        get_params(c, media)?;
        chs_reads(c)?;
        if real {
            chs_write(c)?;
        } else {
            section(c)?;
            c.mov(eax, 100u32)?;
            let l = c.lbl("disk.lba_to_chs");
            c.call(l)?;
            c.mov(ax, 0x0301u32)?;
            c.mov(bx, BUF2)?;
            drive(c)?;
            c.int(0x13)?;
            check_cf(c, true, "AH=03h on an emulated drive")?;
            section_ok(c, "emulated drive is read-only")?;
        }
        drive_type(c, media)?;
    }
    if ext {
        extensions(c, media)?;
    }
    if !real {
        el_torito(c, media)?;
    }

    section(c)?;
    c.mov(ax, 0x0201u32)?;
    c.mov(cx, 0x0001u32)?;
    c.mov(dx, 0x0085u32)?;
    c.mov(bx, BUF)?;
    c.int(0x13)?;
    check_cf(c, true, "AH=02h on drive 85h, which does not exist")?;
    section_ok(c, "bad drive number")?;
    let f = c.lbl("brt.finish");
    c.jmp(f)?;
    lba_to_chs(c)
}

/// The subroutine: EAX = LBA -> CH/CL/DH (clobbers EAX, EDX's high part).
fn lba_to_chs(c: &mut Code) -> R {
    c.here("disk.lba_to_chs")?;
    c.push(ebx)?;
    c.xor(edx, edx)?;
    c.mov(ebx, dword_ptr(SPT))?;
    c.div(ebx)?;
    c.inc(dx)?;
    c.mov(dword_ptr(SECT), edx)?;
    c.xor(edx, edx)?;
    c.mov(ebx, dword_ptr(HEADS))?;
    c.div(ebx)?;
    // EAX = cylinder, EDX = head.
    c.mov(dh, dl)?;
    c.mov(ch, al)?;
    c.shl(ah, 6)?;
    c.mov(cl, byte_ptr(SECT))?;
    c.or(cl, ah)?;
    c.pop(ebx)?;
    c.ret()
}

fn get_params(c: &mut Code, media: Media) -> R {
    section(c)?;
    c.mov(ah, 0x08)?;
    drive(c)?;
    c.push(es)?;
    c.int(0x13)?;
    c.pop(es)?;
    check_cf(c, false, "AH=08h get parameters")?;
    // Keep the geometry: max cylinder, heads, sectors per track.
    c.movzx(eax, cl)?;
    c.and(al, 0x3F)?;
    c.mov(dword_ptr(SPT), eax)?;
    c.movzx(eax, dh)?;
    c.inc(eax)?;
    c.mov(dword_ptr(HEADS), eax)?;
    c.movzx(eax, cl)?;
    c.shl(eax, 2)?;
    c.and(eax, 0x300)?;
    c.mov(al, ch)?;
    c.mov(dword_ptr(MAXCYL), eax)?;
    match media {
        Media::Floppy | Media::CdFloppy => {
            check16(c, cx, 0x4F12, "AH=08h CX of a 1.44 MB floppy")?;
            c.mov(al, dh)?;
            c.xor(ah, ah)?;
            check16(c, ax, 1, "AH=08h DH of a 1.44 MB floppy")?;
            c.mov(al, bl)?;
            c.xor(ah, ah)?;
            check16(c, ax, 4, "AH=08h BL: 1.44 MB drive type")?;
        }
        _ => {
            if media == Media::HardDisk {
                check16(c, dx, ((HD_HEADS as u16 - 1) << 8) | 1, "AH=08h DX: heads and drive count")?;
            } else {
                check16_mask(c, dx, 0xFF00, (HD_HEADS as u16 - 1) << 8, "AH=08h DH: heads")?;
            }
            check16_mask(c, cx, 0x3F, HD_SPT as u16, "AH=08h CL sectors per track")?;
        }
    }
    section_ok(c, "get parameters")
}

/// Read LBA `lba` (in EAX) with AH=02h, `count` sectors to `buf`.
fn read_chs(c: &mut Code, lba: u32, count: u8, buf: u32) -> R {
    c.mov(eax, lba)?;
    let l = c.lbl("disk.lba_to_chs");
    c.call(l)?;
    c.mov(ax, 0x0200 | count as u32)?;
    c.mov(bx, buf)?;
    drive(c)?;
    c.int(0x13)
}

fn chs_reads(c: &mut Code) -> R {
    section(c)?;
    // Sector 1 holds the start of this program's body.
    c.mov(ax, 0x0201u32)?;
    c.mov(cx, 0x0002u32)?;
    c.mov(dh, 0)?;
    c.mov(bx, BUF)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=02h read of sector 2")?;
    check16(c, ax, 0x0001, "AH=02h AX after one sector")?;
    c.mov(eax, dword_ptr(BODY))?;
    c.cmp(eax, dword_ptr(BUF))?;
    let mut ok = c.fresh();
    c.je(ok)?;
    fail16(c, ax, "sector 2 is not the program body")?;
    c.set(&mut ok)?;
    // Three sectors at once.
    read_chs(c, MARK_FROM_512 as u32, 3, BUF)?;
    check_cf(c, false, "AH=02h read of three sectors")?;
    check16_mask(c, ax, 0xFF, 3, "AH=02h AL sectors read")?;
    for i in 0..3u32 {
        check_m32(c, BUF + 512 * i, MARK_FROM_512 as u32 + i, "marker of a multi-sector read")?;
    }
    // The last sector AH=08h's geometry reaches.
    c.mov(eax, dword_ptr(MAXCYL))?;
    c.inc(eax)?;
    c.imul_2(eax, dword_ptr(HEADS))?;
    c.imul_2(eax, dword_ptr(SPT))?;
    c.dec(eax)?;
    c.mov(dword_ptr(VARS + 0x10), eax)?;
    let l = c.lbl("disk.lba_to_chs");
    c.call(l)?;
    c.mov(ax, 0x0201u32)?;
    c.mov(bx, BUF)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=02h read of the last CHS sector")?;
    c.mov(eax, dword_ptr(VARS + 0x10))?;
    c.cmp(eax, dword_ptr(BUF))?;
    let mut ok = c.fresh();
    c.je(ok)?;
    fail16(c, ax, "the last CHS sector has the wrong marker (expected LBA)")?;
    c.set(&mut ok)?;
    // Verify, then the status of the last operation.
    c.mov(eax, MARK_FROM_512 as u32)?;
    let l = c.lbl("disk.lba_to_chs");
    c.call(l)?;
    c.mov(ax, 0x0401u32)?;
    c.mov(bx, BUF)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=04h verify")?;
    c.mov(ah, 0x01)?;
    drive(c)?;
    c.int(0x13)?;
    check16_mask(c, ax, 0xFF00, 0, "AH=01h status after success")?;
    section_ok(c, "CHS reads")
}

fn chs_write(c: &mut Code) -> R {
    section(c)?;
    // A pattern in BUF2 to LBA 100, read back into BUF3.
    c.mov(di, BUF2)?;
    c.mov(cx, 256u32)?;
    c.mov(ax, 0x5A00u32)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    c.stosw()?;
    c.inc(ax)?;
    c.loop_(l)?;
    c.mov(eax, 100u32)?;
    let f = c.lbl("disk.lba_to_chs");
    c.call(f)?;
    c.mov(ax, 0x0301u32)?;
    c.mov(bx, BUF2)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=03h write")?;
    check16_mask(c, ax, 0xFF, 1, "AH=03h AL sectors written")?;
    read_chs(c, 100, 1, BUF3)?;
    check_cf(c, false, "AH=02h read back")?;
    check_m16(c, BUF3, 0x5A00, "written word 0")?;
    check_m16(c, BUF3 + 510, 0x5AFF, "written word 255")?;
    section_ok(c, "CHS write and read back")
}

fn drive_type(c: &mut Code, media: Media) -> R {
    section(c)?;
    c.mov(ah, 0x15)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=15h drive type")?;
    match media {
        Media::Floppy | Media::CdFloppy => {
            // 01h: no change line, 02h: change line.
            c.cmp(ah, 1)?;
            let mut ok = c.fresh();
            c.je(ok)?;
            check16_mask(c, ax, 0xFF00, 0x0200, "AH=15h type of a floppy")?;
            c.set(&mut ok)?;
        }
        _ => check16_mask(c, ax, 0xFF00, 0x0300, "AH=15h type of a hard disk")?,
    }
    section_ok(c, "drive type")
}

/// A disk address packet at DAP: `count` sectors at `lba` to `buf`.
fn dap(c: &mut Code, count: u16, lba: u32, buf: u32) -> R {
    c.mov(word_ptr(DAP), 0x0010u32)?;
    c.mov(word_ptr(DAP + 2), count as u32)?;
    c.mov(word_ptr(DAP + 4), buf)?;
    c.mov(word_ptr(DAP + 6), 0u32)?;
    c.mov(dword_ptr(DAP + 8), lba)?;
    c.mov(dword_ptr(DAP + 12), 0u32)?;
    c.mov(si, DAP)
}

fn extensions(c: &mut Code, media: Media) -> R {
    let sector: u32 = if media == Media::Cd { 2048 } else { 512 };
    let first = if media == Media::Cd { MARK_FROM_2048 as u32 + 8 } else { 200 };
    section(c)?;
    c.mov(ah, 0x41)?;
    c.mov(bx, 0x55AAu32)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=41h extensions present")?;
    check16(c, bx, 0xAA55, "AH=41h BX")?;
    check16_mask(c, cx, 0x0001, 0x0001, "AH=41h CX: extended disk access")?;
    // Two sectors through the packet.
    dap(c, 2, first, BUF)?;
    c.mov(ah, 0x42)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=42h read")?;
    check_m16(c, DAP + 2, 2, "AH=42h sectors transferred")?;
    check_m32(c, BUF, first, "marker of the first sector")?;
    check_m32(c, BUF + sector, first + 1, "marker of the second sector")?;
    // Drive parameters.
    c.mov(word_ptr(PARAMS), 0x1Eu32)?;
    c.mov(si, PARAMS)?;
    c.mov(ah, 0x48)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=48h drive parameters")?;
    check_m16(c, PARAMS + 0x18, sector as u16, "AH=48h bytes per sector")?;
    match media {
        Media::HardDisk => check_m32(c, PARAMS + 0x10, HD_SECTORS as u32, "AH=48h sectors")?,
        Media::Cd => {
            // A BIOS that does not size the disc reports all-ones (SeaBIOS).
            c.cmp(dword_ptr(PARAMS + 0x10), u32::MAX)?;
            let mut unknown = c.fresh();
            c.je(unknown)?;
            check_m32(c, PARAMS + 0x10, CD_SECTORS as u32, "AH=48h sectors")?;
            c.set(&mut unknown)?;
            c.nop()?;
        }
        _ => {}
    }
    if media == Media::HardDisk {
        // Write two sectors at LBA 300 through the packet, read them back.
        c.mov(dword_ptr(BUF2), 0x1234_5678u32)?;
        c.mov(dword_ptr(BUF2 + 512), 0x9ABC_DEF0u32)?;
        dap(c, 2, 300, BUF2)?;
        c.mov(ax, 0x4300u32)?;
        drive(c)?;
        c.int(0x13)?;
        check_cf(c, false, "AH=43h write")?;
        dap(c, 2, 300, BUF3)?;
        c.mov(ah, 0x42)?;
        drive(c)?;
        c.int(0x13)?;
        check_cf(c, false, "AH=42h read back")?;
        check_m32(c, BUF3, 0x1234_5678, "first sector written")?;
        check_m32(c, BUF3 + 512, 0x9ABC_DEF0, "second sector written")?;
    }
    if media == Media::Cd {
        dap(c, 1, first, BUF2)?;
        c.mov(ax, 0x4300u32)?;
        drive(c)?;
        c.int(0x13)?;
        check_cf(c, true, "AH=43h write to a CD")?;
    }
    section_ok(c, "extensions")
}

fn el_torito(c: &mut Code, media: Media) -> R {
    let ty = match media {
        Media::CdFloppy => 2,
        Media::CdHardDisk => 4,
        _ => 0,
    };
    section(c)?;
    c.mov(byte_ptr(SPEC), 0)?;
    c.mov(ax, 0x4B01u32)?;
    c.mov(si, SPEC)?;
    drive(c)?;
    c.int(0x13)?;
    check_cf(c, false, "AH=4B01h emulation status")?;
    c.mov(al, byte_ptr(SPEC))?;
    c.mov(ah, byte_ptr(SPEC + 1))?;
    check16_mask(c, ax, 0x0FFF, (ty << 8) | 0x13, "spec packet size and media type")?;
    c.mov(al, byte_ptr(SPEC + 2))?;
    c.mov(ah, byte_ptr(DRIVE))?;
    c.cmp(al, ah)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    fail16(c, ax, "spec packet drive number (AL) is not the boot drive (AH)")?;
    c.set(&mut ok)?;
    check_m32(c, SPEC + 4, CD_BOOT_LBA, "spec packet image LBA")?;
    section_ok(c, "El Torito status")
}
