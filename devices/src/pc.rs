//! The `pc` board: wires the platform devices into one port map and
//! interrupt path, keeps virtual time, and runs a CPU against them.
//!
//! Time: the board converts the CPU's retired-instruction count into
//! virtual nanoseconds at a fixed rate (`ns_per_instruction`) plus the time
//! skipped while the CPU is halted. Before every port access the CPU calls
//! [`Bus::sync`], so a device always sees the time of the access. Between
//! accesses [`Machine::run`] runs the CPU only up to the next device event,
//! then polls the due devices.
//!
//! Interrupts: devices drive [`IrqLines`]; after every device call the PIC
//! samples the lines, and its INTR output is what the CPU sees.

use crate::busmaster::BusMaster;
use crate::dma::Dma;
use crate::fdc::Fdc;
use crate::ide::IdeController;
use crate::pci::{Bar, ConfigSpace, GenericFunction, PciAddress, PciBus};
use crate::pic::Pic;
use crate::pit::Pit;
use crate::ps2::Ps2;
use crate::rtc::Rtc;
use crate::uart::Uart;
use crate::vga::Vga;
use crate::{DevCtx, IrqLines, PortIo, Timed};
use ferrite_core::{AccessSize, Bus, Cpu, GuestMemory, Nanos, PhysAddr, StepOutcome};

/// Configuration of the board.
#[derive(Clone, Debug)]
pub struct PcConfig {
    /// Virtual nanoseconds per retired instruction (10 = a 100 MIPS CPU).
    pub ns_per_instruction: u64,
    /// Wall-clock time the RTC starts at, as Unix seconds (the frontend reads
    /// the host clock once; the core never does).
    pub rtc_start_unix: u64,
    /// Enable the 0xF4 exit device.
    pub debug_exit: bool,
    /// The serial lines run this many times faster than their baud rate
    /// (1 = real timing; see [`Uart::set_speedup`]).
    pub serial_speedup: u64,
}

impl Default for PcConfig {
    fn default() -> Self {
        // 2000-01-01 00:00:00 UTC: deterministic unless the frontend says otherwise.
        PcConfig { ns_per_instruction: 10, rtc_start_unix: 946_684_800, debug_exit: false, serial_speedup: 1 }
    }
}

/// Port 0x61 writes kept for the audio sink between two of its looks (a
/// guest toggling the speaker faster is cut off rather than growing memory).
const SPEAKER_LOG_MAX: usize = 1 << 16;

/// COM1 and COM2 (base port, IRQ).
const COM_PORTS: [(u16, u8); 2] = [(0x3F8, 4), (0x2F8, 3)];

/// The platform devices and their port map.
pub struct Pc {
    pub pic: Pic,
    pub pit: Pit,
    pub rtc: Rtc,
    pub com: [Uart; 2],
    pub dma: Dma,
    pub ps2: Ps2,
    pub pci: PciBus,
    pub ide: IdeController,
    pub busmaster: BusMaster,
    pub fdc: Fdc,
    pub vga: Vga,
    /// Where the VBE linear framebuffer (VGA BAR 0) is mapped, as (base,
    /// length), and whether the memory map must follow a change of it or
    /// of the VBE bank window.
    lfb_mapped: Option<(u32, u32)>,
    display_map_pending: bool,
    /// Bytes of VBE memory to clear (a mode set without NOCLEARMEM).
    vbe_clear: Option<usize>,
    /// The VGA BIOS image behind the adapter's expansion ROM BAR, as
    /// (first backing page, pages), and where it is mapped now.
    vga_rom: Option<(u32, u32)>,
    rom_mapped: Option<u32>,
    /// I/O base of the PIIX3 IDE bus-master registers (BAR4), when decoded.
    bm_base: Option<u16>,
    irq: IrqLines,
    now: Nanos,
    ns_per_instruction: u64,
    /// Virtual time skipped while the CPU was halted.
    idle_ns: u64,
    /// Port 0x61 bits the board keeps: 0 = speaker gate (PIT channel 2),
    /// 1 = speaker data.
    port61: u8,
    /// Port 0x61 writes (time, bits 1:0) since the audio sink last took
    /// them; recorded only while a sink listens (`speaker_log_on`).
    speaker_log: Vec<(Nanos, u8)>,
    speaker_log_on: bool,
    /// Port 0x92 (PS/2 system control port A): bit 1 = A20, bit 0 = reset.
    port92: u8,
    reset_request: bool,
    /// Last level of the CPU's FERR# output seen (IRQ13 latches its rising edge).
    ferr: bool,
    /// A port write changed the memory map, A20 or reset state.
    service: bool,
    debug_exit: bool,
    /// Bytes written to the 0xE9 debug console, not yet taken.
    debugcon: Vec<u8>,
    /// Console text from the firmware (BIOS teletype output) for the serial
    /// sink, not yet taken. The same bytes also go to `debugcon`.
    firmware_serial: Vec<u8>,
    /// The firmware trap port is claimed (a [`Firmware`] is attached).
    trap_enabled: bool,
    /// The guest wrote the firmware trap port; [`Machine::run`] calls the
    /// firmware before the next instruction.
    trap_pending: bool,
    exit: Option<u32>,
    /// Ports already reported as unclaimed (one log line each).
    logged: Box<[u64; 1024]>,
}

impl Pc {
    pub fn new(cfg: &PcConfig) -> Pc {
        Pc {
            pic: Pic::new(),
            pit: Pit::new(),
            rtc: Rtc::from_unix_seconds(cfg.rtc_start_unix),
            com: COM_PORTS.map(|(base, irq)| {
                let mut u = Uart::new(base, irq);
                u.set_speedup(cfg.serial_speedup);
                u
            }),
            dma: Dma::new(),
            ps2: Ps2::new(),
            pci: new_pci_bus(),
            ide: IdeController::new(),
            busmaster: BusMaster::new(),
            fdc: Fdc::new(),
            vga: Vga::new(),
            lfb_mapped: None,
            display_map_pending: false,
            vbe_clear: None,
            vga_rom: None,
            rom_mapped: None,
            bm_base: None,
            irq: IrqLines::default(),
            now: Nanos::ZERO,
            ns_per_instruction: cfg.ns_per_instruction.max(1),
            idle_ns: 0,
            port61: 0,
            speaker_log: Vec::new(),
            speaker_log_on: false,
            port92: 0x02,
            reset_request: false,
            ferr: false,
            service: false,
            debug_exit: cfg.debug_exit,
            debugcon: Vec::new(),
            firmware_serial: Vec::new(),
            trap_enabled: false,
            trap_pending: false,
            exit: None,
            logged: Box::new([0; 1024]),
        }
    }

    /// Fill the CMOS fields a BIOS reads to size memory and find drives
    /// (IBM AT layout plus the extensions SeaBIOS and QEMU use): base memory,
    /// extended memory (registers 0x17/0x18 and 0x30/0x31, capped at 63 MiB),
    /// memory above 16 MiB in 64 KiB units (0x34/0x35), no floppy or hard
    /// disk yet, and the checksum over 0x10-0x2D.
    pub fn init_cmos(&mut self, ram_bytes: usize) {
        let kib = (ram_bytes / 1024) as u64;
        let ext_kib = kib.saturating_sub(1024).min(0xFFFF) as u16;
        let above16 = ((ram_bytes as u64).saturating_sub(16 << 20) >> 16).min(0xFFFF) as u16;
        let floppy = self.fdc.geometry(0).is_some();
        let n = self.rtc.nvram_mut();
        // Drive A: 1.44 MB 3.5" when a disk is inserted (type 4 in the high nibble).
        n[0x10] = if floppy { 0x40 } else { 0x00 };
        n[0x12] = 0x00; // no hard disks
                        // Equipment: floppy present (bit 0, count-1 in bits 7:6 = 0), math
                        // coprocessor (bit 1), PS/2 mouse (bit 2), EGA/VGA display (bits
                        // 5:4 = 00).
        n[0x14] = 0x06 | floppy as u8;
        n[0x15] = 0x80; // 640 KiB base memory
        n[0x16] = 0x02;
        n[0x17] = ext_kib as u8;
        n[0x18] = (ext_kib >> 8) as u8;
        n[0x30] = ext_kib as u8;
        n[0x31] = (ext_kib >> 8) as u8;
        n[0x34] = above16 as u8;
        n[0x35] = (above16 >> 8) as u8;
        // Boot order (QEMU layout): hard disk, CD, floppy.
        n[0x3D] = 0x32;
        n[0x38] = 0x10;
        self.rtc.update_checksum();
    }

    /// Set the first boot device in CMOS (QEMU layout: 1 floppy, 2 hard
    /// disk, 3 CD), followed by the other two.
    pub fn set_boot_order(&mut self, first: u8) {
        let order: u16 = match first {
            1 => 0x231,
            3 => 0x123,
            _ => 0x132,
        };
        let n = self.rtc.nvram_mut();
        n[0x3D] = (order & 0xFF) as u8;
        n[0x38] = ((order >> 4) & 0xF0) as u8;
    }

    /// A hard reset of the chipset and the devices that reset with it (the
    /// CMOS/RTC is battery-backed and keeps running; UARTs keep host data).
    pub fn reset(&mut self) {
        self.pic = Pic::new();
        self.pit = Pit::new();
        self.dma.reset();
        self.ps2.reset();
        self.pci.reset();
        self.busmaster = BusMaster::new();
        self.bm_base = None;
        self.fdc.reset();
        self.vga.reset();
        // The IDE drives keep their media; their registers reset.
        let mut cx = DevCtx { now: self.now, irq: &mut self.irq };
        self.ide.write_ctrl(crate::ide::IdeChannel::Primary, 0x04, &mut cx);
        self.ide.write_ctrl(crate::ide::IdeChannel::Primary, 0x00, &mut cx);
        self.ide.write_ctrl(crate::ide::IdeChannel::Secondary, 0x04, &mut cx);
        self.ide.write_ctrl(crate::ide::IdeChannel::Secondary, 0x00, &mut cx);
        for u in self.com.iter_mut() {
            u.reset();
        }
        self.irq = IrqLines::default();
        self.port61 = 0;
        self.port92 = 0x02;
        self.reset_request = false;
        self.trap_pending = false;
    }

    /// Virtual time after `instret` retired instructions.
    pub fn time_at(&self, instret: u64) -> Nanos {
        Nanos(instret.saturating_mul(self.ns_per_instruction).saturating_add(self.idle_ns))
    }

    /// Current virtual time.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Bring time to `instret` and poll every device whose event is due.
    pub fn advance(&mut self, instret: u64) {
        let t = self.time_at(instret);
        if t > self.now {
            self.now = t;
        }
        // A device may schedule its next event at `now` (e.g. to emit an
        // edge); a few rounds settle it, the bound keeps a bad device from
        // hanging the host.
        for _ in 0..8 {
            let now = self.now;
            let mut cx = DevCtx { now, irq: &mut self.irq };
            let mut any = false;
            if self.pit.next_event().is_some_and(|e| e <= now) {
                self.pit.poll(&mut cx);
                any = true;
            }
            if self.rtc.next_event().is_some_and(|e| e <= now) {
                self.rtc.poll(&mut cx);
                any = true;
            }
            if self.ps2.next_event().is_some_and(|e| e <= now) {
                self.ps2.poll(&mut cx);
                any = true;
            }
            for u in self.com.iter_mut() {
                if u.next_event().is_some_and(|e| e <= now) {
                    u.poll(&mut cx);
                    any = true;
                }
            }
            self.pic.update(&self.irq);
            if !any {
                break;
            }
        }
    }

    /// The earliest time a device needs a poll.
    pub fn next_deadline(&self) -> Option<Nanos> {
        [
            self.pit.next_event(),
            self.rtc.next_event(),
            self.ps2.next_event(),
            self.com[0].next_event(),
            self.com[1].next_event(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The CPU is halted with nothing to do: let virtual time jump to `t`.
    pub fn skip_idle_to(&mut self, t: Nanos) {
        if t > self.now {
            self.idle_ns += t.since(self.now);
            self.now = t;
        }
    }

    /// Instructions the CPU may run before the next device event.
    pub fn budget(&self, max: u64) -> u64 {
        match self.next_deadline() {
            Some(t) => (t.since(self.now) / self.ns_per_instruction).clamp(1, max),
            None => max,
        }
    }

    /// State of the A20 gate: port 0x92 bit 1 OR the 8042 output port's
    /// A20 line (the two are ORed on PIIX-era boards).
    pub fn a20(&self) -> bool {
        self.port92 & 2 != 0 || self.ps2.a20_enabled()
    }

    /// A reset was requested (port 0x92 bit 0 rising, or the 8042's reset
    /// line pulsed).
    pub fn take_reset_request(&mut self) -> bool {
        let kbc = self.ps2.take_reset_request();
        let pci = self.pci.take_reset_request().is_some();
        std::mem::take(&mut self.reset_request) | kbc | pci
    }

    /// Start (or stop) recording port 0x61 writes for an audio sink.
    pub fn listen_to_speaker(&mut self, on: bool) {
        self.speaker_log_on = on;
        self.speaker_log.clear();
    }

    /// Port 0x61 writes (virtual time, bits 1:0) since the last call.
    pub fn take_speaker_log(&mut self) -> Vec<(Nanos, u8)> {
        std::mem::take(&mut self.speaker_log)
    }

    /// Port 0x61 bits 1:0 now (speaker data, PIT channel 2 gate).
    pub fn port61(&self) -> u8 {
        self.port61
    }

    /// The PC speaker's level at `t` with port 0x61 bits `p61`: the data
    /// bit (1) ANDed with PIT channel 2's output, whose gate is bit 0 (a
    /// square wave in mode 3; the output stays high with the gate low, so
    /// toggling bit 1 alone drives the cone directly).
    pub fn speaker_level(&self, t: Nanos, p61: u8) -> bool {
        p61 & 2 != 0 && self.pit.out2(t)
    }

    /// Bytes written to the debug console since the last call.
    pub fn take_debugcon(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.debugcon)
    }

    /// Console output of the firmware (the own BIOS's teletype text while
    /// no display is attached): it goes to the debug console, in order with
    /// the guest's own 0xE9 bytes, and to the serial sink.
    pub fn firmware_console(&mut self, bytes: &[u8]) {
        self.debugcon.extend_from_slice(bytes);
        self.firmware_serial.extend_from_slice(bytes);
    }

    /// Firmware console bytes for the serial sink since the last call.
    pub fn take_firmware_serial(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.firmware_serial)
    }

    /// Whether the guest wrote the firmware trap port since the last call.
    pub fn take_firmware_trap(&mut self) -> bool {
        std::mem::take(&mut self.trap_pending)
    }

    /// The value written to the 0xF4 exit device, if any.
    pub fn exit_value(&self) -> Option<u32> {
        self.exit
    }

    fn log_unclaimed(&mut self, port: u16, write: bool) {
        let (w, b) = (port as usize / 64, port as usize % 64);
        if self.logged[w] & (1 << b) == 0 {
            self.logged[w] |= 1 << b;
            tracing::debug!("unclaimed I/O port {port:#06x} ({})", if write { "write" } else { "read" });
        }
    }

    /// Re-read where the guest placed the IDE bus-master registers and
    /// the VGA's linear framebuffer.
    fn update_pci_routing(&mut self) {
        if self.pci.take_config_changed() {
            if self.lfb_window() != self.lfb_mapped || self.rom_window() != self.rom_mapped {
                self.display_map_pending = true;
                self.service = true;
            }
            self.bm_base = self
                .pci
                .function(IDE_FUNCTION)
                .and_then(|f| f.config().active_bar(4))
                .filter(|b| b.kind == crate::pci::BarKind::Io)
                .map(|b| b.base as u16);
        }
    }

    /// Give the display adapter an expansion ROM (PCI 2.1 ROM BAR) showing
    /// `pages` ROM pages from backing page `first` (loaded with
    /// [`GuestMemory::map_rom`]): how a BIOS such as SeaBIOS finds the VGA
    /// BIOS of a PCI display.
    pub fn attach_vga_rom(&mut self, first: u32, pages: u32) {
        let size = (pages << 12).next_power_of_two().max(0x800);
        if let Some(f) = self.pci.function_as_mut::<GenericFunction>(VGA_FUNCTION) {
            f.cfg = f.cfg.clone().with_rom(size);
            self.vga_rom = Some((first, pages));
        }
    }

    /// Where the VGA's expansion ROM BAR decodes now.
    fn rom_window(&self) -> Option<u32> {
        self.vga_rom?;
        Some(self.pci.function(VGA_FUNCTION)?.config().active_rom()?.base)
    }

    /// The VBE framebuffer window the VGA's BAR 0 decodes now.
    fn lfb_window(&self) -> Option<(u32, u32)> {
        let bar = self.pci.function(VGA_FUNCTION)?.config().active_bar(0)?;
        Some((bar.base, bar.size.min(ferrite_core::DEVICE_RAM_BYTES as u32)))
    }

    /// Bring the memory map in line with the display: the linear
    /// framebuffer at its BAR, the 0xA0000 window on the VBE bank while
    /// VBE is enabled (the VGA's MMIO otherwise); and clear VBE memory a
    /// mode set asked to clear. Code decoded from remapped pages is
    /// reported by the memory's invalidation queue.
    pub fn update_display_map(&mut self, mem: &mut GuestMemory) {
        if !std::mem::take(&mut self.display_map_pending) {
            return;
        }
        let want = self.lfb_window();
        if want != self.lfb_mapped {
            if let Some((base, len)) = self.lfb_mapped {
                if let Err(e) = mem.unmap_device_ram(PhysAddr(base), len) {
                    tracing::warn!("VGA framebuffer unmap: {e}");
                }
            }
            if let Some((base, len)) = want {
                if let Err(e) = mem.map_device_ram(PhysAddr(base), 0, len) {
                    tracing::warn!("VGA framebuffer at {base:#x}: {e}");
                }
            }
            self.lfb_mapped = want;
        }
        let rom = self.rom_window();
        if rom != self.rom_mapped {
            if let (Some(base), Some((_, pages))) = (self.rom_mapped, self.vga_rom) {
                if let Err(e) = mem.unmap_rom(PhysAddr(base), pages << 12) {
                    tracing::warn!("VGA ROM unmap: {e}");
                }
            }
            if let (Some(base), Some((first, pages))) = (rom, self.vga_rom) {
                if let Err(e) = mem.alias_rom(PhysAddr(base), first, pages) {
                    tracing::warn!("VGA ROM at {base:#x}: {e}");
                }
            }
            self.rom_mapped = rom;
        }
        let window = if self.vga.dispi.enabled() {
            mem.map_device_ram(PhysAddr(crate::vga::WINDOW_BASE), (self.vga.dispi.bank as u32) << 16, 0x1_0000)
        } else {
            mem.map_mmio(PhysAddr(crate::vga::WINDOW_BASE), 0x1_0000)
        };
        if let Err(e) = window {
            tracing::warn!("VGA window: {e}");
        }
        if let Some(n) = self.vbe_clear.take() {
            let m = mem.device_ram_mut();
            let n = n.min(m.len());
            m[..n].fill(0);
        }
    }

    /// Run started bus-master transfers (needs guest memory, so the
    /// machine loop calls this).
    pub fn service_dma(&mut self, mem: &mut GuestMemory) {
        if self.fdc.dma_request().is_some() {
            let mut cx = DevCtx { now: self.now, irq: &mut self.irq };
            let mut bus = ferrite_core::NullBus;
            self.fdc.service_dma(&mut self.dma, mem, &mut bus, &mut cx);
            self.pic.update(&self.irq);
        }
        if self.busmaster.active() {
            let mut cx = DevCtx { now: self.now, irq: &mut self.irq };
            let mut bus = ferrite_core::NullBus;
            self.busmaster.service(&mut self.ide, mem, &mut bus, &mut cx);
            self.pic.update(&self.irq);
        }
    }

    /// Route one port access. Returns None for an unclaimed port.
    fn route(&mut self, port: u16, size: AccessSize, write: Option<u32>) -> Option<u32> {
        if let Some(base) = self.bm_base {
            if (base..base.saturating_add(16)).contains(&port) {
                let off = port - base;
                return Some(match write {
                    Some(v) => {
                        self.busmaster.write(off, size, v);
                        self.service = true;
                        0
                    }
                    None => self.busmaster.read(off, size),
                });
            }
        }
        let now = self.now;
        let mut cx = DevCtx { now, irq: &mut self.irq };
        let dev: &mut dyn PortIo = match port {
            0x20 | 0x21 | 0xA0 | 0xA1 | 0x4D0 | 0x4D1 => &mut self.pic,
            0x40..=0x43 => &mut self.pit,
            0x60 | 0x64 => &mut self.ps2,
            0xCF8..=0xCFF => &mut self.pci,
            0x1F0..=0x1F7 | 0x3F6 | 0x170..=0x177 | 0x376 => &mut self.ide,
            0x3F0..=0x3F5 | 0x3F7 => &mut self.fdc,
            0x00..=0x0F | 0x80..=0x8F | 0xC0..=0xDF => &mut self.dma,
            0x70 | 0x71 => &mut self.rtc,
            0x3F8..=0x3FF => &mut self.com[0],
            0x3B4 | 0x3B5 | 0x3BA | 0x3C0..=0x3CF | 0x3D4 | 0x3D5 | 0x3DA | 0x1CE | 0x1CF => &mut self.vga,
            0x2F8..=0x2FF => &mut self.com[1],
            0x61 => {
                return Some(match write {
                    Some(v) => {
                        self.port61 = v as u8 & 3;
                        self.pit.gate2(v & 1 != 0, &mut cx);
                        if self.speaker_log_on && self.speaker_log.len() < SPEAKER_LOG_MAX {
                            self.speaker_log.push((now, self.port61));
                        }
                        0
                    }
                    None => {
                        // Bit 4 toggles with DRAM refresh every 15.085 us;
                        // bit 5 is PIT channel 2's output.
                        let refresh = (now.0 / 15_085) & 1 != 0;
                        let out2 = self.pit.out2(now);
                        self.port61 as u32 | (refresh as u32) << 4 | (out2 as u32) << 5
                    }
                });
            }
            // Writing port F0h clears the latched FERR# interrupt (IRQ13),
            // as on AT-compatible boards.
            0xF0 => {
                if write.is_some() {
                    self.irq.lower(13);
                    self.ferr = false;
                }
                return Some(0xFF);
            }
            0x92 => {
                return Some(match write {
                    Some(v) => {
                        if v & 1 != 0 && self.port92 & 1 == 0 {
                            self.reset_request = true;
                        }
                        self.port92 = v as u8 & 3;
                        0
                    }
                    None => self.port92 as u32,
                });
            }
            // 0x402 is where SeaBIOS builds for QEMU write their log.
            crate::debug::DEBUGCON_PORT | 0x402 => {
                return Some(match write {
                    Some(v) => {
                        self.debugcon.push(v as u8);
                        0
                    }
                    None => 0xE9,
                });
            }
            FIRMWARE_TRAP_PORT if self.trap_enabled => {
                if write.is_some() {
                    // End the CPU's run after this OUT so the firmware sees
                    // CS:EIP right behind it (see [`Firmware`]).
                    self.trap_pending = true;
                    self.service = true;
                }
                return Some(size.all_ones());
            }
            crate::debug::DEBUG_EXIT_PORT if self.debug_exit => {
                if let Some(v) = write {
                    // The first write ends the run (the CPU stops right
                    // after this OUT); later ones cannot change the status.
                    self.exit.get_or_insert(v & size.all_ones());
                    self.service = true;
                }
                return Some(size.all_ones());
            }
            _ => return None,
        };
        let r = match write {
            Some(v) => {
                dev.io_write(port, size, v, &mut cx);
                0
            }
            None => dev.io_read(port, size, &mut cx),
        };
        self.pic.update(&self.irq);
        Some(r)
    }
}

impl Bus for Pc {
    fn sync(&mut self, instret: u64) {
        self.advance(instret);
    }

    fn io_read(&mut self, port: u16, size: AccessSize) -> u32 {
        match self.route(port, size, None) {
            Some(v) => v & size.all_ones(),
            None => {
                self.log_unclaimed(port, false);
                size.all_ones()
            }
        }
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32) {
        if self.route(port, size, Some(value)).is_none() {
            self.log_unclaimed(port, true);
        }
        // Chipset state, and anything that can start a floppy DMA.
        if matches!(port, 0x60 | 0x64 | 0x92 | 0xCF8..=0xCFF | 0x3F0..=0x3F7 | 0x00..=0x0F | 0x80..=0x8F | 0xC0..=0xDF)
        {
            self.service = true;
        }
        if matches!(port, 0xCF8..=0xCFF) {
            self.update_pci_routing();
        }
        if matches!(port, 0x1CE | 0x1CF) {
            let fx = self.vga.take_effects();
            if fx.remap || fx.clear.is_some() {
                self.display_map_pending = true;
                self.vbe_clear = fx.clear.or(self.vbe_clear);
                self.service = true;
            }
        }
    }

    fn needs_service(&self) -> bool {
        self.service
    }

    fn mmio_read(&mut self, addr: PhysAddr, size: AccessSize) -> u32 {
        match addr.0 {
            VGA_WINDOW_START..=VGA_WINDOW_LAST => self.vga.mmio_read(addr.0, size),
            _ => size.all_ones(),
        }
    }

    fn mmio_write(&mut self, addr: PhysAddr, size: AccessSize, value: u32) {
        if let VGA_WINDOW_START..=VGA_WINDOW_LAST = addr.0 {
            self.vga.mmio_write(addr.0, size, value);
        }
    }

    fn interrupt_pending(&self) -> bool {
        self.pic.interrupt_pending()
    }

    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        let v = self.pic.acknowledge();
        self.pic.update(&self.irq);
        v
    }
}

/// Where the VGA (QEMU's standard VGA IDs 1234:1111, which the Bochs
/// VBE drivers and VGA BIOSes look for) sits.
const VGA_FUNCTION: PciAddress = PciAddress::new(0, 2, 0);

/// The legacy VGA memory window (0xA0000-0xBFFFF), routed to the adapter.
const VGA_WINDOW_START: u32 = crate::vga::WINDOW_BASE;
const VGA_WINDOW_LAST: u32 = crate::vga::WINDOW_BASE + crate::vga::WINDOW_LEN - 1;

/// The PCI bus of the board: i440FX at 00:00.0, PIIX3 ISA bridge at
/// 00:01.0 and the PIIX3 IDE function at 00:01.1 in legacy (compatibility)
/// mode: fixed ports 0x1F0/0x170, IRQ 14/15, bus-master BAR4 (82371SB
/// datasheet, function 1), IDE timing registers 0x40-0x43 writable.
/// Where the PIIX3 IDE function sits.
const IDE_FUNCTION: PciAddress = PciAddress::new(0, 1, 1);

fn new_pci_bus() -> PciBus {
    let mut bus = PciBus::new();
    let ide = ConfigSpace::new(0x8086, 0x7010, 0, 0x01_01_80)
        .with_command(0, 0x0005)
        .with_bar(4, Bar::io(16))
        .with_reg(0x40, AccessSize::Dword, 0, 0xFFFF_FFFF)
        .with_reg(0x44, AccessSize::Byte, 0, 0xFF);
    // The slot is free on a new bus; a failure would be a programming error
    // caught by the tests, not a guest action.
    if let Err(e) = bus.add(IDE_FUNCTION, Box::new(GenericFunction::new(ide))) {
        tracing::error!("cannot add the PIIX3 IDE function: {e}");
    }
    // The display controller: VGA-compatible (class 03h/00h/00h), I/O and
    // memory decoding, BAR 0 the VBE framebuffer (prefetchable).
    let vga = ConfigSpace::new(0x1234, 0x1111, 2, 0x03_00_00)
        .with_command(0, 0x0003)
        .with_subsystem(0x1AF4, 0x1100)
        .with_bar(0, Bar::mem32_prefetchable(ferrite_core::DEVICE_RAM_BYTES as u32));
    if let Err(e) = bus.add(VGA_FUNCTION, Box::new(GenericFunction::new(vga))) {
        tracing::error!("cannot add the VGA function: {e}");
    }
    bus
}

/// The port the own BIOS's ROM stubs write (`out 0xEE, al`) to hand a
/// service to firmware code running on the host. Claimed only while a
/// [`Firmware`] is attached; otherwise it is an unclaimed port. 0xEE is
/// free on PC/AT boards (0xE9 is the debug console, 0xF0-0xFF the FPU and
/// the exit device, 0x510 QEMU's fw_cfg).
pub const FIRMWARE_TRAP_PORT: u16 = 0xEE;

/// Firmware implemented on the host (the own BIOS): its ROM stubs write
/// [`FIRMWARE_TRAP_PORT`]; the CPU ends its run right after that OUT and
/// [`Machine::run`] calls [`Firmware::trap`] before the next instruction,
/// with CS:EIP pointing behind the OUT (which tells the firmware which
/// stub trapped). The firmware reads and changes the CPU, memory and
/// devices, and may move CS:EIP.
pub trait Firmware {
    fn trap(&mut self, cpu: &mut Cpu, mem: &mut GuestMemory, pc: &mut Pc);
}

/// Why [`Machine::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunExit {
    /// The instruction budget is used up.
    Budget,
    /// The guest wrote the exit device.
    Exit(u32),
    /// The CPU is halted with interrupts disabled or no device event left:
    /// nothing can ever wake it.
    HaltedForever,
}

/// A CPU, its memory and the board.
pub struct Machine {
    pub cpu: Cpu,
    pub mem: GuestMemory,
    pub pc: Pc,
    /// Host-side firmware behind the trap port (the own BIOS), if any.
    pub firmware: Option<Box<dyn Firmware>>,
}

/// Instructions run between device polls at most.
const MAX_SLICE: u64 = 100_000;

impl Machine {
    pub fn new(mut mem: GuestMemory, cfg: &PcConfig) -> Machine {
        let mut pc = Pc::new(cfg);
        // The VGA window hides the RAM below it (the i440FX routes
        // 0xA0000-0xBFFFF to the PCI/ISA bus unless SMRAM is open).
        if let Err(e) = mem.map_mmio(PhysAddr(crate::vga::WINDOW_BASE), crate::vga::WINDOW_LEN) {
            tracing::error!("VGA window not mapped: {e}");
        }
        pc.init_cmos(mem.ram_size());
        Machine { cpu: Cpu::new(), mem, pc, firmware: None }
    }

    /// The display's current picture (rendered incrementally from the
    /// adapter state; works headless).
    pub fn display(&mut self) -> &crate::vga::Frame {
        let now = self.pc.now();
        self.pc.vga.render(now, self.mem.device_ram())
    }

    /// Reset the machine: the CPU, the chipset (PAM back to ROM) and the
    /// devices that share the reset line.
    pub fn reset(&mut self) {
        self.cpu.reset();
        self.pc.reset();
        self.pc.display_map_pending = true;
        self.pc.update_display_map(&mut self.mem);
        for r in self.pc.pci.pam_regions() {
            self.mem.set_shadow(ferrite_core::PhysAddr(r.base), r.len, r.read_ram, r.write_ram);
        }
        self.cpu.flush_caches();
    }

    /// Run up to `max` instructions (halted time does not count).
    pub fn run(&mut self, max: u64) -> RunExit {
        let start = self.cpu.instret;
        // Instruction times spent halted: idle time counts against the
        // budget, so an idle guest still returns to the caller (pacing,
        // timeouts, Ctrl-C) regularly.
        let mut idle = 0u64;
        while self.cpu.instret - start + idle < max {
            self.pc.advance(self.cpu.instret);
            self.pc.service = false;
            self.pc.trap_enabled = self.firmware.is_some();
            if self.pc.take_firmware_trap() {
                if let Some(fw) = self.firmware.as_mut() {
                    // Runs before the chipset updates below, so A20, PAM
                    // and reset changes the firmware makes apply at once.
                    fw.trap(&mut self.cpu, &mut self.mem, &mut self.pc);
                }
            }
            self.pc.service_dma(&mut self.mem);
            // Code decoded from pages whose mapping changed is dropped
            // through the memory's invalidation queue (a remap is not a
            // full flush: Linux sizes BARs often).
            self.pc.update_display_map(&mut self.mem);
            if self.pc.pci.take_pam_changed() {
                for r in self.pc.pci.pam_regions() {
                    self.mem.set_shadow(ferrite_core::PhysAddr(r.base), r.len, r.read_ram, r.write_ram);
                }
                self.cpu.flush_caches();
            }
            if self.pc.a20() != self.mem.a20_enabled() {
                self.mem.set_a20(self.pc.a20());
                self.cpu.flush_caches();
            }
            if self.pc.take_reset_request() {
                tracing::info!("reset requested by the guest");
                self.reset();
                continue;
            }
            if let Some(v) = self.pc.exit_value() {
                return RunExit::Exit(v);
            }
            let left = max - (self.cpu.instret - start + idle);
            let budget = self.pc.budget(MAX_SLICE.min(left));
            let (out, _) = self.cpu.run(&mut self.mem, &mut self.pc, budget);
            // FERR# (x87 error with CR0.NE clear) latches IRQ13 on its rising
            // edge until software writes port F0h.
            let ferr = self.cpu.ferr_asserted();
            if ferr && !self.pc.ferr {
                self.pc.irq.raise(13);
                self.pc.pic.update(&self.pc.irq);
            }
            self.pc.ferr = ferr;
            match out {
                StepOutcome::Continue => {}
                StepOutcome::Shutdown => {
                    tracing::warn!("triple fault: resetting the machine");
                    self.reset();
                }
                StepOutcome::Halted => {
                    self.pc.advance(self.cpu.instret);
                    let if_set = self.cpu.state.eflags() & ferrite_core::cpu::flags::IF != 0;
                    if if_set && self.pc.interrupt_pending() {
                        continue;
                    }
                    if let Some(v) = self.pc.exit_value() {
                        return RunExit::Exit(v);
                    }
                    match self.pc.next_deadline() {
                        Some(t) if if_set => {
                            let ns = self.pc.ns_per_instruction;
                            let now = self.pc.now().0;
                            // At least one instruction time, so a device that
                            // keeps reporting a due event cannot stall the
                            // loop; at most what is left of the budget.
                            // (The CPU's run may have used up the budget
                            // exactly: then one instruction time.)
                            let left = max.saturating_sub(self.cpu.instret - start + idle).max(1);
                            let t = t.0.clamp(now + ns, now + left * ns);
                            // The TSC counts core clocks, which run on while
                            // the CPU is halted: one per instruction time.
                            let before = self.pc.idle_ns / ns;
                            self.pc.skip_idle_to(Nanos(t));
                            let ticks = self.pc.idle_ns / ns - before;
                            self.cpu.state.tsc = self.cpu.state.tsc.wrapping_add(ticks);
                            idle += ticks.max(1);
                        }
                        _ => return RunExit::HaltedForever,
                    }
                }
            }
        }
        match self.pc.exit_value() {
            Some(v) => RunExit::Exit(v),
            None => RunExit::Budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc() -> Pc {
        Pc::new(&PcConfig::default())
    }

    #[test]
    fn speaker_follows_port_61_and_pit_channel_2() {
        let mut p = pc();
        p.io_write(0x61, AccessSize::Byte, 3);
        assert!(p.take_speaker_log().is_empty(), "nothing recorded without a listener");
        p.listen_to_speaker(true);
        // PIT channel 2, mode 3, 1193 counts: about 1 kHz.
        p.io_write(0x43, AccessSize::Byte, 0xB6);
        p.io_write(0x42, AccessSize::Byte, 1193 & 0xFF);
        p.io_write(0x42, AccessSize::Byte, 1193 >> 8);
        p.advance(1000);
        p.io_write(0x61, AccessSize::Byte, 3);
        let log = p.take_speaker_log();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].1, 3);
        let t0 = log[0].0;
        let levels: Vec<bool> = (0..40).map(|k| p.speaker_level(Nanos(t0.0 + k * 100_000), 3)).collect();
        let edges = levels.windows(2).filter(|w| w[0] != w[1]).count();
        // 4 ms of a 1 kHz square wave sampled every 0.1 ms: about 8 edges.
        assert!((6..=9).contains(&edges), "{edges} edges: {levels:?}");
        // Data bit off: silent whatever the PIT does.
        assert!((0..40).all(|k| !p.speaker_level(Nanos(t0.0 + k * 100_000), 1)));
    }

    #[test]
    fn unclaimed_ports_read_all_ones() {
        let mut pc = pc();
        assert_eq!(pc.io_read(0x1234, AccessSize::Byte), 0xFF);
        assert_eq!(pc.io_read(0x1234, AccessSize::Dword), 0xFFFF_FFFF);
        pc.io_write(0x1234, AccessSize::Word, 7);
    }

    /// A HLT that is exactly the last instruction of the budget, with a
    /// device event pending and interrupts enabled, ends the run (it used
    /// to compute an empty range for the idle skip and panic).
    #[test]
    fn a_halt_at_the_end_of_the_budget_returns() {
        use ferrite_core::cpu::state::SegReg;
        for max in 1..6 {
            let mut mem = GuestMemory::new(1 << 20).unwrap();
            // nop x3; sti; hlt; jmp $-1
            mem.load(PhysAddr(0x7C00), &[0x90, 0x90, 0x90, 0xFB, 0xF4, 0xEB, 0xFD]);
            let mut m = Machine::new(mem, &PcConfig::default());
            m.cpu.state.load_seg_real(SegReg::Cs, 0);
            m.cpu.state.eip = 0x7C00;
            // Every IRQ masked, PIT channel 0 running: a device event is
            // due later but no interrupt wakes the CPU.
            for (p, v) in [(0x20, 0x11), (0x21, 0x08), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFF)] {
                m.pc.io_write(p, AccessSize::Byte, v);
            }
            m.pc.io_write(0x43, AccessSize::Byte, 0x34);
            m.pc.io_write(0x40, AccessSize::Byte, 0xFF);
            m.pc.io_write(0x40, AccessSize::Byte, 0xFF);
            // max = 5 ends the budget exactly on the HLT.
            assert_eq!(m.run(max), RunExit::Budget, "budget {max}");
        }
    }

    #[test]
    fn time_follows_instructions_and_idle_skips() {
        let mut pc = pc();
        pc.advance(1000);
        assert_eq!(pc.now(), Nanos(10_000));
        pc.skip_idle_to(Nanos(50_000));
        pc.advance(1000);
        assert_eq!(pc.now(), Nanos(50_000));
        pc.advance(2000);
        assert_eq!(pc.now(), Nanos(60_000));
    }

    #[test]
    fn port_92_and_the_8042_drive_a20_and_reset() {
        let mut pc = pc();
        assert!(pc.a20());
        pc.io_write(0x92, AccessSize::Byte, 0);
        pc.io_write(0x64, AccessSize::Byte, 0xDD); // 8042: A20 off
        assert!(!pc.a20());
        pc.io_write(0x64, AccessSize::Byte, 0xDF); // 8042: A20 on
        assert!(pc.a20());
        pc.io_write(0x64, AccessSize::Byte, 0xDD);
        pc.io_write(0x64, AccessSize::Byte, 0xFE); // 8042: pulse reset
        assert!(pc.take_reset_request());
        assert!(!pc.take_reset_request());
        pc.io_write(0x92, AccessSize::Byte, 1);
        assert!(pc.take_reset_request());
        assert!(!pc.take_reset_request());
    }

    #[test]
    fn pit_channel_0_interrupts_reach_the_cpu_through_the_pic() {
        let mut pc = pc();
        // BIOS-style PIC init: vectors 0x08 / 0x70, unmask IRQ0 only.
        for (p, v) in [(0x20, 0x11), (0x21, 0x08), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFE)] {
            pc.io_write(p, AccessSize::Byte, v);
        }
        for (p, v) in [(0xA0, 0x11), (0xA1, 0x70), (0xA1, 0x02), (0xA1, 0x01), (0xA1, 0xFF)] {
            pc.io_write(p, AccessSize::Byte, v);
        }
        // PIT channel 0, mode 2, count 1193 (about 1 ms).
        pc.io_write(0x43, AccessSize::Byte, 0x34);
        pc.io_write(0x40, AccessSize::Byte, 1193 & 0xFF);
        pc.io_write(0x40, AccessSize::Byte, 1193 >> 8);
        let mut irqs = 0;
        let mut instret = 0;
        // 10 ms of virtual time at 10 ns per instruction.
        while instret < 1_000_000 {
            instret += pc.budget(10_000);
            pc.advance(instret);
            if pc.interrupt_pending() {
                assert_eq!(pc.acknowledge_interrupt(), Some(0x08));
                pc.io_write(0x20, AccessSize::Byte, 0x20); // EOI
                irqs += 1;
            }
        }
        assert!((9..=11).contains(&irqs), "{irqs} timer interrupts in 10 ms");
    }

    #[test]
    fn the_pci_host_bridge_and_isa_bridge_answer_config_cycles() {
        let mut pc = pc();
        pc.io_write(0xCF8, AccessSize::Dword, 0x8000_0000);
        assert_eq!(pc.io_read(0xCFC, AccessSize::Dword), 0x1237_8086);
        pc.io_write(0xCF8, AccessSize::Dword, 0x8000_0800);
        assert_eq!(pc.io_read(0xCFC, AccessSize::Dword), 0x7000_8086);
        pc.io_write(0xCF8, AccessSize::Dword, 0x8000_0900);
        assert_eq!(pc.io_read(0xCFC, AccessSize::Dword), 0x7010_8086, "PIIX3 IDE");
        pc.io_write(0xCF8, AccessSize::Dword, 0x8000_F800);
        assert_eq!(pc.io_read(0xCFC, AccessSize::Dword), 0xFFFF_FFFF);
        pc.io_write(0xCF9, AccessSize::Byte, 0x06);
        assert!(pc.take_reset_request());
    }

    #[test]
    fn ide_bus_master_dma_through_the_pci_bar() {
        use crate::block::MemBackend;
        use crate::ide::{DrivePosition, IdeChannel, IdeDevice};
        let mut pc = pc();
        let mut disk = vec![0u8; 16 * 512];
        disk[3 * 512] = 0x5A;
        pc.ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Disk(Box::new(MemBackend::new(disk))));
        // BAR4 of 00:01.1 = 0xC000, I/O decode and bus master on.
        pc.io_write(0xCF8, AccessSize::Dword, 0x8000_0920);
        pc.io_write(0xCFC, AccessSize::Dword, 0xC001);
        pc.io_write(0xCF8, AccessSize::Dword, 0x8000_0904);
        pc.io_write(0xCFC, AccessSize::Word, 0x0005);
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        mem.load(ferrite_core::PhysAddr(0x8000), &[0x00, 0x00, 0x03, 0x00, 0x00, 0x02, 0x00, 0x80]);
        for (p, v) in [(0x1F6u16, 0xE0u32), (0x1F2, 1), (0x1F3, 3), (0x1F4, 0), (0x1F5, 0), (0x1F7, 0xC8)] {
            pc.io_write(p, AccessSize::Byte, v);
        }
        pc.io_write(0xC004, AccessSize::Dword, 0x8000);
        pc.io_write(0xC000, AccessSize::Byte, 0x09);
        assert!(pc.needs_service());
        pc.service_dma(&mut mem);
        assert_eq!(mem.peek(ferrite_core::PhysAddr(0x30000)), 0x5A);
        assert_eq!(pc.io_read(0xC002, AccessSize::Byte) & 0x05, 0x04, "stopped, interrupt latched");
    }

    #[test]
    fn dma_and_post_code_ports_are_claimed() {
        let mut pc = pc();
        pc.io_write(0x80, AccessSize::Byte, 0x42);
        assert_eq!(pc.io_read(0x80, AccessSize::Byte), 0x42);
        assert_eq!(pc.dma.post_code(), 0x42);
        pc.io_write(0x81, AccessSize::Byte, 0x12); // channel 2 page
        assert_eq!(pc.dma.page(2), Some(0x12));
    }

    #[test]
    fn speaker_port_reflects_the_gate_and_channel_2() {
        let mut pc = pc();
        pc.io_write(0x61, AccessSize::Byte, 0x03);
        assert_eq!(pc.io_read(0x61, AccessSize::Byte) & 0x03, 0x03);
    }

    #[test]
    fn the_firmware_trap_port_is_claimed_only_with_firmware_and_ends_the_run() {
        struct Count(u32);
        impl Firmware for Count {
            fn trap(&mut self, cpu: &mut Cpu, _mem: &mut GuestMemory, _pc: &mut Pc) {
                self.0 += 1;
                // Skip the HLT behind the OUT: the trap saw CS:EIP behind it.
                cpu.state.eip += 1;
            }
        }
        let mut pc = pc();
        pc.io_write(FIRMWARE_TRAP_PORT, AccessSize::Byte, 0);
        assert!(!pc.take_firmware_trap(), "no firmware: an unclaimed port");
        // out 0xEE, al; hlt; out 0xF4, al; hlt
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        mem.load(ferrite_core::PhysAddr(0x7C00), &[0xE6, 0xEE, 0xF4, 0xE6, 0xF4, 0xF4]);
        let cfg = PcConfig { debug_exit: true, ..PcConfig::default() };
        let mut m = Machine::new(mem, &cfg);
        m.firmware = Some(Box::new(Count(0)));
        m.cpu.state.load_seg_real(ferrite_core::cpu::state::SegReg::Cs, 0);
        m.cpu.state.eip = 0x7C00;
        assert_eq!(m.run(1000), RunExit::Exit(0));
    }

    #[test]
    fn firmware_console_text_reaches_debugcon_in_order_and_the_serial_sink() {
        let mut pc = pc();
        pc.io_write(0xE9, AccessSize::Byte, b'a' as u32);
        pc.firmware_console(b"bc");
        pc.io_write(0xE9, AccessSize::Byte, b'd' as u32);
        assert_eq!(pc.take_debugcon(), b"abcd");
        assert_eq!(pc.take_firmware_serial(), b"bc");
        assert!(pc.take_firmware_serial().is_empty());
    }

    #[test]
    fn debug_console_collects_bytes_and_exit_needs_enabling() {
        let mut pc = pc();
        pc.io_write(0xE9, AccessSize::Byte, b'x' as u32);
        assert_eq!(pc.take_debugcon(), b"x");
        pc.io_write(0xF4, AccessSize::Byte, 3);
        assert_eq!(pc.exit_value(), None);
        let mut pc = Pc::new(&PcConfig { debug_exit: true, ..PcConfig::default() });
        pc.io_write(0xF4, AccessSize::Byte, 3);
        assert_eq!(pc.exit_value(), Some(3));
    }
}
