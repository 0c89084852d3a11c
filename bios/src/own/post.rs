//! Power-on self test: what the BIOS sets up before INT 19h. Runs on the
//! host when the reset vector's jump reaches the POST stub.
//!
//! 1. CMOS shutdown status (register 0Fh) 05h, 0Ah, 0Bh, 0Ch: a program
//!    that reset the CPU to leave protected mode resumes through 40:67
//!    without a POST (IBM PC/AT convention).
//! 2. Interrupt vectors: every vector to a ROM handler (a plain IRET for
//!    those without a service), the data vectors 1Dh/1Eh/41h/43h/46h to
//!    their tables, the user vectors 60h-67h and INT 1Fh to 0000:0000.
//! 3. BIOS data area and the 1 KiB EBDA at 9FC0:0000 (see `e820.rs`).
//! 4. 8259A pair (vectors 08h/70h, IRQ 0, 1, 2, 6 unmasked), 8254
//!    channel 0 at 18.2 Hz, RTC registers A/B, the 8042 command byte
//!    (translation, system flag, keyboard interrupt; mouse port off).
//! 5. PCI enumeration (`pci.rs`), the drives (`disk.rs`) and their tables.
//! 6. Text mode 3, the banner, then the option ROMs at C0000h-DFFFFh.

use ferrite_core::cpu::state::{SegReg, ESP};

use super::clock::TICKS;
use super::ctx::Ctx;
use super::disk::{dpte, fdpt, Class, Drives, EBDA_DPTE, EBDA_FDPT};
use super::keyboard::{BUF_END, BUF_START, DEFAULT_END, DEFAULT_START, HEAD, KBD_101, TAIL};
use super::platform::BiosDisk;
use super::rom::{Rom, ROM_SEGMENT};
use super::system::{BASE_MEMORY, COM_PORTS, COM_TIMEOUTS, EBDA_SEGMENT, EQUIPMENT};
use super::video;
use crate::e820::EBDA_BASE;

/// Stack of POST and the option ROMs (SS:SP = 0000:7C00).
pub const POST_STACK: u32 = 0x7C00;

/// The outcome of POST.
pub enum Post {
    /// Resumed a program through 40:67 (no POST).
    Resumed,
    /// Ready to boot: the drives and the option ROMs still to run.
    Done { drives: Drives, option_roms: Vec<u32> },
}

pub fn post(c: &mut Ctx, rom: &Rom) -> Post {
    let shutdown = c.cmos(0x0F);
    c.set_cmos(0x0F, 0);
    if resume(c, shutdown) {
        return Post::Resumed;
    }
    vectors(c, rom);
    data_areas(c);
    chips(c);
    let pci = super::pci::enumerate(c);
    let drives = Drives::probe(c.p);
    disk_tables(c, &drives);
    super::boot::update_drive_counts(c, &drives);
    video::set_mode(c, 3, true);
    banner(c, &drives, &pci);
    let option_roms = scan_option_roms(c);
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss] {
        c.set_sel(s, 0);
    }
    c.set_reg32(ESP, POST_STACK);
    Post::Done { drives, option_roms }
}

/// The IBM shutdown codes that return to a program instead of booting.
fn resume(c: &mut Ctx, code: u8) -> bool {
    let ip = c.bda16(0x67);
    let cs = c.bda16(0x69);
    match code {
        0x05 => {
            init_pics(c);
            c.outb(0x20, 0x20);
            c.jump(cs, ip);
        }
        0x0A => c.jump(cs, ip),
        0x0B | 0x0C => {
            // 40:67 holds SS:SP; return from there with IRET or RETF.
            c.set_sel(SegReg::Ss, cs);
            c.set_reg32(ESP, ip as u32);
            let ip = c.pop16();
            let seg = c.pop16();
            if code == 0x0B {
                let flags = c.pop16();
                c.cpu.state.set_eflags(flags as u32 | 0x2);
            }
            c.jump(seg, ip);
        }
        _ => return false,
    }
    true
}

fn vectors(c: &mut Ctx, rom: &Rom) {
    let ebda_seg = (EBDA_BASE >> 4) as u16;
    for v in 0..256u32 {
        let (seg, off) = match v {
            0x1D => (ROM_SEGMENT, rom.at.video_params),
            0x1E => (ROM_SEGMENT, rom.at.diskette_params),
            // The upper half of the 8x8 graphics font (characters 80h-FFh).
            0x1F => (ROM_SEGMENT, super::rom::FONT8_FULL_AT + 128 * 8),
            0x60..=0x67 => (0, 0),
            0x41 => (ebda_seg, EBDA_FDPT[0]),
            0x46 => (ebda_seg, EBDA_FDPT[1]),
            0x43 => (ROM_SEGMENT, rom.at.font8),
            _ => (ROM_SEGMENT, rom.vectors[v as usize]),
        };
        c.wr16(v * 4, off);
        c.wr16(v * 4 + 2, seg);
    }
}

fn data_areas(c: &mut Ctx) {
    c.write_bytes(0x400, &[0u8; 0x100]);
    c.write_bytes(EBDA_BASE, &[0u8; 0x400]);
    c.wr16(EBDA_BASE, 1);
    c.set_bda16(COM_PORTS, 0x3F8);
    c.set_bda16(COM_PORTS + 2, 0x2F8);
    c.set_bda16(EBDA_SEGMENT, (EBDA_BASE >> 4) as u16);
    c.set_bda16(BASE_MEMORY, (EBDA_BASE >> 10) as u16);
    // Equipment: two serial ports, 80x25 colour, the FPU bit as CMOS says;
    // the floppy bits follow the drives.
    let fpu = (c.cmos(0x14) & 0x02) as u16;
    c.set_bda16(EQUIPMENT, 0x0420 | fpu);
    c.set_bda16(BUF_START, DEFAULT_START);
    c.set_bda16(BUF_END, DEFAULT_END);
    c.set_bda16(HEAD, DEFAULT_START);
    c.set_bda16(TAIL, DEFAULT_START);
    c.set_bda8(super::keyboard::FLAGS3, KBD_101);
    for i in 0..4 {
        c.set_bda8(COM_TIMEOUTS + i, 1);
        c.set_bda8(0x78 + i, 0x14);
    }
    // The tick count starts at the RTC's time of day.
    let bcd = |v: u8| (v >> 4) as u32 * 10 + (v & 0x0F) as u32;
    let b = c.cmos(0x0B);
    let (h, m, s) = (c.cmos(0x04), c.cmos(0x02), c.cmos(0x00));
    let (h, m, s) = if b & 0x04 != 0 { (h as u32, m as u32, s as u32) } else { (bcd(h & 0x7F), bcd(m), bcd(s)) };
    let secs = ((h % 24) * 3600 + m.min(59) * 60 + s.min(59)) as u64;
    c.set_bda32(TICKS, (secs * 1_193_182 / 65_536) as u32);
}

fn init_pics(c: &mut Ctx) {
    // ICW1 edge/cascade/ICW4, ICW2 vector base, ICW3 cascade on IR2, ICW4
    // 8086 mode.
    for (port, v) in [(0x20u16, 0x11u8), (0x21, 0x08), (0x21, 0x04), (0x21, 0x01)] {
        c.outb(port, v);
    }
    for (port, v) in [(0xA0u16, 0x11u8), (0xA1, 0x70), (0xA1, 0x02), (0xA1, 0x01)] {
        c.outb(port, v);
    }
    c.outb(0x21, 0xB8);
    c.outb(0xA1, 0xFF);
}

fn chips(c: &mut Ctx) {
    init_pics(c);
    // PIT channel 0: mode 3, count 65536 (18.2 Hz).
    c.outb(0x43, 0x36);
    c.outb(0x40, 0);
    c.outb(0x40, 0);
    // RTC: 32.768 kHz base, 1024 Hz periodic rate; 24-hour BCD, no
    // interrupts; clear pending flags.
    c.set_cmos(0x0A, 0x26);
    let b = c.cmos(0x0B);
    c.set_cmos(0x0B, (b & 0x01) | 0x02);
    c.cmos(0x0C);
    // 8042: translation, system flag, keyboard interrupt, mouse port off.
    c.outb(0x64, 0x60);
    c.outb(0x60, 0x65);
}

fn disk_tables(c: &mut Ctx, drives: &Drives) {
    for (i, d) in drives.hard.iter().take(2).enumerate() {
        c.write_bytes(EBDA_BASE + EBDA_FDPT[i] as u32, &fdpt(d.chs));
    }
    for (i, slot) in BiosDisk::IDE.iter().enumerate() {
        let cd = drives.cd.iter().any(|d| d.slot == *slot);
        let hd = drives.hard.iter().any(|d| d.slot == *slot);
        if let BiosDisk::Ide { channel, slave } = *slot {
            if cd || hd {
                c.write_bytes(EBDA_BASE + EBDA_DPTE as u32 + 16 * i as u32, &dpte(channel, slave, cd));
            }
        }
    }
}

fn banner(c: &mut Ctx, drives: &Drives, pci: &[(u8, u16, u16)]) {
    let ram = c.mem.ram_size() as u64;
    video::print(c, &format!("{} {}\n", super::rom::ID_STRING, env!("CARGO_PKG_VERSION")));
    video::print(
        c,
        &format!("Memory: {} KiB base, {} KiB extended\n", EBDA_BASE >> 10, ram.saturating_sub(1 << 20) >> 10),
    );
    for (devfn, vendor, device) in pci {
        tracing::debug!("PCI 00:{:02x}.{} {vendor:04x}:{device:04x}", devfn >> 3, devfn & 7);
    }
    for (i, d) in drives.floppy.iter().enumerate() {
        video::print(c, &format!("Floppy {}: {} KiB\n", (b'A' + i as u8) as char, d.sectors / 2));
    }
    for (i, d) in drives.hard.iter().enumerate() {
        let g = d.chs;
        video::print(
            c,
            &format!("Hard disk {:02X}h: {} MiB, CHS {}/{}/{}\n", 0x80 + i, d.sectors >> 11, g.cyls, g.heads, g.spt),
        );
    }
    for (i, d) in drives.cd.iter().enumerate() {
        debug_assert_eq!(d.class, Class::Cd);
        video::print(c, &format!("CD-ROM {:02X}h\n", 0xE0 + i));
    }
}

/// Option ROMs (55AAh, length in 512-byte units, checksum 0) in
/// C0000h-DFFFFh at 2 KiB boundaries.
fn scan_option_roms(c: &mut Ctx) -> Vec<u32> {
    let mut out = Vec::new();
    let mut at = 0xC_0000u32;
    while at < 0xE_0000 {
        if c.rd16(at) != 0xAA55 {
            at += 0x800;
            continue;
        }
        let len = c.rd8(at + 2) as u32 * 512;
        if len == 0 || at + len > 0xE_0000 {
            at += 0x800;
            continue;
        }
        let mut bytes = vec![0u8; len as usize];
        c.read_bytes(at, &mut bytes);
        if bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b)) == 0 {
            out.push(at);
            at += len.next_multiple_of(0x800);
        } else {
            at += 0x800;
        }
    }
    out
}
