//! PCI: POST enumeration of bus 0 through configuration mechanism #1
//! (ports 0xCF8/0xCFC), the `$PIR` interrupt routing table in the ROM and
//! the PCI BIOS functions of INT 1Ah AH=B1h (PCI BIOS specification 2.1,
//! chapter 3; PCI IRQ Routing Table specification 1.0).
//!
//! Interrupt routing on this board: device d's INTx# pin p (1 = INTA#)
//! reaches PIRQ[(d + p + 2) mod 4] of the PIIX3 (the rotation
//! `ferrite_devices::pci::PciBus::intx_pirq` implements); POST routes
//! PIRQA#-PIRQD# to IRQ 10, 10, 11, 11 (PIIX3 registers 60h-63h), makes
//! those level-triggered in the ELCR, and writes each function's Interrupt
//! Line register to match, so the `$PIR` table, the router and the
//! functions agree.
//!
//! Not implemented: the 32-bit BIOS32 service directory and protected-mode
//! PCI BIOS entry, special cycles (B106h), PCI-to-PCI bridges (bus 0 only).

use ferrite_core::cpu::state::{SegReg, EBX, ECX, EDI, EDX};

use super::ctx::{Ctx, CF};

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// ISA IRQs PIRQA#-PIRQD# are routed to.
pub const PIRQ_IRQS: [u8; 4] = [10, 10, 11, 11];
/// The IRQs the routing table allows for each link (3-7, 9-12, 14, 15).
const IRQ_BITMAP: u16 = 0xDEF8;
/// PCI memory BARs are placed from here up.
pub const MEM_WINDOW: u32 = 0xE000_0000;
const MEM_WINDOW_END: u32 = 0xFEC0_0000;
/// PCI I/O BARs are placed from here up.
pub const IO_WINDOW: u32 = 0xC000;

/// The router: PIIX3 function 0 at 00:01.0.
const ROUTER_DEVFN: u8 = 0x08;

// PCI BIOS return codes.
const SUCCESSFUL: u8 = 0x00;
const FUNC_NOT_SUPPORTED: u8 = 0x81;
const BAD_VENDOR_ID: u8 = 0x83;
const DEVICE_NOT_FOUND: u8 = 0x86;
const BAD_REGISTER_NUMBER: u8 = 0x87;
const SET_FAILED: u8 = 0x88;
const BUFFER_TOO_SMALL: u8 = 0x89;

fn address(bus: u8, devfn: u8, reg: u8) -> u32 {
    0x8000_0000 | (bus as u32) << 16 | (devfn as u32) << 8 | (reg as u32 & 0xFC)
}

pub fn read32(c: &mut Ctx, bus: u8, devfn: u8, reg: u8) -> u32 {
    c.outl(CONFIG_ADDRESS, address(bus, devfn, reg));
    c.inl(CONFIG_DATA)
}

pub fn read16(c: &mut Ctx, bus: u8, devfn: u8, reg: u8) -> u16 {
    c.outl(CONFIG_ADDRESS, address(bus, devfn, reg));
    c.inw(CONFIG_DATA + (reg as u16 & 2))
}

pub fn read8(c: &mut Ctx, bus: u8, devfn: u8, reg: u8) -> u8 {
    c.outl(CONFIG_ADDRESS, address(bus, devfn, reg));
    c.inb(CONFIG_DATA + (reg as u16 & 3))
}

pub fn write32(c: &mut Ctx, bus: u8, devfn: u8, reg: u8, v: u32) {
    c.outl(CONFIG_ADDRESS, address(bus, devfn, reg));
    c.outl(CONFIG_DATA, v);
}

pub fn write16(c: &mut Ctx, bus: u8, devfn: u8, reg: u8, v: u16) {
    c.outl(CONFIG_ADDRESS, address(bus, devfn, reg));
    c.outw(CONFIG_DATA + (reg as u16 & 2), v);
}

pub fn write8(c: &mut Ctx, bus: u8, devfn: u8, reg: u8, v: u8) {
    c.outl(CONFIG_ADDRESS, address(bus, devfn, reg));
    c.outb(CONFIG_DATA + (reg as u16 & 3), v);
}

/// Every function present on bus 0, as device/function numbers.
pub fn functions(c: &mut Ctx) -> Vec<u8> {
    let mut out = Vec::new();
    for dev in 0..32u8 {
        for func in 0..8u8 {
            let devfn = dev << 3 | func;
            let vendor = read16(c, 0, devfn, 0x00);
            if vendor == 0xFFFF || vendor == 0 {
                if func == 0 {
                    break;
                }
                continue;
            }
            out.push(devfn);
            if func == 0 && read8(c, 0, devfn, 0x0E) & 0x80 == 0 {
                break;
            }
        }
    }
    out
}

/// The PIRQ line (0-3) pin `pin` (1-4) of device `dev` is wired to.
pub fn pirq(dev: u8, pin: u8) -> usize {
    (dev as usize + pin as usize + 2) & 3
}

/// POST: assign BARs, enable decoding and bus mastering, program the
/// router and every Interrupt Line register. Returns (devfn, vendor,
/// device) of each function, for the boot log.
pub fn enumerate(c: &mut Ctx) -> Vec<(u8, u16, u16)> {
    let fns = functions(c);
    let mut io_next = IO_WINDOW;
    let mut mem_next = MEM_WINDOW;
    let mut found = Vec::new();
    // Route PIRQA#-D# first, so the interrupt lines written below are live.
    for devfn in &fns {
        if read32(c, 0, *devfn, 0) == 0x7000_8086 {
            for (i, irq) in PIRQ_IRQS.iter().enumerate() {
                write8(c, 0, *devfn, 0x60 + i as u8, *irq);
            }
        }
    }
    let mut elcr: u16 = c.inb(0x4D0) as u16 | (c.inb(0x4D1) as u16) << 8;
    for irq in PIRQ_IRQS {
        elcr |= 1 << irq;
    }
    c.outb(0x4D0, elcr as u8);
    c.outb(0x4D1, (elcr >> 8) as u8);

    for devfn in fns {
        let id = read32(c, 0, devfn, 0);
        let (vendor, device) = (id as u16, (id >> 16) as u16);
        found.push((devfn, vendor, device));
        let header = read8(c, 0, devfn, 0x0E) & 0x7F;
        let class = read16(c, 0, devfn, 0x0A);
        let nbars = match header {
            0 => 6,
            1 => 2,
            _ => 0,
        };
        let (mut has_io, mut has_mem) = (false, false);
        let mut i = 0;
        while i < nbars {
            let reg = 0x10 + 4 * i as u8;
            let old = read32(c, 0, devfn, reg);
            write32(c, 0, devfn, reg, 0xFFFF_FFFF);
            let sz = read32(c, 0, devfn, reg);
            write32(c, 0, devfn, reg, old);
            i += 1;
            if sz == 0 || sz == 0xFFFF_FFFF {
                continue;
            }
            if sz & 1 != 0 {
                let size = (!(sz & 0xFFFF_FFFC) & 0xFFFF).wrapping_add(1).max(4);
                let base = io_next.next_multiple_of(size);
                if base + size > 0x1_0000 {
                    continue;
                }
                write32(c, 0, devfn, reg, base);
                io_next = base + size;
                has_io = true;
            } else {
                let is64 = (sz >> 1) & 3 == 2;
                let size = (!(sz & 0xFFFF_FFF0)).wrapping_add(1).max(16);
                let base = mem_next.next_multiple_of(size);
                if is64 {
                    write32(c, 0, devfn, reg + 4, 0);
                    i += 1;
                }
                if base.checked_add(size).is_none_or(|e| e > MEM_WINDOW_END) {
                    continue;
                }
                write32(c, 0, devfn, reg, base);
                mem_next = base + size;
                has_mem = true;
            }
        }
        if header == 0 {
            // Expansion ROM: give it an address, leave it disabled.
            write32(c, 0, devfn, 0x30, 0xFFFF_F800);
            let sz = read32(c, 0, devfn, 0x30) & 0xFFFF_F800;
            if sz != 0 {
                let size = (!sz).wrapping_add(1);
                let base = mem_next.next_multiple_of(size);
                if base.checked_add(size).is_some_and(|e| e <= MEM_WINDOW_END) {
                    write32(c, 0, devfn, 0x30, base);
                    mem_next = base + size;
                } else {
                    write32(c, 0, devfn, 0x30, 0);
                }
            } else {
                write32(c, 0, devfn, 0x30, 0);
            }
        }
        let base_class = (class >> 8) as u8;
        // Mass storage in compatibility mode decodes its legacy ports
        // through the I/O enable too.
        if base_class == 0x01 {
            has_io = true;
        }
        let mut cmd = read16(c, 0, devfn, 0x04);
        if has_io {
            cmd |= 1;
        }
        if has_mem {
            cmd |= 2;
        }
        if base_class != 0x06 {
            cmd |= 4;
        }
        write16(c, 0, devfn, 0x04, cmd);
        let pin = read8(c, 0, devfn, 0x3D);
        if (1..=4).contains(&pin) {
            let line = PIRQ_IRQS[pirq(devfn >> 3, pin)];
            write8(c, 0, devfn, 0x3C, line);
        }
        if id == 0x7010_8086 {
            // PIIX3 IDE: decode both channels (IDETIM bit 15).
            write16(c, 0, devfn, 0x40, 0x8000);
            write16(c, 0, devfn, 0x42, 0x8000);
        }
    }
    found
}

/// The `$PIR` table of the ROM: one slot entry per
/// possible device on bus 0 (1-31), links 60h-63h = PIIX3 PIRQRC A-D.
pub fn pir_table() -> Vec<u8> {
    let entries: Vec<[u8; 16]> = (1..32u8).map(pir_entry).collect();
    let size = 32 + 16 * entries.len();
    let mut t = vec![0u8; size];
    t[0..4].copy_from_slice(b"$PIR");
    t[4..6].copy_from_slice(&0x0100u16.to_le_bytes());
    t[6..8].copy_from_slice(&(size as u16).to_le_bytes());
    t[8] = 0;
    t[9] = ROUTER_DEVFN;
    t[12..16].copy_from_slice(&0x7000_8086u32.to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        t[32 + 16 * i..48 + 16 * i].copy_from_slice(e);
    }
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[31] = 0u8.wrapping_sub(sum);
    t
}

fn pir_entry(dev: u8) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0] = 0;
    e[1] = dev << 3;
    for pin in 1..=4u8 {
        let o = 2 + 3 * (pin as usize - 1);
        e[o] = 0x60 + pirq(dev, pin) as u8;
        e[o + 1..o + 3].copy_from_slice(&IRQ_BITMAP.to_le_bytes());
    }
    e[14] = dev;
    e
}

/// INT 1Ah AH=B1h: the PCI BIOS.
pub fn int1a_pci(c: &mut Ctx) {
    let status = match c.al() {
        0x01 => {
            // Installation check: mechanism #1, version 2.10, last bus 0.
            c.set_reg32(EDX, 0x2049_4350);
            c.set_al(0x01);
            c.set_bx(0x0210);
            c.set_cl(0);
            c.set_reg32(EDI, 0);
            SUCCESSFUL
        }
        0x02 => {
            let (device, vendor, index) = (c.cx(), c.dx(), c.si());
            if vendor == 0xFFFF {
                BAD_VENDOR_ID
            } else {
                find(c, index, |id, _| id == (device as u32) << 16 | vendor as u32)
            }
        }
        0x03 => {
            let class = c.reg32(ECX) & 0xFF_FFFF;
            let index = c.si();
            find(c, index, |_, cls| cls == class)
        }
        0x06 => FUNC_NOT_SUPPORTED,
        al @ 0x08..=0x0D => config_access(c, al),
        0x0E => routing_options(c),
        0x0F => set_irq(c),
        _ => FUNC_NOT_SUPPORTED,
    };
    c.set_ah(status);
    c.set_flag(CF, status != SUCCESSFUL);
}

/// The `index`th function (in bus order) matching `want(id, class)`.
fn find(c: &mut Ctx, index: u16, want: impl Fn(u32, u32) -> bool) -> u8 {
    let mut n = 0u16;
    for devfn in functions(c) {
        let id = read32(c, 0, devfn, 0);
        let class = read32(c, 0, devfn, 0x08) >> 8;
        if want(id, class) {
            if n == index {
                c.set_bh(0);
                c.set_bl(devfn);
                return SUCCESSFUL;
            }
            n += 1;
        }
    }
    DEVICE_NOT_FOUND
}

/// B108h-B10Dh: configuration read/write byte, word, dword (BH bus, BL
/// device/function, DI register, CL/CX/ECX data).
fn config_access(c: &mut Ctx, al: u8) -> u8 {
    let (bus, devfn, reg) = (c.bh(), c.bl(), c.di());
    let width = match al {
        0x08 | 0x0B => 1,
        0x09 | 0x0C => 2,
        _ => 4,
    };
    if reg > 0xFF || reg % width != 0 {
        return BAD_REGISTER_NUMBER;
    }
    let reg = reg as u8;
    match al {
        0x08 => {
            let v = read8(c, bus, devfn, reg);
            c.set_cl(v);
        }
        0x09 => {
            let v = read16(c, bus, devfn, reg);
            c.set_cx(v);
        }
        0x0A => {
            let v = read32(c, bus, devfn, reg);
            c.set_reg32(ECX, v);
        }
        0x0B => {
            let v = c.cl();
            write8(c, bus, devfn, reg, v);
        }
        0x0C => {
            let v = c.cx();
            write16(c, bus, devfn, reg, v);
        }
        _ => {
            let v = c.reg32(ECX);
            write32(c, bus, devfn, reg, v);
        }
    }
    SUCCESSFUL
}

/// B10Eh: copy the routing entries of present devices to the buffer
/// ES:DI describes (word size, far pointer); BX = PCI-exclusive IRQs.
fn routing_options(c: &mut Ctx) -> u8 {
    let mut devs: Vec<u8> = functions(c).into_iter().map(|f| f >> 3).filter(|d| *d != 0).collect();
    devs.dedup();
    let entries: Vec<[u8; 16]> = devs.into_iter().map(pir_entry).collect();
    let need = (entries.len() * 16) as u16;
    let desc = c.lin(SegReg::Es, c.di());
    let have = c.rd16(desc);
    c.wr16(desc, need);
    if have < need {
        return BUFFER_TOO_SMALL;
    }
    let off = c.rd16(desc + 2);
    let seg = c.rd16(desc + 4);
    let at = ((seg as u32) << 4).wrapping_add(off as u32);
    let bytes: Vec<u8> = entries.concat();
    c.write_bytes(at, &bytes);
    c.set_reg32(EBX, c.reg32(EBX) & 0xFFFF_0000);
    SUCCESSFUL
}

/// B10Fh: route INTx# pin CL (0Ah-0Dh) of BH/BL to IRQ CH.
fn set_irq(c: &mut Ctx) -> u8 {
    let (pin, irq, devfn) = (c.cl(), c.ch(), c.bl());
    if !(0x0A..=0x0D).contains(&pin) || !matches!(irq, 3..=7 | 9..=12 | 14 | 15) {
        return SET_FAILED;
    }
    let link = pirq(devfn >> 3, pin - 0x09);
    write8(c, 0, ROUTER_DEVFN, 0x60 + link as u8, irq);
    SUCCESSFUL
}
