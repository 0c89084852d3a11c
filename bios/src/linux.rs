//! Direct kernel boot (`--kernel/--initrd/--append`): Linux bzImage (boot
//! protocol 2.02 and later, entered through its 32-bit entry point) and
//! multiboot v1 kernels (ELF or a.out-kludge images).
//!
//! The kernel is loaded after POST, when INT 19h would read a boot sector:
//! the loader writes the kernel, initrd, command line and the boot
//! information the kernel reads (Linux's "zero page" with the E820 map, or
//! the multiboot information structure) into guest RAM, then puts the CPU
//! into flat 32-bit protected mode at the kernel's entry point, as a boot
//! loader's final jump would. Linux's real-mode setup code is skipped, so
//! the kernel makes no BIOS calls; everything it would have asked the BIOS
//! for is in the zero page.

use crate::e820::{E820Entry, E820_RAM};
use ferrite_core::cpu::state::{
    SegReg, Segment, TableReg, CR0_PE, SEG_ACCESSED, SEG_CODE, SEG_DB, SEG_G, SEG_P, SEG_RW, SEG_S,
};
use ferrite_core::{Cpu, GuestMemory, PhysAddr};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BootError {
    #[error("not a Linux bzImage (no \"HdrS\" boot header) and no multiboot header in the first 8 KiB")]
    UnknownFormat,
    #[error("Linux boot protocol {0}.{1:02} is too old: 2.02 or later is needed")]
    OldProtocol(u8, u8),
    #[error("the kernel is not a bzImage loaded high (zImage kernels are not supported)")]
    NotBzImage,
    #[error("the image is truncated: {0}")]
    Truncated(&'static str),
    #[error("the command line is {len} bytes; this kernel takes at most {max}")]
    CmdlineTooLong { len: usize, max: usize },
    #[error("not enough guest RAM: the kernel needs {need_mib} MiB (give more with -m)")]
    NotEnoughRam { need_mib: u64 },
    #[error("multiboot kernel: {0}")]
    Multiboot(&'static str),
}

/// A kernel to boot instead of a boot sector.
#[derive(Clone, Debug)]
pub struct KernelBoot {
    kernel: Vec<u8>,
    initrd: Option<Vec<u8>>,
    cmdline: String,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Linux { version: u16 },
    Multiboot { header: usize },
}

/// Low-memory layout of what the loader writes (below the EBDA at 0x9FC00).
const ZERO_PAGE: u32 = 0x9_0000;
const CMDLINE: u32 = 0x9_1000;
const GDT: u32 = 0x9_2000;
/// Multiboot: information structure, module list, memory map, strings.
const MB_INFO: u32 = 0x9_0000;
const MB_MODS: u32 = 0x9_0100;
const MB_MMAP: u32 = 0x9_0200;
const MB_CMDLINE: u32 = 0x9_1000;
const MB_LOADER_NAME: u32 = 0x9_1800;

const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;
const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

impl KernelBoot {
    /// Recognise the kernel format now, so that a bad file is reported
    /// before the machine starts.
    pub fn new(kernel: Vec<u8>, initrd: Option<Vec<u8>>, cmdline: String) -> Result<KernelBoot, BootError> {
        let kind = if u32_at(&kernel, 0x202) == Some(0x5372_6448) {
            let version = u16_at(&kernel, 0x206).ok_or(BootError::Truncated("boot header"))?;
            if version < 0x202 {
                return Err(BootError::OldProtocol((version >> 8) as u8, version as u8));
            }
            if kernel[0x211] & 1 == 0 {
                return Err(BootError::NotBzImage);
            }
            let max = u32_at(&kernel, 0x238).filter(|_| version >= 0x206).unwrap_or(255) as usize;
            if cmdline.len() > max {
                return Err(BootError::CmdlineTooLong { len: cmdline.len(), max });
            }
            Kind::Linux { version }
        } else if let Some(header) = find_multiboot_header(&kernel) {
            Kind::Multiboot { header }
        } else {
            return Err(BootError::UnknownFormat);
        };
        Ok(KernelBoot { kernel, initrd, cmdline, kind })
    }

    /// "Linux" or "multiboot", for messages.
    pub fn format_name(&self) -> &'static str {
        match self.kind {
            Kind::Linux { .. } => "Linux bzImage",
            Kind::Multiboot { .. } => "multiboot",
        }
    }

    /// Load the kernel into `mem` and point `cpu` at its entry point.
    pub fn start(&self, cpu: &mut Cpu, mem: &mut GuestMemory, map: &[E820Entry]) -> Result<(), BootError> {
        match self.kind {
            Kind::Linux { version } => self.start_linux(cpu, mem, map, version),
            Kind::Multiboot { header } => self.start_multiboot(cpu, mem, map, header),
        }
    }

    fn start_linux(
        &self,
        cpu: &mut Cpu,
        mem: &mut GuestMemory,
        map: &[E820Entry],
        version: u16,
    ) -> Result<(), BootError> {
        let k = &self.kernel;
        let setup_sects = match k[0x1F1] {
            0 => 4,
            n => n as usize,
        };
        let pm_start = (setup_sects + 1) * 512;
        let pm = k.get(pm_start..).filter(|p| !p.is_empty()).ok_or(BootError::Truncated("no protected-mode part"))?;
        let hdr_end = (0x202 + k[0x201] as usize).min(k.len());
        let ram_top = ram_top(map);

        // Where the protected-mode kernel goes: its preferred address when it
        // can relocate (it would move itself there anyway), else 1 MiB.
        let relocatable = version >= 0x205 && k.get(0x234).copied().unwrap_or(0) != 0;
        let load_at = if relocatable && version >= 0x20A {
            u32_at(k, 0x258).unwrap_or(0x10_0000).max(0x10_0000)
        } else {
            0x10_0000
        };
        // The memory the kernel needs from its load address while it
        // decompresses (2.10+), else a conservative guess.
        let init_size = if version >= 0x20A { u32_at(k, 0x260).unwrap_or(0) } else { 0 };
        let kernel_end = load_at as u64 + (init_size as u64).max(pm.len() as u64 * 4);
        let initrd_len = self.initrd.as_ref().map_or(0, |i| i.len() as u64);
        let need = kernel_end + initrd_len.next_multiple_of(4096) + (1 << 20);
        if need > ram_top {
            return Err(BootError::NotEnoughRam { need_mib: need.div_ceil(1 << 20) });
        }

        // The zero page: the setup header as the file has it, then our fields.
        let mut zp = vec![0u8; 4096];
        zp[0x1F1..hdr_end].copy_from_slice(&k[0x1F1..hdr_end]);
        let put16 = |zp: &mut [u8], off: usize, v: u16| zp[off..off + 2].copy_from_slice(&v.to_le_bytes());
        let put32 = |zp: &mut [u8], off: usize, v: u32| zp[off..off + 4].copy_from_slice(&v.to_le_bytes());
        // screen_info: 80x25 colour text, no VGA claimed (there is no VGA yet).
        zp[0x06] = 3; // orig_video_mode
        zp[0x07] = 80; // orig_video_cols
        zp[0x0E] = 25; // orig_video_lines
        let ext_k = (ram_top.saturating_sub(0x10_0000) >> 10).min(u32::MAX as u64) as u32;
        put16(&mut zp, 0x02, ext_k.min(0xFFFF) as u16); // ext_mem_k
        put32(&mut zp, 0x1E0, ext_k); // alt_mem_k
        put16(&mut zp, 0x1FA, 0xFFFF); // vid_mode: normal
        zp[0x210] = 0xFF; // type_of_loader: undefined
        zp[0x211] |= 0x80; // CAN_USE_HEAP
        put16(&mut zp, 0x224, 0xFE00); // heap_end_ptr
        put32(&mut zp, 0x214, load_at); // code32_start
        put32(&mut zp, 0x228, CMDLINE); // cmd_line_ptr
        if let Some(initrd) = &self.initrd {
            let max = if version >= 0x203 { u32_at(k, 0x22C).unwrap_or(0x37FF_FFFF) } else { 0x37FF_FFFF };
            let top = ram_top.min(max as u64 + 1);
            let addr = top.saturating_sub(initrd.len() as u64) & !0xFFF;
            if addr < kernel_end {
                return Err(BootError::NotEnoughRam { need_mib: need.div_ceil(1 << 20) });
            }
            mem.load(PhysAddr(addr as u32), initrd);
            put32(&mut zp, 0x218, addr as u32);
            put32(&mut zp, 0x21C, initrd.len() as u32);
        }
        let entries: Vec<_> = map.iter().take(128).collect();
        zp[0x1E8] = entries.len() as u8;
        for (i, e) in entries.iter().enumerate() {
            let off = 0x2D0 + i * 20;
            zp[off..off + 8].copy_from_slice(&e.base.to_le_bytes());
            zp[off + 8..off + 16].copy_from_slice(&e.len.to_le_bytes());
            zp[off + 16..off + 20].copy_from_slice(&e.kind.to_le_bytes());
        }
        mem.load(PhysAddr(ZERO_PAGE), &zp);
        let mut cmd = self.cmdline.as_bytes().to_vec();
        cmd.push(0);
        mem.load(PhysAddr(CMDLINE), &cmd);
        mem.load(PhysAddr(load_at), pm);

        // Boot protocol 32-bit entry: flat __BOOT_CS (0x10) / __BOOT_DS
        // (0x18), ESI = zero page, interrupts off, EBP = EDI = EBX = 0.
        enter_flat_pm(cpu, mem, load_at);
        cpu.state.regs = [0; 8];
        cpu.state.regs[ESI] = ZERO_PAGE;
        tracing::info!(
            load_at = format_args!("{load_at:#x}"),
            "booting a Linux bzImage, protocol {}.{:02}",
            version >> 8,
            version & 0xFF
        );
        Ok(())
    }

    fn start_multiboot(
        &self,
        cpu: &mut Cpu,
        mem: &mut GuestMemory,
        map: &[E820Entry],
        header: usize,
    ) -> Result<(), BootError> {
        let k = &self.kernel;
        let flags = u32_at(k, header + 4).ok_or(BootError::Truncated("multiboot header"))?;
        // Bits 0-15 are requirements: we honour 0 (page-aligned modules) and
        // 1 (memory information); 2 (video mode) is answered by absence.
        if flags & 0xFFF8 != 0 {
            return Err(BootError::Multiboot("the header asks for features this loader does not know"));
        }
        let ram_top = ram_top(map);
        let (entry, image_end) = if flags & (1 << 16) != 0 {
            // The a.out kludge: addresses from the header.
            let f = |i: usize| u32_at(k, header + 12 + 4 * i).ok_or(BootError::Truncated("multiboot address fields"));
            let (header_addr, load_addr, load_end, bss_end, entry) = (f(0)?, f(1)?, f(2)?, f(3)?, f(4)?);
            if load_addr > header_addr {
                return Err(BootError::Multiboot("load_addr is above header_addr"));
            }
            let file_start = header
                .checked_sub((header_addr - load_addr) as usize)
                .ok_or(BootError::Multiboot("load_addr is before the start of the file"))?;
            let len = if load_end == 0 {
                k.len() - file_start
            } else {
                load_end.checked_sub(load_addr).ok_or(BootError::Multiboot("load_end_addr < load_addr"))? as usize
            };
            let bytes = k.get(file_start..file_start + len).ok_or(BootError::Truncated("multiboot image"))?;
            let end = (load_addr as u64 + len as u64).max(bss_end as u64);
            check_fits(load_addr as u64, end, ram_top)?;
            mem.load(PhysAddr(load_addr), bytes);
            if bss_end as u64 > load_addr as u64 + len as u64 {
                zero(mem, load_addr + len as u32, bss_end - (load_addr + len as u32));
            }
            (entry, end)
        } else {
            load_elf32(k, mem, ram_top)?
        };

        // The initrd becomes module 0, page-aligned after the kernel.
        let mut info = [0u32; 22];
        info[0] = (1 << 0) | (1 << 2) | (1 << 6) | (1 << 9); // mem, cmdline, mmap, loader name
        info[1] = 640; // mem_lower (KiB)
        info[2] = (ram_top.saturating_sub(0x10_0000) >> 10) as u32; // mem_upper
        info[4] = MB_CMDLINE;
        if let Some(initrd) = &self.initrd {
            let start = image_end.next_multiple_of(4096);
            check_fits(start, start + initrd.len() as u64, ram_top)?;
            mem.load(PhysAddr(start as u32), initrd);
            let m = [start as u32, (start + initrd.len() as u64) as u32, MB_CMDLINE, 0];
            mem.load(PhysAddr(MB_MODS), &words(&m));
            info[0] |= 1 << 3;
            info[5] = 1;
            info[6] = MB_MODS;
        }
        let mut mmap = Vec::new();
        for e in map.iter().take(64) {
            mmap.extend_from_slice(&20u32.to_le_bytes());
            mmap.extend_from_slice(&e.base.to_le_bytes());
            mmap.extend_from_slice(&e.len.to_le_bytes());
            mmap.extend_from_slice(&e.kind.to_le_bytes());
        }
        info[11] = mmap.len() as u32;
        info[12] = MB_MMAP;
        info[16] = MB_LOADER_NAME;
        mem.load(PhysAddr(MB_MMAP), &mmap);
        let mut cmd = self.cmdline.as_bytes().to_vec();
        cmd.truncate(0x7FF);
        cmd.push(0);
        mem.load(PhysAddr(MB_CMDLINE), &cmd);
        mem.load(PhysAddr(MB_LOADER_NAME), b"ferrite\0");
        mem.load(PhysAddr(MB_INFO), &words(&info));

        enter_flat_pm(cpu, mem, entry);
        cpu.state.regs = [0; 8];
        cpu.state.regs[EAX] = MULTIBOOT_BOOTLOADER_MAGIC;
        cpu.state.regs[EBX] = MB_INFO;
        tracing::info!(entry = format_args!("{entry:#x}"), "booting a multiboot kernel");
        Ok(())
    }
}

const EAX: usize = 0;
const EBX: usize = 3;
const ESI: usize = 6;

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn zero(mem: &mut GuestMemory, addr: u32, len: u32) {
    let chunk = [0u8; 4096];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(4096);
        mem.load(PhysAddr(addr + off), &chunk[..n as usize]);
        off += n;
    }
}

/// The end of the RAM range that holds 1 MiB (where kernels go).
fn ram_top(map: &[E820Entry]) -> u64 {
    map.iter()
        .filter(|e| e.kind == E820_RAM && e.base <= 0x10_0000 && e.base + e.len > 0x10_0000)
        .map(|e| e.base + e.len)
        .max()
        .unwrap_or(0)
}

fn check_fits(start: u64, end: u64, ram_top: u64) -> Result<(), BootError> {
    if start < 0x10_0000 || end > ram_top {
        if end > ram_top {
            return Err(BootError::NotEnoughRam { need_mib: end.div_ceil(1 << 20) + 1 });
        }
        return Err(BootError::Multiboot("the kernel wants to load below 1 MiB"));
    }
    Ok(())
}

/// The multiboot header: 4-byte aligned in the first 8 KiB, magic, flags and
/// a checksum that makes the three sum to zero.
fn find_multiboot_header(k: &[u8]) -> Option<usize> {
    (0..k.len().min(8192).saturating_sub(11)).step_by(4).find(|&off| {
        let (Some(m), Some(f), Some(c)) = (u32_at(k, off), u32_at(k, off + 4), u32_at(k, off + 8)) else {
            return false;
        };
        m == MULTIBOOT_MAGIC && m.wrapping_add(f).wrapping_add(c) == 0
    })
}

/// Load the PT_LOAD segments of an ELF32 i386 executable at their physical
/// addresses; returns (entry, end of the highest segment).
fn load_elf32(k: &[u8], mem: &mut GuestMemory, ram_top: u64) -> Result<(u32, u64), BootError> {
    const BAD: BootError = BootError::Multiboot("no address fields and not an ELF32 i386 executable");
    if k.get(0..4) != Some(b"\x7fELF") || k.get(4) != Some(&1) || k.get(5) != Some(&1) || u16_at(k, 18) != Some(3) {
        return Err(BAD);
    }
    let entry = u32_at(k, 24).ok_or(BAD)?;
    let phoff = u32_at(k, 28).ok_or(BAD)? as usize;
    let phentsize = u16_at(k, 42).ok_or(BAD)? as usize;
    let phnum = u16_at(k, 44).ok_or(BAD)? as usize;
    if phentsize < 32 {
        return Err(BAD);
    }
    let mut end = 0u64;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let f = |o: usize| u32_at(k, ph + o).ok_or(BootError::Truncated("ELF program headers"));
        if f(0)? != 1 {
            continue; // not PT_LOAD
        }
        let (offset, paddr, filesz, memsz) = (f(4)? as usize, f(12)?, f(16)? as usize, f(20)?);
        let bytes = k.get(offset..offset + filesz).ok_or(BootError::Truncated("ELF segment"))?;
        let seg_end = paddr as u64 + (memsz as u64).max(filesz as u64);
        check_fits(paddr as u64, seg_end, ram_top)?;
        mem.load(PhysAddr(paddr), bytes);
        if memsz as usize > filesz {
            zero(mem, paddr + filesz as u32, memsz - filesz as u32);
        }
        end = end.max(seg_end);
    }
    if end == 0 {
        return Err(BootError::Multiboot("the ELF file has no loadable segment"));
    }
    Ok((entry, end))
}

/// Flat 32-bit protected mode, paging off, interrupts off, with a GDT in
/// low memory whose 0x10/0x18 entries are the flat code/data descriptors
/// (Linux's __BOOT_CS/__BOOT_DS; multiboot only asks for flat segments).
fn enter_flat_pm(cpu: &mut Cpu, mem: &mut GuestMemory, entry: u32) {
    let code: u64 = 0x00CF_9B00_0000_FFFF;
    let data: u64 = 0x00CF_9300_0000_FFFF;
    let gdt = [0u64, 0, code, data];
    let bytes: Vec<u8> = gdt.iter().flat_map(|d| d.to_le_bytes()).collect();
    mem.load(PhysAddr(GDT), &bytes);
    let s = &mut cpu.state;
    s.gdtr = TableReg { base: GDT, limit: bytes.len() as u32 - 1 };
    s.cr0 |= CR0_PE;
    let flat = |selector, extra| Segment {
        selector,
        base: 0,
        limit: 0xFFFF_FFFF,
        flags: SEG_P | SEG_S | SEG_ACCESSED | SEG_DB | SEG_G | extra,
    };
    s.segs[SegReg::Cs as usize] = flat(0x10, SEG_CODE | SEG_RW);
    for r in [SegReg::Ds, SegReg::Es, SegReg::Fs, SegReg::Gs, SegReg::Ss] {
        s.segs[r as usize] = flat(0x18, SEG_RW);
    }
    s.cpl = 0;
    s.eip = entry;
    s.set_eflags(0x2);
    s.halted = false;
    cpu.flush_caches();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e820::memory_map;

    fn bzimage(version: u16, setup_sects: u8) -> Vec<u8> {
        let mut k = vec![0u8; (setup_sects as usize + 1) * 512 + 4096];
        k[0x1F1] = setup_sects;
        k[0x201] = 0x6A;
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        k[0x211] = 1;
        k[0x22C..0x230].copy_from_slice(&0x37FF_FFFFu32.to_le_bytes());
        k[0x238..0x23C].copy_from_slice(&2047u32.to_le_bytes());
        let pm = (setup_sects as usize + 1) * 512;
        k[pm] = 0xF4; // hlt
        k
    }

    #[test]
    fn linux_zero_page_and_entry_state() {
        let k = bzimage(0x20F, 4);
        let boot = KernelBoot::new(k, Some(vec![0xAB; 5000]), "console=ttyS0".into()).unwrap();
        assert_eq!(boot.format_name(), "Linux bzImage");
        let mut mem = GuestMemory::new(64 << 20).unwrap();
        let mut cpu = Cpu::new();
        let map = memory_map(64 << 20);
        boot.start(&mut cpu, &mut mem, &map).unwrap();
        assert_eq!(cpu.state.eip, 0x10_0000);
        assert_eq!(cpu.state.regs[ESI], ZERO_PAGE);
        assert!(cpu.state.protected() && cpu.state.code32());
        assert_eq!(mem.peek(PhysAddr(0x10_0000)), 0xF4);
        let rd32 = |a: u32| u32::from_le_bytes(std::array::from_fn(|i| mem.peek(PhysAddr(a + i as u32))));
        assert_eq!(rd32(ZERO_PAGE + 0x228), CMDLINE);
        assert_eq!(mem.peek(PhysAddr(CMDLINE)), b'c');
        let initrd = rd32(ZERO_PAGE + 0x218);
        assert_eq!(rd32(ZERO_PAGE + 0x21C), 5000);
        assert_eq!(initrd & 0xFFF, 0);
        assert!(initrd as u64 + 5000 <= 64 << 20 && initrd > 0x10_0000);
        assert_eq!(mem.peek(PhysAddr(initrd)), 0xAB);
        assert_eq!(mem.peek(PhysAddr(ZERO_PAGE + 0x1E8)) as usize, map.len());
        assert_eq!(mem.peek(PhysAddr(ZERO_PAGE + 0x210)), 0xFF);
        // The CPU runs the kernel's first instruction.
        let mut bus = ferrite_core::bus::NullBus;
        cpu.step(&mut mem, &mut bus);
        assert!(cpu.state.halted);
    }

    #[test]
    fn bad_kernels_are_named() {
        assert_eq!(KernelBoot::new(vec![0; 10000], None, String::new()).unwrap_err(), BootError::UnknownFormat);
        assert_eq!(KernelBoot::new(bzimage(0x201, 4), None, String::new()).unwrap_err(), BootError::OldProtocol(2, 1));
        let long = "x".repeat(3000);
        assert!(matches!(
            KernelBoot::new(bzimage(0x20F, 4), None, long).unwrap_err(),
            BootError::CmdlineTooLong { len: 3000, max: 2047 }
        ));
        let boot = KernelBoot::new(bzimage(0x20F, 4), Some(vec![0; 20 << 20]), String::new()).unwrap();
        let mut mem = GuestMemory::new(16 << 20).unwrap();
        let err = boot.start(&mut Cpu::new(), &mut mem, &memory_map(16 << 20)).unwrap_err();
        assert!(matches!(err, BootError::NotEnoughRam { .. }), "{err}");
    }

    #[test]
    fn multiboot_aout_kludge_loads_and_enters_with_the_magic() {
        // Header at 0 with the address fields: load at 2 MiB, entry 2 MiB + 48.
        let mut k = vec![0u8; 64];
        let flags = (1u32 << 16) | 2;
        let hdr = [
            MULTIBOOT_MAGIC,
            flags,
            0u32.wrapping_sub(MULTIBOOT_MAGIC).wrapping_sub(flags),
            0x20_0000,
            0x20_0000,
            0,
            0x20_1000,
            0x20_0030,
        ];
        k[..32].copy_from_slice(&words(&hdr));
        k[48] = 0xF4;
        let boot = KernelBoot::new(k, Some(b"module".to_vec()), "args".into()).unwrap();
        assert_eq!(boot.format_name(), "multiboot");
        let mut mem = GuestMemory::new(8 << 20).unwrap();
        let mut cpu = Cpu::new();
        boot.start(&mut cpu, &mut mem, &memory_map(8 << 20)).unwrap();
        assert_eq!(cpu.state.eip, 0x20_0030);
        assert_eq!(cpu.state.regs[EAX], MULTIBOOT_BOOTLOADER_MAGIC);
        assert_eq!(mem.peek(PhysAddr(0x20_0030)), 0xF4);
        let rd32 = |a: u32| u32::from_le_bytes(std::array::from_fn(|i| mem.peek(PhysAddr(a + i as u32))));
        assert_eq!(rd32(MB_INFO + 20), 1, "one module");
        let mod_start = rd32(MB_MODS);
        assert_eq!(mod_start, 0x20_1000);
        assert_eq!(mem.peek(PhysAddr(mod_start)), b'm');
        assert_eq!(rd32(MB_INFO + 8), (8 << 10) - 1024, "mem_upper in KiB");
    }
}
