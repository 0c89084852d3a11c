//! `bios_pci`: the PCI BIOS (INT 1Ah AH=B1h). Installation check, find
//! the i440FX (8086:1237), the PIIX3 (8086:7000) and its IDE function
//! (8086:7010) by ID and the IDE function by class, configuration reads
//! that match the IDs, a write read back, what POST left behind (the IDE
//! function decodes I/O, its bus-master BAR is placed, PIRQA# is routed to
//! IRQ 10) and the `$PIR` routing table in the F segment.

use super::asm::{Code, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

pub fn image(media: Media) -> Vec<u8> {
    let prog = program("bios_pci", |c, _| body(c));
    super::bios_rt::image(&prog, media)
}

fn find(c: &mut Code, vendor: u16, device: u16, index: u16) -> R {
    c.mov(ax, 0xB102u32)?;
    c.mov(cx, device as u32)?;
    c.mov(dx, vendor as u32)?;
    c.mov(si, index as u32)?;
    c.int(0x1A)
}

fn read(c: &mut Code, al_: u8, bdf: u16, reg: u16) -> R {
    c.mov(ax, 0xB100 | al_ as u32)?;
    c.mov(bx, bdf as u32)?;
    c.mov(di, reg as u32)?;
    c.int(0x1A)
}

fn body(c: &mut Code) -> R {
    section(c)?;
    c.xor(edi, edi)?;
    c.mov(ax, 0xB101u32)?;
    c.int(0x1A)?;
    check_cf(c, false, "B101h installation check")?;
    check32(c, edx, 0x2049_4350, "B101h EDX signature 'PCI '")?;
    check16_mask(c, ax, 0xFF01, 0x0001, "B101h AH=0, AL bit 0 (mechanism #1)")?;
    check16_mask(c, bx, 0xFF00, 0x0200, "B101h BH: version 2")?;
    section_ok(c, "installation check")?;

    section(c)?;
    for (device, bdf, what) in
        [(0x1237u16, 0x0000u16, "i440FX"), (0x7000, 0x0008, "PIIX3"), (0x7010, 0x0009, "PIIX3 IDE")]
    {
        find(c, 0x8086, device, 0)?;
        check_cf(c, false, &format!("B102h finds the {what}"))?;
        check16(c, bx, bdf, &format!("B102h bus/device/function of the {what}"))?;
    }
    find(c, 0x8086, 0x7010, 1)?;
    check_cf(c, true, "B102h second PIIX3 IDE")?;
    check16_mask(c, ax, 0xFF00, 0x8600, "B102h: device not found")?;
    find(c, 0x8086, 0x1234, 0)?;
    check_cf(c, true, "B102h 8086:1234")?;
    c.mov(ax, 0xB103u32)?;
    c.mov(ecx, 0x01_0180u32)?;
    c.xor(si, si)?;
    c.int(0x1A)?;
    check_cf(c, false, "B103h finds an IDE controller")?;
    check16(c, bx, 0x0009, "B103h bus/device/function")?;
    section_ok(c, "find device and class")?;

    section(c)?;
    read(c, 0x0A, 0x0009, 0x00)?;
    check_cf(c, false, "B10Ah read dword")?;
    check32(c, ecx, 0x7010_8086, "B10Ah IDs of 00:01.1")?;
    read(c, 0x09, 0x0009, 0x0A)?;
    check16(c, cx, 0x0101, "B109h class of 00:01.1")?;
    read(c, 0x08, 0x0008, 0x0E)?;
    check16_mask(c, cx, 0x00FF, 0x0080, "B108h header type of 00:01.0 (multi-function)")?;
    read(c, 0x09, 0x0000, 0x02)?;
    check16(c, cx, 0x1237, "B109h device ID of 00:00.0")?;
    // Write the IDE function's interrupt line and read it back.
    c.mov(ax, 0xB10Bu32)?;
    c.mov(bx, 0x0009u32)?;
    c.mov(di, 0x3Cu32)?;
    c.mov(cl, 0x5A)?;
    c.int(0x1A)?;
    check_cf(c, false, "B10Bh write byte")?;
    read(c, 0x08, 0x0009, 0x3C)?;
    check16_mask(c, cx, 0x00FF, 0x005A, "B108h reads the byte back")?;
    section_ok(c, "configuration access")?;

    section(c)?;
    read(c, 0x09, 0x0009, 0x04)?;
    check16_mask(c, cx, 0x0001, 0x0001, "IDE command register: I/O decode on")?;
    read(c, 0x0A, 0x0009, 0x20)?;
    check16_mask(c, cx, 0x0001, 0x0001, "IDE BAR4 is an I/O BAR")?;
    c.and(cx, 0xFFF0u32)?;
    let mut placed = c.fresh();
    c.jnz(placed)?;
    fail16(c, cx, "IDE BAR4 was not placed")?;
    c.set(&mut placed)?;
    read(c, 0x08, 0x0008, 0x60)?;
    check16_mask(c, cx, 0x00FF, 10, "PIIX3 PIRQA# route")?;
    section_ok(c, "POST configuration")?;

    // $PIR: 16-byte aligned in F000, checksum 0 over its length.
    section(c)?;
    c.push(es)?;
    c.mov(ax, 0xF000u32)?;
    c.mov(es, ax)?;
    c.xor(di, di)?;
    let mut scan = c.fresh();
    let mut found = c.fresh();
    let mut none = c.fresh();
    let mut sum = c.fresh();
    let mut done = c.fresh();
    c.set(&mut scan)?;
    c.cmp(dword_ptr(di).es(), 0x5249_5024u32)?;
    c.je(found)?;
    c.add(di, 16u32)?;
    c.jnz(scan)?;
    c.jmp(none)?;
    c.set(&mut found)?;
    c.mov(cx, word_ptr(di + 6).es())?;
    c.xor(al, al)?;
    c.set(&mut sum)?;
    c.add(al, byte_ptr(di).es())?;
    c.inc(di)?;
    c.loop_(sum)?;
    c.xor(ah, ah)?;
    c.pop(es)?;
    check16(c, ax, 0, "$PIR checksum")?;
    c.jmp(done)?;
    c.set(&mut none)?;
    c.pop(es)?;
    fail16(c, di, "no $PIR table in F000")?;
    c.set(&mut done)?;
    section_ok(c, "$PIR table")
}
