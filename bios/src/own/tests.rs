//! Unit tests of the services against a fake platform: a CMOS, a PIC that
//! records its port writes, a PCI bus with the i440FX/PIIX3 functions and
//! in-memory media. Each test calls a service the way the ROM stub would
//! reach it: CS:EIP behind the stub's OUT, an interrupt frame on the stack.

use std::collections::BTreeMap;

use ferrite_core::cpu::state::{SegReg, EAX, EBX, ECX, EDI, EDX, ESI, ESP};
use ferrite_core::{AccessSize, Bus, Cpu, GuestMemory, PhysAddr};

use super::ctx::{CF, ZF};
use super::platform::{BiosDisk, DiskIoError, DiskKind, Platform, SectorIo};
use super::rom::{Trap, ROM_BASE, ROM_SEGMENT, TRAP_PORT};
use super::Bios;
use crate::e820::memory_map;

// ---- the fake platform ------------------------------------------------------

struct Func {
    cfg: [u8; 256],
    /// Size masks of the BARs (0: none), I/O BARs marked by bit 0 of cfg.
    bar_size: [u32; 6],
}

impl Func {
    fn new(vendor: u16, device: u16, class: u32, header: u8) -> Func {
        let mut cfg = [0u8; 256];
        cfg[0..2].copy_from_slice(&vendor.to_le_bytes());
        cfg[2..4].copy_from_slice(&device.to_le_bytes());
        cfg[9..12].copy_from_slice(&class.to_le_bytes()[..3]);
        cfg[0x0E] = header;
        Func { cfg, bar_size: [0; 6] }
    }

    fn read32(&self, reg: u8) -> u32 {
        let r = (reg & 0xFC) as usize;
        u32::from_le_bytes([self.cfg[r], self.cfg[r + 1], self.cfg[r + 2], self.cfg[r + 3]])
    }

    fn write(&mut self, reg: u8, bytes: &[u8]) {
        let r = reg as usize;
        if (0x10..0x28).contains(&r) && bytes.len() == 4 {
            let i = (r - 0x10) / 4;
            let size = self.bar_size[i];
            let io = self.cfg[r] & 1;
            let v = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let v = if size == 0 { 0 } else { (v & !(size - 1)) | io as u32 };
            self.cfg[r..r + 4].copy_from_slice(&v.to_le_bytes());
            return;
        }
        // Read-only: IDs, class, header type; no expansion ROM.
        if (r < 0x10 && r != 4 && r != 5 && r != 0x0C && r != 0x0D) || (0x30..0x34).contains(&r) {
            return;
        }
        for (i, b) in bytes.iter().enumerate() {
            if let Some(slot) = self.cfg.get_mut(r + i) {
                *slot = *b;
            }
        }
    }
}

struct Fake {
    cmos: [u8; 128],
    cmos_index: u8,
    pci: BTreeMap<u8, Func>,
    pci_addr: u32,
    ports: Vec<(u16, u32)>,
    disks: BTreeMap<BiosDisk, (DiskKind, Vec<u8>, bool)>,
    console: Vec<u8>,
    now: u64,
    lsr: u8,
}

impl Fake {
    fn new() -> Fake {
        let mut cmos = [0u8; 128];
        // 12:34:56 on 2024-05-17, BCD, 24-hour mode, RTC running.
        cmos[0x00] = 0x56;
        cmos[0x02] = 0x34;
        cmos[0x04] = 0x12;
        cmos[0x07] = 0x17;
        cmos[0x08] = 0x05;
        cmos[0x09] = 0x24;
        cmos[0x32] = 0x20;
        cmos[0x0A] = 0x26;
        cmos[0x0B] = 0x02;
        cmos[0x3D] = 0x32;
        cmos[0x38] = 0x10;
        let mut pci = BTreeMap::new();
        pci.insert(0x00, Func::new(0x8086, 0x1237, 0x06_0000, 0));
        pci.insert(0x08, Func::new(0x8086, 0x7000, 0x06_0100, 0x80));
        let mut ide = Func::new(0x8086, 0x7010, 0x01_0180, 0);
        ide.bar_size[4] = 16;
        ide.cfg[0x20] = 1;
        pci.insert(0x09, ide);
        let mut nic = Func::new(0x10EC, 0x8029, 0x02_0000, 0);
        nic.bar_size[0] = 32;
        nic.cfg[0x10] = 1;
        nic.bar_size[1] = 0x1000;
        nic.cfg[0x3D] = 1;
        pci.insert(0x18, nic);
        Fake {
            cmos,
            cmos_index: 0,
            pci,
            pci_addr: 0,
            ports: Vec::new(),
            disks: BTreeMap::new(),
            console: Vec::new(),
            now: 0,
            lsr: 0x60,
        }
    }

    fn wrote(&self, port: u16, value: u32) -> bool {
        self.ports.contains(&(port, value))
    }

    fn pci_func(&mut self) -> Option<&mut Func> {
        if self.pci_addr & 0x8000_0000 == 0 || (self.pci_addr >> 16) & 0xFF != 0 {
            return None;
        }
        self.pci.get_mut(&((self.pci_addr >> 8) as u8))
    }
}

impl Bus for Fake {
    fn io_read(&mut self, port: u16, size: AccessSize) -> u32 {
        match port {
            0x71 => self.cmos[self.cmos_index as usize & 0x7F] as u32,
            0x3FD => self.lsr as u32,
            0xCF8 => self.pci_addr,
            0xCFC..=0xCFF => {
                let reg = (self.pci_addr as u8 & 0xFC) + (port - 0xCFC) as u8;
                match self.pci_func() {
                    Some(f) => f.read32(reg & 0xFC) >> (8 * (reg & 3)) & size.all_ones(),
                    None => size.all_ones(),
                }
            }
            0x20 | 0xA0 | 0x21 | 0xA1 | 0x4D0 | 0x4D1 | 0x92 => 0,
            _ => size.all_ones(),
        }
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32) {
        self.ports.push((port, value));
        match port {
            0x70 => self.cmos_index = value as u8,
            0x71 => {
                let i = self.cmos_index as usize & 0x7F;
                // Register C is read-only; the rest store.
                if i != 0x0C {
                    self.cmos[i] = value as u8;
                }
            }
            0xCF8 => self.pci_addr = value,
            0xCFC..=0xCFF => {
                let reg = (self.pci_addr as u8 & 0xFC) + (port - 0xCFC) as u8;
                let bytes = value.to_le_bytes();
                if let Some(f) = self.pci_func() {
                    f.write(reg, &bytes[..size.bytes() as usize]);
                }
            }
            _ => {}
        }
    }
}

struct Medium<'a> {
    data: &'a mut Vec<u8>,
    ro: bool,
}

impl SectorIo for Medium<'_> {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_only(&self) -> bool {
        self.ro
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DiskIoError> {
        let end = offset.checked_add(buf.len() as u64).ok_or(DiskIoError::OutOfRange)?;
        let src = self.data.get(offset as usize..end as usize).ok_or(DiskIoError::OutOfRange)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DiskIoError> {
        if self.ro {
            return Err(DiskIoError::ReadOnly);
        }
        let end = offset.checked_add(buf.len() as u64).ok_or(DiskIoError::OutOfRange)?;
        let dst = self.data.get_mut(offset as usize..end as usize).ok_or(DiskIoError::OutOfRange)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
}

impl Platform for Fake {
    fn as_bus(&mut self) -> &mut dyn Bus {
        self
    }
    fn disk_kind(&self, d: BiosDisk) -> Option<DiskKind> {
        self.disks.get(&d).map(|x| x.0)
    }
    fn disk(&mut self, d: BiosDisk) -> Option<Box<dyn SectorIo + '_>> {
        self.disks.get_mut(&d).map(|(_, data, ro)| Box::new(Medium { data, ro: *ro }) as Box<dyn SectorIo>)
    }
    fn console(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }
    fn now_ns(&self) -> u64 {
        self.now
    }
}

// ---- the machine ----------------------------------------------------------------

const HD: BiosDisk = BiosDisk::Ide { channel: 0, slave: false };
const CD: BiosDisk = BiosDisk::Ide { channel: 1, slave: false };
const FD: BiosDisk = BiosDisk::Floppy(0);

/// Where the test's interrupt frame sits (SS:SP = 0000:6FFA).
const FRAME: u32 = 0x6FFA;

struct M {
    bios: Bios,
    cpu: Cpu,
    mem: GuestMemory,
    p: Fake,
}

/// A disk image whose sectors carry their LBA in the first dword.
fn marked(sectors: usize, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; sectors * size];
    for (i, s) in v.chunks_mut(size).enumerate() {
        s[0..4].copy_from_slice(&(i as u32).to_le_bytes());
    }
    v
}

impl M {
    fn new(disks: &[(BiosDisk, DiskKind, Vec<u8>)]) -> M {
        let bios = Bios::new().unwrap();
        let mut mem = GuestMemory::new(32 << 20).unwrap();
        bios.map(&mut mem).unwrap();
        let mut p = Fake::new();
        for (d, k, data) in disks {
            p.disks.insert(*d, (*k, data.clone(), *k == DiskKind::Cdrom));
        }
        let mut m = M { bios, cpu: Cpu::new(), mem, p };
        m.at(Trap::Post);
        m.trap();
        m
    }

    fn at(&mut self, t: Trap) {
        let off = self.bios.rom.trap_offset(t).unwrap();
        self.cpu.state.load_seg_real(SegReg::Cs, ROM_SEGMENT);
        self.cpu.state.eip = off as u32;
    }

    fn trap(&mut self) {
        self.bios.trap(&mut self.cpu, &mut self.mem, &mut self.p);
    }

    fn peek(&self, a: u32) -> u8 {
        self.mem.peek(PhysAddr(a))
    }

    fn peek16(&self, a: u32) -> u16 {
        u16::from_le_bytes([self.peek(a), self.peek(a + 1)])
    }

    fn peek32(&self, a: u32) -> u32 {
        self.peek16(a) as u32 | (self.peek16(a + 2) as u32) << 16
    }

    fn poke(&mut self, a: u32, bytes: &[u8]) {
        self.mem.load(PhysAddr(a), bytes);
    }

    /// Call service `t` with the given registers as INT would: a frame
    /// (IP 1234h, CS 0, FLAGS 0202h) on the stack at 0000:6FFA.
    fn call(&mut self, t: Trap, regs: &[(usize, u32)]) {
        for (r, v) in regs {
            self.cpu.state.regs[*r] = *v;
        }
        self.cpu.state.load_seg_real(SegReg::Ss, 0);
        self.cpu.state.regs[ESP] = FRAME;
        self.poke(FRAME, &[0x34, 0x12, 0, 0, 0x02, 0x02]);
        self.at(t);
        self.trap();
    }

    fn reg(&self, r: usize) -> u32 {
        self.cpu.state.regs[r]
    }

    fn ax(&self) -> u16 {
        self.reg(EAX) as u16
    }

    fn ah(&self) -> u8 {
        (self.reg(EAX) >> 8) as u8
    }

    /// A flag in the frame the stub's IRET restores.
    fn flag(&self, bit: u16) -> bool {
        self.peek16(FRAME + 4) & bit != 0
    }

    fn cf(&self) -> bool {
        self.flag(CF)
    }

    fn seg(&self, s: SegReg) -> u16 {
        self.cpu.state.seg(s).selector
    }

    /// Offset in F000 the CPU continues at.
    fn eip(&self) -> u32 {
        self.cpu.state.eip
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&self.p.console).into_owned()
    }
}

// ---- ROM ------------------------------------------------------------------------

#[test]
fn the_rom_resets_into_post_and_every_stub_traps_through_the_port() {
    let m = M::new(&[]);
    let img = m.bios.image();
    assert_eq!(img.len(), 0x10000);
    assert_eq!(&img[0xFFF0..0xFFF5], &[0xEA, 0x5B, 0xE0, 0x00, 0xF0], "jmp far F000:E05B");
    assert_eq!(img[0xE05B], 0xE9, "POST entry jumps to the POST stub");
    assert_eq!(img[0xFFFE], 0xFC);
    assert_eq!(img.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0, "ROM checksum");
    for t in [Trap::Int10, Trap::Int13, Trap::Int16, Trap::Int19, Trap::Irq0, Trap::Irq(14)] {
        let off = m.bios.rom.trap_offset(t).unwrap() as usize;
        assert_eq!(&img[off - 2..off], &[0xE6, TRAP_PORT as u8], "{t:?}: out imm8, al");
        assert_eq!(m.bios.rom.trap_at(ROM_BASE + off as u32), Some(t));
        assert_eq!(m.bios.rom.trap_at(0xFFFF_0000 + off as u32), Some(t), "the alias below 4 GiB");
    }
    assert_eq!(m.bios.rom.trap_at(0x7C02), None);
    let pir = img.windows(4).position(|w| w == b"$PIR").unwrap();
    assert_eq!(pir % 16, 0);
    let len = u16::from_le_bytes([img[pir + 6], img[pir + 7]]) as usize;
    assert_eq!(img[pir..pir + len].iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0, "$PIR checksum");
}

#[test]
fn a_trap_from_an_unknown_address_changes_nothing() {
    let mut m = M::new(&[]);
    m.cpu.state.load_seg_real(SegReg::Cs, 0);
    m.cpu.state.eip = 0x7C02;
    m.cpu.state.regs[EAX] = 0x1234;
    m.trap();
    assert_eq!((m.eip(), m.reg(EAX)), (0x7C02, 0x1234));
}

// ---- POST -----------------------------------------------------------------------

#[test]
fn post_sets_up_vectors_data_areas_chips_and_prints_the_banner() {
    let m = M::new(&[(HD, DiskKind::HardDisk, marked(2048, 512))]);
    // INT 13h at F000:E3FE, INT 1Eh at the diskette parameter table.
    assert_eq!((m.peek16(0x13 * 4), m.peek16(0x13 * 4 + 2)), (0xE3FE, 0xF000));
    assert_eq!((m.peek16(0x1E * 4), m.peek16(0x1E * 4 + 2)), (0xEFC7, 0xF000));
    assert_eq!(m.peek16(0x60 * 4 + 2), 0, "user vectors are free");
    assert_eq!(m.peek16(0x413), 639);
    assert_eq!(m.peek16(0x40E), 0x9FC0);
    assert_eq!(m.peek16(0x9FC00), 1, "EBDA size in KiB");
    assert_eq!((m.peek16(0x400), m.peek16(0x402)), (0x3F8, 0x2F8));
    assert_eq!((m.peek16(0x41A), m.peek16(0x41C), m.peek16(0x480), m.peek16(0x482)), (0x1E, 0x1E, 0x1E, 0x3E));
    assert_eq!(m.peek(0x475), 1, "one hard disk");
    assert_eq!(m.peek16(0x410) & 0x0E31, 0x0420, "two COM ports, 80x25 colour, no floppy");
    // 12:34:56 -> ticks since midnight.
    assert_eq!(m.peek32(0x46C), (45_296u64 * 1_193_182 / 65_536) as u32);
    assert!(m.p.wrote(0x21, 0x08) && m.p.wrote(0xA1, 0x70), "PIC vector bases");
    assert!(m.p.wrote(0x43, 0x36), "PIT channel 0 mode 3");
    assert!(m.p.wrote(0x60, 0x65), "8042 command byte");
    let text = m.console();
    assert!(text.contains("ferrite BIOS") && text.contains("Hard disk 80h: 1 MiB"), "{text}");
    assert_eq!(m.peek(0xB8000), b'f', "the banner is on the screen");
    assert_eq!((m.seg(SegReg::Ss), m.reg(ESP)), (0, 0x7C00));
}

#[test]
fn post_places_pci_bars_enables_decoding_and_routes_interrupts() {
    let mut m = M::new(&[]);
    let ide = &m.p.pci[&0x09];
    assert_eq!(ide.read32(0x20), 0xC001, "bus-master BAR4 at C000h");
    assert_eq!(ide.read32(0x04) & 0x7, 0x5, "I/O decode and bus mastering");
    let nic = &m.p.pci[&0x18];
    assert_eq!(nic.read32(0x10) & 1, 1);
    assert!(nic.read32(0x10) >= 0xC010, "I/O BAR after the IDE's");
    assert_eq!(nic.read32(0x14), 0xE000_0000, "memory BAR in the PCI window");
    assert_eq!(nic.read32(0x04) & 0x7, 0x7);
    // Device 3 INTA# -> PIRQ (3 + 1 + 2) mod 4 = C -> IRQ 11.
    assert_eq!(nic.cfg[0x3C], 11);
    assert_eq!(&m.p.pci[&0x08].cfg[0x60..0x64], &[10, 10, 11, 11]);
    assert!(m.p.wrote(0x4D1, 0x0C), "IRQ 10 and 11 level-triggered");
    // INT 1Ah B10Eh hands out the same routing.
    m.poke(0x6000, &[0xFF, 0x00, 0x00, 0x61, 0x00, 0x00]);
    m.call(Trap::Int1A, &[(EAX, 0xB10E), (EDI, 0x6000)]);
    assert!(!m.cf());
    let n = m.peek16(0x6000) as u32 / 16;
    assert_eq!(n, 2, "devices 1 and 3");
    let dev3 = (0..n).map(|i| 0x6100 + 16 * i).find(|a| m.peek(a + 1) == 0x18).unwrap();
    assert_eq!(m.peek(dev3 + 2), 0x62, "INTA# of device 3 on link PIRQC");
}

#[test]
fn cmos_shutdown_code_0a_resumes_through_40_67_without_post() {
    let mut m = M::new(&[]);
    m.poke(0x467, &[0x00, 0x10, 0x00, 0x20]);
    m.p.cmos[0x0F] = 0x0A;
    m.poke(0x413, &[0x55, 0x00]);
    m.at(Trap::Post);
    m.trap();
    assert_eq!((m.seg(SegReg::Cs), m.eip()), (0x2000, 0x1000));
    assert_eq!(m.peek16(0x413), 0x55, "no POST");
    assert_eq!(m.p.cmos[0x0F], 0);
}

// ---- INT 13h --------------------------------------------------------------------

#[test]
fn int13_chs_read_write_and_status_on_a_hard_disk() {
    let mut m = M::new(&[(HD, DiskKind::HardDisk, marked(4096, 512))]);
    // Geometry: 4096 sectors -> 16 heads, 63 sectors, 4 cylinders.
    m.call(Trap::Int13, &[(EAX, 0x0800), (EDX, 0x80)]);
    assert!(!m.cf());
    assert_eq!((m.reg(ECX) as u16, m.reg(EDX) as u16), (0x033F, 0x0F01));
    // Read c=1 h=2 s=3 (LBA (16 + 2) * 63 + 2 = 1136) and the next one to 1000:0000.
    m.cpu.state.load_seg_real(SegReg::Es, 0x1000);
    m.call(Trap::Int13, &[(EAX, 0x0202), (ECX, 0x0103), (EDX, 0x0280), (EBX, 0)]);
    assert!(!m.cf());
    assert_eq!(m.ax(), 0x0002);
    assert_eq!((m.peek32(0x10000), m.peek32(0x10200)), (1136, 1137));
    // Write sector 1 from memory and read it back elsewhere.
    m.poke(0x20000, &[0xAB; 512]);
    m.cpu.state.load_seg_real(SegReg::Es, 0x2000);
    m.call(Trap::Int13, &[(EAX, 0x0301), (ECX, 0x0002), (EDX, 0x0080), (EBX, 0)]);
    assert!(!m.cf());
    assert_eq!(m.p.disks[&HD].1[512..1024], [0xAB; 512]);
    // Sector 0 does not exist in CHS: "sector not found", kept for AH=01h.
    m.call(Trap::Int13, &[(EAX, 0x0201), (ECX, 0x0000), (EDX, 0x0080), (EBX, 0)]);
    assert!(m.cf());
    m.call(Trap::Int13, &[(EAX, 0x0100), (EDX, 0x0080)]);
    assert_eq!((m.ah(), m.cf()), (0x04, true));
    // No such drive.
    m.call(Trap::Int13, &[(EAX, 0x0201), (ECX, 0x0001), (EDX, 0x0081)]);
    assert_eq!((m.ah(), m.cf()), (0x01, true));
}

#[test]
fn int13_extensions_read_write_and_report_edd_parameters() {
    let mut m = M::new(&[(HD, DiskKind::HardDisk, marked(4096, 512))]);
    m.call(Trap::Int13, &[(EAX, 0x4100), (EBX, 0x55AA), (EDX, 0x80)]);
    assert_eq!((m.cf(), m.reg(EBX) as u16, m.ah()), (false, 0xAA55, 0x30));
    // DAP at 0000:0600: 3 sectors at LBA 4000 to 3000:0000.
    let mut dap = vec![0x10, 0, 3, 0, 0x00, 0x00, 0x00, 0x30];
    dap.extend_from_slice(&4000u64.to_le_bytes());
    m.poke(0x600, &dap);
    m.cpu.state.load_seg_real(SegReg::Ds, 0);
    m.call(Trap::Int13, &[(EAX, 0x4200), (EDX, 0x80), (ESI, 0x600)]);
    assert!(!m.cf());
    assert_eq!((m.peek32(0x30000), m.peek32(0x30400)), (4000, 4002));
    // Past the end: sector not found, nothing transferred, no panic.
    let mut dap = vec![0x10, 0, 0xFF, 0xFF, 0, 0, 0, 0x30];
    dap.extend_from_slice(&u64::MAX.to_le_bytes());
    m.poke(0x600, &dap);
    m.call(Trap::Int13, &[(EAX, 0x4200), (EDX, 0x80), (ESI, 0x600)]);
    assert_eq!((m.cf(), m.ah(), m.peek16(0x602)), (true, 0x04, 0));
    // EDD 3.0 parameters with the DPTE and the device path.
    m.poke(0x700, &[0x42, 0]);
    m.call(Trap::Int13, &[(EAX, 0x4800), (EDX, 0x80), (ESI, 0x700)]);
    assert!(!m.cf());
    assert_eq!(m.peek16(0x700), 0x42);
    assert_eq!(m.peek32(0x710), 4096);
    assert_eq!(m.peek16(0x718), 512);
    let (off, seg) = (m.peek16(0x71A) as u32, m.peek16(0x71C) as u32);
    let dpte = (seg << 4) + off;
    assert_eq!(m.peek16(dpte), 0x1F0);
    assert_eq!((0..16).fold(0u8, |s, i| s.wrapping_add(m.peek(dpte + i))), 0, "DPTE checksum");
    assert_eq!(m.peek16(0x71E), 0xBEDD);
    assert_eq!((0x1E..0x42).fold(0u8, |s, i| s.wrapping_add(m.peek(0x700 + i))), 0, "device path checksum");
}

#[test]
fn int13_floppy_parameters_and_write_protection() {
    let mut img = marked(2880, 512);
    img[510] = 0x55;
    img[511] = 0xAA;
    let mut m = M::new(&[(FD, DiskKind::Floppy, img)]);
    m.p.disks.get_mut(&FD).unwrap().2 = true;
    m.call(Trap::Int13, &[(EAX, 0x0800), (EDX, 0x00)]);
    assert!(!m.cf());
    assert_eq!((m.reg(ECX) as u16, m.reg(EDX) as u16, m.reg(EBX) as u8), (0x4F12, 0x0101, 4));
    assert_eq!((m.seg(SegReg::Es), m.reg(EDI) as u16), (0xF000, 0xEFC7));
    m.call(Trap::Int13, &[(EAX, 0x0301), (ECX, 0x0001), (EDX, 0x0000), (EBX, 0x8000)]);
    assert_eq!((m.cf(), m.ah()), (true, 0x03));
    assert_eq!(m.peek(0x441), 0x03, "floppy status in 40:41");
    assert_eq!(m.peek16(0x410) & 0xC1, 0x01, "one floppy in the equipment word");
}

#[test]
fn bad_guest_pointers_and_huge_counts_are_errors_not_panics() {
    let mut m = M::new(&[(HD, DiskKind::HardDisk, marked(64, 512))]);
    // A buffer at FFFF:FFF0 wraps above 1 MiB; count 255 is past the end.
    m.cpu.state.load_seg_real(SegReg::Es, 0xFFFF);
    m.call(Trap::Int13, &[(EAX, 0x02FF), (ECX, 0x0001), (EDX, 0x0080), (EBX, 0xFFF0)]);
    assert!(m.cf());
    m.call(Trap::Int13, &[(EAX, 0x0201), (ECX, 0x0001), (EDX, 0x0080), (EBX, 0xFFF0)]);
    assert!(!m.cf());
    // Every function number on every drive number: no panic.
    for ah in 0..=0xFFu32 {
        for dl in [0x00u32, 0x01, 0x7F, 0x80, 0x81, 0xE0, 0xFF] {
            m.call(Trap::Int13, &[(EAX, ah << 8 | 1), (EDX, dl), (ECX, 1), (EBX, 0x1000), (ESI, 0xFFFF)]);
        }
    }
}

// ---- booting --------------------------------------------------------------------

/// An ISO with an El Torito catalog: `media`, load segment 0, `count`
/// virtual sectors of `image` at LBA 20.
fn iso(image: &[u8], media: u8, count: u16) -> Vec<u8> {
    let mut iso = vec![0u8; (20 + image.len().div_ceil(2048) + 4) * 2048];
    let br = &mut iso[17 * 2048..18 * 2048];
    br[1..6].copy_from_slice(b"CD001");
    br[6] = 1;
    br[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
    br[0x47] = 19;
    let cat = &mut iso[19 * 2048..19 * 2048 + 64];
    cat[0] = 1;
    cat[30] = 0x55;
    cat[31] = 0xAA;
    let sum = cat[..32].chunks(2).fold(0u16, |a, w| a.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    cat[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    cat[32] = 0x88;
    cat[33] = media;
    cat[38..40].copy_from_slice(&count.to_le_bytes());
    cat[40] = 20;
    iso[20 * 2048..20 * 2048 + image.len()].copy_from_slice(image);
    iso
}

#[test]
fn int19_boots_the_first_bootable_device_in_cmos_order() {
    let mut hd = marked(64, 512);
    hd[510] = 0x55;
    hd[511] = 0xAA;
    let mut m = M::new(&[(HD, DiskKind::HardDisk, hd), (FD, DiskKind::Floppy, vec![0; 1_474_560])]);
    // Floppy first (not bootable: no signature), then the hard disk.
    m.p.cmos[0x3D] = 0x21;
    m.call(Trap::Int19, &[]);
    assert_eq!((m.seg(SegReg::Cs), m.eip(), m.reg(EDX) as u8), (0, 0x7C00, 0x80));
    assert_eq!(m.peek(0x7DFE), 0x55);
    let text = m.console();
    assert!(text.contains("Floppy: not a bootable disk") && text.contains("Booting from Hard Disk"), "{text}");
    assert_ne!(m.cpu.state.eflags() & 0x200, 0, "interrupts on");
}

#[test]
fn int19_with_nothing_bootable_halts_and_int18_tries_the_next_device() {
    let mut m = M::new(&[]);
    m.call(Trap::Int19, &[]);
    assert_eq!((m.seg(SegReg::Cs), m.eip() as u16), (ROM_SEGMENT, m.bios.rom.at.halt));
    assert!(m.console().contains("No bootable device."));
}

#[test]
fn a_boot_hook_replaces_the_boot_devices() {
    let mut m = M::new(&[]);
    m.bios.set_boot_hook(Box::new(|cpu, _mem| {
        cpu.state.eip = 0x0010_0000;
        Ok(())
    }));
    m.call(Trap::Int19, &[]);
    assert_eq!(m.eip(), 0x0010_0000);
}

#[test]
fn el_torito_no_emulation_loads_the_image_and_reads_2048_byte_sectors() {
    let mut boot = vec![0x90u8; 2048];
    boot[0] = 0xFA;
    let mut cd = iso(&boot, 0, 4);
    cd.extend(marked(8, 2048));
    let mut m = M::new(&[(CD, DiskKind::Cdrom, cd)]);
    m.p.cmos[0x3D] = 0x03;
    m.call(Trap::Int19, &[]);
    assert_eq!((m.seg(SegReg::Cs), m.eip(), m.reg(EDX) as u8), (0, 0x7C00, 0xE0));
    assert_eq!(m.peek(0x7C00), 0xFA);
    // The spec packet names the boot drive and the image.
    m.call(Trap::Int13, &[(EAX, 0x4B01), (EDX, 0xE0), (ESI, 0x800)]);
    assert!(!m.cf());
    assert_eq!((m.peek(0x800), m.peek(0x801), m.peek(0x802), m.peek32(0x804)), (0x13, 0, 0xE0, 20));
    // AH=42h in 2048-byte sectors.
    let lba = (20 + 1 + 4) as u64;
    let mut dap = vec![0x10, 0, 1, 0, 0x00, 0x00, 0x00, 0x40];
    dap.extend_from_slice(&lba.to_le_bytes());
    m.poke(0x600, &dap);
    m.call(Trap::Int13, &[(EAX, 0x4200), (EDX, 0xE0), (ESI, 0x600)]);
    assert!(!m.cf());
    assert_eq!(m.peek32(0x40000), 0, "first marked sector after the image");
}

#[test]
fn el_torito_floppy_emulation_becomes_drive_0() {
    let mut fl = marked(2880, 512);
    fl[0] = 0xEB;
    fl[510] = 0x55;
    fl[511] = 0xAA;
    let mut m = M::new(&[(CD, DiskKind::Cdrom, iso(&fl, 2, 1))]);
    m.p.cmos[0x3D] = 0x03;
    m.call(Trap::Int19, &[]);
    assert_eq!((m.eip(), m.reg(EDX) as u8, m.peek(0x7C00)), (0x7C00, 0x00, 0xEB));
    m.call(Trap::Int13, &[(EAX, 0x0201), (ECX, 0x0101), (EDX, 0x0000), (EBX, 0x9000)]);
    assert!(!m.cf());
    assert_eq!(m.peek32(0x9000), 36, "cylinder 1 head 0 sector 1");
    // Ending the emulation frees drive 0.
    m.call(Trap::Int13, &[(EAX, 0x4B00), (EDX, 0x00), (ESI, 0x800)]);
    assert_eq!((m.cf(), m.peek(0x801)), (false, 2));
    m.call(Trap::Int13, &[(EAX, 0x0201), (ECX, 0x0101), (EDX, 0x0000), (EBX, 0x9000)]);
    assert!(m.cf());
}

// ---- INT 10h --------------------------------------------------------------------

#[test]
fn int10_teletype_writes_the_text_buffer_scrolls_and_mirrors_to_the_console() {
    let mut m = M::new(&[]);
    m.p.console.clear();
    m.call(Trap::Int10, &[(EAX, 0x0200), (EBX, 0), (EDX, 0x1800)]);
    for ch in b"hi\r\n" {
        m.call(Trap::Int10, &[(EAX, 0x0E00 | *ch as u32), (EBX, 0)]);
    }
    assert_eq!(m.console(), "hi\r\n");
    // The LF on the last row scrolled: "hi" is on row 23 now.
    let row23 = 0xB8000 + 23 * 160;
    assert_eq!((m.peek(row23), m.peek(row23 + 2)), (b'h', b'i'));
    assert_eq!(m.peek16(0xB8000 + 24 * 160), 0x0720);
    m.call(Trap::Int10, &[(EAX, 0x0300), (EBX, 0)]);
    assert_eq!(m.reg(EDX) as u16, 0x1800);
    m.call(Trap::Int10, &[(EAX, 0x0F00)]);
    assert_eq!(m.ax(), 0x5003);
}

// ---- keyboard -------------------------------------------------------------------

#[test]
fn irq1_translates_scan_codes_with_shift_state_into_the_buffer() {
    let mut m = M::new(&[]);
    for code in [0x1Eu8, 0x9E, 0x2A, 0x1E, 0x9E, 0xAA, 0xE0, 0x48, 0xE0, 0xC8, 0xFA] {
        m.call(Trap::Irq1, &[(EAX, code as u32)]);
    }
    m.call(Trap::Int16, &[(EAX, 0x1000)]);
    assert_eq!(m.ax(), 0x1E61);
    m.call(Trap::Int16, &[(EAX, 0x1000)]);
    assert_eq!(m.ax(), 0x1E41);
    m.call(Trap::Int16, &[(EAX, 0x0000)]);
    assert_eq!(m.ax(), 0x4800, "AH=00h hides the grey-key marker");
    assert_eq!(m.peek(0x417), 0, "shift released");
    // Empty now: AH=01h sets ZF, AH=00h goes to the wait loop.
    m.call(Trap::Int16, &[(EAX, 0x0100)]);
    assert!(m.flag(ZF));
    m.call(Trap::Int16, &[(EAX, 0x0000)]);
    assert_eq!(m.eip() as u16, m.bios.rom.at.int16_wait);
}

#[test]
fn ctrl_alt_del_requests_a_warm_reset() {
    let mut m = M::new(&[]);
    for code in [0x1Du8, 0x38, 0x53] {
        m.call(Trap::Irq1, &[(EAX, code as u32)]);
    }
    assert!(m.p.wrote(0x64, 0xFE));
    assert_eq!(m.peek16(0x472), 0x1234);
}

#[test]
fn int16_store_fills_the_buffer_until_it_is_full() {
    let mut m = M::new(&[]);
    for i in 0..15 {
        m.call(Trap::Int16, &[(EAX, 0x0500), (ECX, 0x1E61 + i)]);
        assert_eq!(m.reg(EAX) as u8, 0, "key {i} stored");
    }
    m.call(Trap::Int16, &[(EAX, 0x0500), (ECX, 0x1E61)]);
    assert_eq!(m.reg(EAX) as u8, 1, "the 16-word buffer holds 15 keys");
    m.call(Trap::Int16, &[(EAX, 0x0100)]);
    assert_eq!((m.flag(ZF), m.ax()), (false, 0x1E61));
}

// ---- INT 15h, 11h, 12h -------------------------------------------------------

#[test]
fn int15_memory_map_functions_agree_with_the_e820_table() {
    let mut m = M::new(&[]);
    let map = memory_map(32 << 20);
    let mut ebx = 0;
    for e in &map {
        m.call(Trap::Int15, &[(EAX, 0xE820), (EDX, 0x534D_4150), (EBX, ebx), (ECX, 24), (EDI, 0x5000)]);
        assert!(!m.cf());
        assert_eq!((m.reg(EAX), m.reg(ECX)), (0x534D_4150, 20));
        assert_eq!(m.peek32(0x5000) as u64 | (m.peek32(0x5004) as u64) << 32, e.base);
        assert_eq!(m.peek32(0x5010), e.kind);
        ebx = m.reg(EBX);
    }
    assert_eq!(ebx, 0, "the last entry ends the walk");
    m.call(Trap::Int15, &[(EAX, 0xE801)]);
    assert_eq!((m.ax(), m.reg(EBX) as u16, m.reg(ECX) as u16, m.reg(EDX) as u16), (0x3C00, 256, 0x3C00, 256));
    m.call(Trap::Int15, &[(EAX, 0x8800)]);
    assert_eq!(m.ax(), 31 * 1024);
    m.call(Trap::Int12, &[]);
    assert_eq!(m.ax(), 639);
    m.call(Trap::Int11, &[]);
    assert_eq!(m.ax(), m.peek16(0x410));
    m.call(Trap::Int15, &[(EAX, 0xC000)]);
    assert_eq!((m.cf(), m.seg(SegReg::Es), m.reg(EBX) as u16), (false, 0xF000, 0xE6F5));
    m.call(Trap::Int15, &[(EAX, 0x5300)]);
    assert_eq!((m.cf(), m.ah()), (true, 0x86), "APM not present");
}

#[test]
fn int15_block_move_copies_between_physical_addresses() {
    let mut m = M::new(&[]);
    m.poke(0x10000, b"ferrite!");
    let mut gdt = [0u8; 48];
    gdt[0x10..0x18].copy_from_slice(&[0xFF, 0xFF, 0x00, 0x00, 0x01, 0x93, 0, 0]);
    gdt[0x18..0x20].copy_from_slice(&[0xFF, 0xFF, 0x00, 0x00, 0x30, 0x93, 0, 0]);
    m.poke(0x5000, &gdt);
    m.call(Trap::Int15, &[(EAX, 0x8700), (ECX, 4), (ESI, 0x5000)]);
    assert_eq!((m.cf(), m.ah()), (false, 0));
    assert_eq!(m.peek32(0x30_0000), u32::from_le_bytes(*b"ferr"));
    assert_eq!(m.peek32(0x30_0004), u32::from_le_bytes(*b"ite!"));
}

#[test]
fn int15_wait_loops_in_the_rom_until_the_time_has_passed() {
    let mut m = M::new(&[]);
    m.call(Trap::Int15, &[(EAX, 0x8600), (ECX, 0), (EDX, 1000)]);
    assert_eq!(m.eip() as u16, m.bios.rom.at.int15_wait, "first call: wait");
    assert_ne!(m.p.cmos[0x0B] & 0x40, 0, "RTC periodic interrupt on");
    m.p.now += 500_000;
    m.call(Trap::Int15, &[(EAX, 0x8600), (ECX, 0), (EDX, 1000)]);
    assert_eq!(m.eip() as u16, m.bios.rom.at.int15_wait, "still waiting after 0.5 ms");
    m.p.now += 600_000;
    m.call(Trap::Int15, &[(EAX, 0x8600), (ECX, 0), (EDX, 1000)]);
    assert_ne!(m.eip() as u16, m.bios.rom.at.int15_wait);
    assert_eq!((m.cf(), m.ah()), (false, 0));
    assert_eq!(m.p.cmos[0x0B] & 0x40, 0, "periodic interrupt off again");
}

// ---- time -----------------------------------------------------------------------

#[test]
fn irq0_counts_ticks_and_wraps_at_midnight() {
    let mut m = M::new(&[]);
    m.poke(0x46C, &(0x18_00AFu32).to_le_bytes());
    m.call(Trap::Irq0, &[]);
    assert_eq!((m.peek32(0x46C), m.peek(0x470)), (0, 1));
    m.call(Trap::Int1A, &[(EAX, 0)]);
    assert_eq!((m.reg(ECX) as u16, m.reg(EDX) as u16, m.reg(EAX) as u8), (0, 0, 1));
    assert_eq!(m.peek(0x470), 0, "reading clears the midnight flag");
}

#[test]
fn int1a_reads_and_sets_the_rtc_in_bcd() {
    let mut m = M::new(&[]);
    m.call(Trap::Int1A, &[(EAX, 0x0200)]);
    assert_eq!((m.cf(), m.reg(ECX) as u16, m.reg(EDX) as u16 >> 8), (false, 0x1234, 0x56));
    m.call(Trap::Int1A, &[(EAX, 0x0400)]);
    assert_eq!((m.reg(ECX) as u16, m.reg(EDX) as u16), (0x2024, 0x0517));
    // A binary-mode RTC still answers in BCD.
    m.p.cmos[0x0B] |= 0x04;
    m.p.cmos[0x04] = 23;
    m.call(Trap::Int1A, &[(EAX, 0x0200)]);
    assert_eq!(m.reg(ECX) as u16 >> 8, 0x23);
    m.call(Trap::Int1A, &[(EAX, 0x0300), (ECX, 0x0815), (EDX, 0x3000)]);
    assert_eq!((m.p.cmos[0x04], m.p.cmos[0x02], m.p.cmos[0x00]), (8, 15, 30));
}

// ---- PCI BIOS -------------------------------------------------------------------

#[test]
fn pci_bios_finds_devices_and_accesses_configuration_space() {
    let mut m = M::new(&[]);
    m.call(Trap::Int1A, &[(EAX, 0xB101)]);
    assert_eq!((m.cf(), m.reg(EDX), m.reg(EBX) as u16, m.reg(EAX) as u8), (false, 0x2049_4350, 0x0210, 1));
    m.call(Trap::Int1A, &[(EAX, 0xB102), (ECX, 0x7010), (EDX, 0x8086), (ESI, 0)]);
    assert_eq!((m.cf(), m.reg(EBX) as u16), (false, 0x0009));
    m.call(Trap::Int1A, &[(EAX, 0xB102), (ECX, 0x7010), (EDX, 0x8086), (ESI, 1)]);
    assert_eq!((m.cf(), m.ah()), (true, 0x86));
    m.call(Trap::Int1A, &[(EAX, 0xB102), (ECX, 0), (EDX, 0xFFFF), (ESI, 0)]);
    assert_eq!((m.cf(), m.ah()), (true, 0x83));
    m.call(Trap::Int1A, &[(EAX, 0xB103), (ECX, 0x02_0000), (ESI, 0)]);
    assert_eq!(m.reg(EBX) as u16, 0x0018);
    m.call(Trap::Int1A, &[(EAX, 0xB10A), (EBX, 0x0008), (EDI, 0)]);
    assert_eq!(m.reg(ECX), 0x7000_8086);
    m.call(Trap::Int1A, &[(EAX, 0xB109), (EBX, 0x0008), (EDI, 3)]);
    assert_eq!((m.cf(), m.ah()), (true, 0x87), "unaligned word");
    m.call(Trap::Int1A, &[(EAX, 0xB10B), (EBX, 0x0009), (EDI, 0x3C), (ECX, 0x5A)]);
    assert_eq!(m.p.pci[&0x09].cfg[0x3C], 0x5A);
    m.call(Trap::Int1A, &[(EAX, 0xB1FF)]);
    assert_eq!((m.cf(), m.ah()), (true, 0x81));
}

// ---- other IRQs -----------------------------------------------------------------

#[test]
fn a_spurious_irq7_gets_no_eoi_and_irq14_gets_both() {
    let mut m = M::new(&[]);
    m.p.ports.clear();
    m.call(Trap::Irq(7), &[]);
    assert!(!m.p.wrote(0x20, 0x20), "ISR bit clear: spurious");
    m.call(Trap::Irq(14), &[]);
    assert!(m.p.wrote(0x20, 0x20), "the cascade input's EOI");
    assert_eq!(m.peek(0x48E), 0xFF);
}
