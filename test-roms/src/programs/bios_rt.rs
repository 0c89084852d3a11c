//! What the BIOS service test programs (`bios_*.rs`) share: a real-mode
//! runtime (inline-string output to the debug console, checks that count
//! failures, the exit through port 0xF4), a one-sector loader, and the
//! boot media the tests boot them from: a 1.44 MB floppy, a 4 MiB hard disk
//! with a partition table, and an El Torito CD (no emulation, floppy
//! emulation, hard-disk emulation).
//!
//! Memory map (physical, segments 0):
//!
//! | range | use |
//! |---|---|
//! | 0x0600-0x06FF | runtime and program variables ([`FAILS`], [`DRIVE`], [`VARS`]) |
//! | 0x1000-0x6FFF | buffers ([`BUF`]) |
//! | 0x7000-0x7BFF | stack |
//! | 0x7C00-0x7DFF | the loader (sector 0, with the partition table and 55AAh) |
//! | 0x7E00- | the program body and the runtime, at most [`MAX_SECTORS`] sectors in all |
//!
//! The loader reads sectors 2.. of cylinder 0, head 0 of the boot drive
//! with INT 13h AH=02h, unless the body is there already (a no-emulation
//! CD boot loads the whole image).

use super::asm::{build, Code, Image, R};
use iced_x86::code_asm::*;

pub const LOAD: u32 = 0x7C00;
pub const BODY: u32 = 0x7E00;
pub const FAILS: u32 = 0x600;
pub const SECT: u32 = 0x602;
/// The boot drive (DL at entry).
pub const DRIVE: u32 = 0x604;
/// First free program variable.
pub const VARS: u32 = 0x610;
/// Disk buffers.
pub const BUF: u32 = 0x1000;
/// Sectors of a program image, loader included (one floppy track).
pub const MAX_SECTORS: usize = 18;
const MAGIC: u32 = 0x5452_4246; // "FBRT"

/// The boot media a program is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Floppy,
    HardDisk,
    /// El Torito, no emulation: drive E0h-ish, 2048-byte sectors.
    Cd,
    /// El Torito floppy emulation (1.44 MB): drive 00h.
    CdFloppy,
    /// El Torito hard-disk emulation: drive 80h.
    CdHardDisk,
}

impl Media {
    /// The `ferrite run` flag and `--boot` letter for this media.
    pub fn flags(self) -> (&'static str, &'static str) {
        match self {
            Media::Floppy => ("--fda", "a"),
            Media::HardDisk => ("--hda", "c"),
            _ => ("--cdrom", "d"),
        }
    }
}

/// Sectors of the hard-disk images (4 MiB: 8 cylinders of 16 heads and
/// 63 sectors, plus a spare 128 sectors).
pub const HD_SECTORS: u64 = 8192;
/// The geometry the partition table of the hard-disk images names.
pub const HD_HEADS: u32 = 16;
pub const HD_SPT: u32 = 63;
pub const HD_CYLS: u32 = 8;
/// Sectors from here on carry markers: their first dword is their LBA
/// and the next four bytes "MARK".
pub const MARK_FROM_512: u64 = 64;
/// The same for the 2048-byte sectors of the CD images.
pub const MARK_FROM_2048: u64 = 32;
/// Sectors of a CD image (2048 bytes).
pub const CD_SECTORS: u64 = 800;
/// Where the boot image starts on the CD.
pub const CD_BOOT_LBA: u32 = 20;

/// Build a program: `body` emits the checks (16-bit code at label `main`,
/// DS = ES = SS = 0, the boot drive in [`DRIVE`]) and falls through to the
/// runtime's exit.
pub(crate) fn program(name: &'static str, body: impl Fn(&mut Code, &mut Image) -> R) -> Vec<u8> {
    let mut image = build(LOAD, |img| {
        let mut c = Code::new(16, LOAD, name)?;
        loader(&mut c, img)?;
        img.place(c)?;
        img.data(0x7DFE, vec![0x55, 0xAA]);
        let mut c = Code::new(16, BODY, name)?;
        c.here("brt.main")?;
        body(&mut c, img)?;
        let f = c.lbl("brt.finish");
        c.jmp(f)?;
        runtime(&mut c)?;
        c.here("brt.magic")?;
        c.dd(&[MAGIC])?;
        img.place(c)
    });
    let sectors = image.len().div_ceil(512);
    assert!(sectors <= MAX_SECTORS, "{name} is {sectors} sectors; at most {MAX_SECTORS} fit the loader");
    image.resize(sectors * 512, 0);
    image
}

fn loader(c: &mut Code, img: &mut Image) -> R {
    let magic = img.addr("brt.magic");
    let main = img.addr("brt.main");
    let sectors = (magic + 4 - LOAD).div_ceil(512);
    c.cli()?;
    c.cld()?;
    c.xor(ax, ax)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.mov(ss, ax)?;
    c.mov(sp, LOAD)?;
    c.sti()?;
    c.mov(byte_ptr(DRIVE), dl)?;
    c.mov(word_ptr(FAILS), 0u32)?;
    c.mov(word_ptr(SECT), 0u32)?;
    let mut go = c.fresh();
    let mut fail = c.fresh();
    c.cmp(dword_ptr(magic), MAGIC)?;
    c.je(go)?;
    c.mov(ax, 0x0200 | (sectors.max(2) - 1))?;
    c.mov(cx, 0x0002u32)?;
    c.mov(dh, 0)?;
    c.mov(dl, byte_ptr(DRIVE))?;
    c.mov(bx, BODY)?;
    c.int(0x13)?;
    c.jc(fail)?;
    c.cmp(dword_ptr(magic), MAGIC)?;
    c.jne(fail)?;
    c.set(&mut go)?;
    c.mov(dl, byte_ptr(DRIVE))?;
    c.jmp(main as u64)?;
    c.set(&mut fail)?;
    let msg = format!("FAIL {}: loading the program\n\0", c.prog);
    let mut print = c.fresh();
    let mut halt = c.fresh();
    // The message follows the CALL; its return address points at it.
    c.call(print)?;
    c.db(msg.as_bytes())?;
    c.set(&mut print)?;
    c.pop(si)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    c.lodsb()?;
    c.test(al, al)?;
    c.jz(halt)?;
    c.out(0xE9, al)?;
    c.jmp(l)?;
    c.set(&mut halt)?;
    c.mov(al, 0xFF)?;
    c.out(0xF4, al)?;
    let mut h = c.fresh();
    c.set(&mut h)?;
    c.hlt()?;
    c.jmp(h)
}

fn runtime(c: &mut Code) -> R {
    // puts_inline: print the zero-terminated string behind the call.
    c.here("brt.puts_inline")?;
    c.push(bp)?;
    c.mov(bp, sp)?;
    c.push(ax)?;
    c.push(si)?;
    c.push(ds)?;
    c.push(cs)?;
    c.pop(ds)?;
    c.mov(si, word_ptr(bp + 2))?;
    let p = c.lbl("brt.print_si");
    c.call(p)?;
    c.mov(word_ptr(bp + 2), si)?;
    c.pop(ds)?;
    c.pop(si)?;
    c.pop(ax)?;
    c.pop(bp)?;
    c.ret()?;

    // print_si: DS:SI zero-terminated string, SI left behind the zero.
    c.here("brt.print_si")?;
    let l = c.lbl("brt.print_si");
    let mut d = c.fresh();
    c.lodsb()?;
    c.test(al, al)?;
    c.jz(d)?;
    c.out(0xE9, al)?;
    c.jmp(l)?;
    c.set(&mut d)?;
    c.ret()?;

    // hex16: AX as four hex digits.
    c.here("brt.hex16")?;
    c.push(ax)?;
    c.push(bx)?;
    c.push(cx)?;
    c.mov(bx, ax)?;
    c.mov(cx, 4u32)?;
    let mut l = c.fresh();
    let mut o = c.fresh();
    c.set(&mut l)?;
    c.rol(bx, 4)?;
    c.mov(al, bl)?;
    c.and(al, 0xF)?;
    c.add(al, b'0' as u32)?;
    c.cmp(al, b'9' as u32)?;
    c.jbe(o)?;
    c.add(al, 7u32)?;
    c.set(&mut o)?;
    c.out(0xE9, al)?;
    c.loop_(l)?;
    c.pop(cx)?;
    c.pop(bx)?;
    c.pop(ax)?;
    c.ret()?;

    // fail_inline: count a failure, print the string behind the call and
    // the word pushed before it; return past the string, dropping it.
    c.here("brt.fail_inline")?;
    c.push(bp)?;
    c.mov(bp, sp)?;
    c.push(ax)?;
    c.push(si)?;
    c.push(ds)?;
    c.push(cs)?;
    c.pop(ds)?;
    c.inc(word_ptr(FAILS))?;
    c.mov(si, word_ptr(bp + 2))?;
    let p = c.lbl("brt.print_si");
    c.call(p)?;
    c.mov(word_ptr(bp + 2), si)?;
    c.mov(ax, word_ptr(bp + 4))?;
    let h = c.lbl("brt.hex16");
    c.call(h)?;
    c.mov(al, 10u32)?;
    c.out(0xE9, al)?;
    c.pop(ds)?;
    c.pop(si)?;
    c.pop(ax)?;
    c.pop(bp)?;
    c.ret_1(2)?;

    // finish: the summary line and the exit device.
    c.here("brt.finish")?;
    c.xor(ax, ax)?;
    c.mov(ds, ax)?;
    c.cmp(word_ptr(FAILS), 0u32)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    let msg = format!("FAIL {}: checks failed: ", c.prog);
    puts(c, &msg)?;
    c.mov(ax, word_ptr(FAILS))?;
    let h = c.lbl("brt.hex16");
    c.call(h)?;
    puts(c, "\n")?;
    c.set(&mut ok)?;
    let msg = format!("done {}\n", c.prog);
    puts(c, &msg)?;
    c.mov(ax, word_ptr(FAILS))?;
    c.out(0xF4, al)?;
    let mut h = c.fresh();
    c.set(&mut h)?;
    c.cli()?;
    c.hlt()?;
    c.jmp(h)
}

/// Print `s` on the debug console (clobbers nothing).
pub(crate) fn puts(c: &mut Code, s: &str) -> R {
    let f = c.lbl("brt.puts_inline");
    c.call(f)?;
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    c.db(&b)
}

/// Count and report a failure showing the word pushed last (popped).
fn fail_pushed(c: &mut Code, what: &str) -> R {
    let f = c.lbl("brt.fail_inline");
    c.call(f)?;
    let mut b = format!("FAIL {}: {what}: got ", c.prog).into_bytes();
    b.push(0);
    c.db(&b)
}

/// Report a failure unless `reg == expect`.
pub(crate) fn check16(c: &mut Code, reg: AsmRegister16, expect: u16, what: &str) -> R {
    c.cmp(reg, expect as u32)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.push(reg)?;
    fail_pushed(c, &format!("{what} (expected {expect:04X})"))?;
    c.set(&mut ok)?;
    c.nop()
}

/// Report a failure unless `reg & mask == expect`.
pub(crate) fn check16_mask(c: &mut Code, reg: AsmRegister16, mask: u16, expect: u16, what: &str) -> R {
    c.push(reg)?;
    c.and(reg, mask as u32)?;
    c.cmp(reg, expect as u32)?;
    c.pop(reg)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.push(reg)?;
    fail_pushed(c, &format!("{what} (expected {expect:04X} under mask {mask:04X})"))?;
    c.set(&mut ok)?;
    c.nop()
}

/// Report a failure unless the 32-bit `reg == expect` (shows the low word).
pub(crate) fn check32(c: &mut Code, reg: AsmRegister32, expect: u32, what: &str) -> R {
    c.cmp(reg, expect)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.push(reg)?;
    c.pop(word_ptr(VARS + 0xEC))?;
    c.pop(word_ptr(VARS + 0xEE))?;
    c.push(word_ptr(VARS + 0xEC))?;
    fail_pushed(c, &format!("{what} (expected {expect:08X}; low word)"))?;
    c.set(&mut ok)?;
    c.nop()
}

/// Report a failure unless the word at `addr` equals `expect`.
pub(crate) fn check_m16(c: &mut Code, addr: u32, expect: u16, what: &str) -> R {
    c.cmp(word_ptr(addr), expect as u32)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.push(word_ptr(addr))?;
    fail_pushed(c, &format!("{what} (expected {expect:04X})"))?;
    c.set(&mut ok)?;
    c.nop()
}

/// Report a failure unless the dword at `addr` equals `expect`.
pub(crate) fn check_m32(c: &mut Code, addr: u32, expect: u32, what: &str) -> R {
    c.cmp(dword_ptr(addr), expect)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.push(word_ptr(addr))?;
    fail_pushed(c, &format!("{what} (expected {expect:08X}; low word)"))?;
    c.set(&mut ok)?;
    c.nop()
}

/// Report a failure unless CF is `set` (shows AX: the status in AH).
pub(crate) fn check_cf(c: &mut Code, set: bool, what: &str) -> R {
    let mut ok = c.fresh();
    if set {
        c.jc(ok)?;
    } else {
        c.jnc(ok)?;
    }
    c.push(ax)?;
    fail_pushed(c, &format!("{what}: CF {} (AX)", if set { "clear" } else { "set" }))?;
    c.set(&mut ok)?;
    c.nop()
}

/// Report a failure unless ZF is `set` (shows AX).
pub(crate) fn check_zf(c: &mut Code, set: bool, what: &str) -> R {
    let mut ok = c.fresh();
    if set {
        c.jz(ok)?;
    } else {
        c.jnz(ok)?;
    }
    c.push(ax)?;
    fail_pushed(c, &format!("{what}: ZF {} (AX)", if set { "clear" } else { "set" }))?;
    c.set(&mut ok)?;
    c.nop()
}

/// Report an unconditional failure showing `reg`.
pub(crate) fn fail16(c: &mut Code, reg: AsmRegister16, what: &str) -> R {
    c.push(reg)?;
    fail_pushed(c, what)
}

/// Start a named group of checks.
pub(crate) fn section(c: &mut Code) -> R {
    c.push(ax)?;
    c.mov(ax, word_ptr(FAILS))?;
    c.mov(word_ptr(SECT), ax)?;
    c.pop(ax)
}

/// Print "ok <prog> <name>" when no check failed since [`section`].
pub(crate) fn section_ok(c: &mut Code, name: &str) -> R {
    c.push(ax)?;
    c.mov(ax, word_ptr(FAILS))?;
    c.cmp(ax, word_ptr(SECT))?;
    c.pop(ax)?;
    let mut skip = c.fresh();
    c.jne(skip)?;
    let msg = format!("ok {} {name}\n", c.prog);
    puts(c, &msg)?;
    c.set(&mut skip)?;
    c.nop()
}

// ---- media -----------------------------------------------------------------

/// Put the partition table the hard-disk images carry into sector 0: one
/// FAT16 partition from CHS 0/1/1 to the end of cylinder 7.
fn partition_table(sector0: &mut [u8]) {
    let e = &mut sector0[0x1BE..0x1CE];
    let end_cyl = HD_CYLS - 1;
    let start = HD_SPT; // LBA of 0/1/1
    let len = HD_CYLS * HD_HEADS * HD_SPT - start;
    e.copy_from_slice(&[
        0x80,
        1,
        1,
        0,
        0x06,
        (HD_HEADS - 1) as u8,
        (HD_SPT as u8) | ((end_cyl >> 2) as u8 & 0xC0),
        end_cyl as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    e[8..12].copy_from_slice(&start.to_le_bytes());
    e[12..16].copy_from_slice(&len.to_le_bytes());
}

fn mark(image: &mut [u8], sector: usize, from: u64) {
    for (lba, s) in image.chunks_mut(sector).enumerate().skip(from as usize) {
        s[0..4].copy_from_slice(&(lba as u32).to_le_bytes());
        s[4..8].copy_from_slice(b"MARK");
    }
}

/// A 1.44 MB floppy with `prog` at sector 0 and markers from sector 64.
pub fn floppy(prog: &[u8]) -> Vec<u8> {
    let mut img = vec![0u8; 1_474_560];
    mark(&mut img, 512, MARK_FROM_512);
    img[..prog.len()].copy_from_slice(prog);
    img
}

/// A 4 MiB hard disk with `prog` at sector 0 (plus a partition table) and
/// markers from sector 64.
pub fn hard_disk(prog: &[u8]) -> Vec<u8> {
    let mut img = vec![0u8; (HD_SECTORS * 512) as usize];
    mark(&mut img, 512, MARK_FROM_512);
    img[..prog.len()].copy_from_slice(prog);
    partition_table(&mut img[..512]);
    img
}

/// The image of `prog` on `media`.
pub fn image(prog: &[u8], media: Media) -> Vec<u8> {
    match media {
        Media::Floppy => floppy(prog),
        Media::HardDisk => hard_disk(prog),
        Media::Cd => iso(prog, 0, (prog.len() / 512) as u16),
        Media::CdFloppy => iso(&floppy(prog), 2, 1),
        Media::CdHardDisk => iso(&hard_disk(prog), 4, 1),
    }
}

fn both16(dst: &mut [u8], v: u16) {
    dst[..2].copy_from_slice(&v.to_le_bytes());
    dst[2..4].copy_from_slice(&v.to_be_bytes());
}

fn both32(dst: &mut [u8], v: u32) {
    dst[..4].copy_from_slice(&v.to_le_bytes());
    dst[4..8].copy_from_slice(&v.to_be_bytes());
}

/// A directory record for a directory at `lba` of one sector.
fn dir_record(r: &mut [u8], lba: u32) {
    r[0] = 34;
    both32(&mut r[2..10], lba);
    both32(&mut r[10..18], 2048);
    r[25] = 2;
    both16(&mut r[28..32], 1);
    r[32] = 1;
}

/// An ISO 9660 image with an El Torito catalog whose initial entry boots
/// `boot` (media type 0 no emulation, 2 1.44 MB floppy, 4 hard disk;
/// `count` 512-byte sectors loaded). 2048-byte markers cover the sectors
/// from [`MARK_FROM_2048`] that the boot image does not.
pub fn iso(boot: &[u8], media: u8, count: u16) -> Vec<u8> {
    const S: usize = 2048;
    let boot_sectors = boot.len().div_ceil(S);
    let root = CD_BOOT_LBA as usize + boot_sectors;
    let total = (CD_SECTORS as usize).max(root + 40);
    let mut iso = vec![0u8; total * S];
    mark(&mut iso, S, MARK_FROM_2048);
    for s in [16usize, 17, 18, 19, root] {
        iso[s * S..(s + 1) * S].fill(0);
    }
    iso[CD_BOOT_LBA as usize * S..CD_BOOT_LBA as usize * S + boot_sectors * S].fill(0);
    let pvd = &mut iso[16 * S..17 * S];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[40..72].fill(b' ');
    pvd[40..53].copy_from_slice(b"FERRITE_BIOST");
    both32(&mut pvd[80..88], total as u32);
    both16(&mut pvd[120..124], 1);
    both16(&mut pvd[124..128], 1);
    both16(&mut pvd[128..132], S as u16);
    dir_record(&mut pvd[156..190], root as u32);
    pvd[881] = 1;
    let br = &mut iso[17 * S..18 * S];
    br[1..6].copy_from_slice(b"CD001");
    br[6] = 1;
    br[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
    br[0x47..0x4B].copy_from_slice(&19u32.to_le_bytes());
    let t = &mut iso[18 * S..19 * S];
    t[0] = 255;
    t[1..6].copy_from_slice(b"CD001");
    t[6] = 1;
    let cat = &mut iso[19 * S..19 * S + 64];
    cat[0] = 1;
    cat[4..11].copy_from_slice(b"FERRITE");
    cat[30] = 0x55;
    cat[31] = 0xAA;
    let sum = cat[..32].chunks(2).fold(0u16, |a, w| a.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    cat[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    cat[32] = 0x88;
    cat[33] = media;
    cat[38..40].copy_from_slice(&count.to_le_bytes());
    cat[40..44].copy_from_slice(&CD_BOOT_LBA.to_le_bytes());
    let at = CD_BOOT_LBA as usize * S;
    iso[at..at + boot.len()].copy_from_slice(boot);
    let r = &mut iso[root * S..(root + 1) * S];
    dir_record(&mut r[0..34], root as u32);
    dir_record(&mut r[34..68], root as u32);
    r[34 + 33] = 1;
    iso
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_has_the_loader_the_signature_and_fits_a_track() {
        let p = program("selftest", |c, _| {
            c.mov(ax, 1u32)?;
            check16(c, ax, 1, "one")
        });
        assert_eq!(&p[510..512], &[0x55, 0xAA]);
        assert!(p.len() % 512 == 0 && p.len() / 512 <= MAX_SECTORS);
        let hd = hard_disk(&p);
        assert_eq!(hd[0x1BE], 0x80, "partition table present");
        assert_eq!(&hd[64 * 512 + 4..64 * 512 + 8], b"MARK");
        let cd = image(&p, Media::Cd);
        let cat = &cd[19 * 2048..19 * 2048 + 32];
        let sum = cat.chunks(2).fold(0u16, |a, w| a.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
        assert_eq!(sum, 0);
        assert_eq!(&cd[20 * 2048 + 510..20 * 2048 + 512], &[0x55, 0xAA]);
        assert_eq!(&cd[40 * 2048..40 * 2048 + 8], &[40, 0, 0, 0, b'M', b'A', b'R', b'K']);
    }
}
