//! ferrite's own BIOS. The ROM (`rom.rs`) is real x86 code, but almost
//! all of it is trap stubs: each service entry writes the firmware trap
//! port, the board stops the CPU right behind that OUT, and [`Bios::trap`]
//! runs the service here in Rust against the CPU state, guest memory and
//! a [`Platform`] (the board's ports, the drive media, a console sink).
//!
//! Services: POST (`post.rs`), INT 08h/1Ah time and 70h RTC (`clock.rs`),
//! INT 09h/16h keyboard (`keyboard.rs`), INT 10h video (`video.rs`), INT
//! 11h/12h/14h/15h/17h (`system.rs`), INT 13h disks and El Torito
//! (`disk.rs`), INT 18h/19h boot (`boot.rs`), INT 1Ah AH=B1h PCI BIOS
//! (`pci.rs`). Services that block (INT 16h AH=00h, INT 15h AH=86h) never
//! spin here: they move EIP to a `sti; hlt; cli; jmp stub` loop in the ROM
//! so virtual time runs and interrupts are served until they can finish.

mod boot;
mod clock;
mod ctx;
mod disk;
pub mod font;
mod keyboard;
mod pci;
mod platform;
mod post;
mod rom;
mod system;
#[cfg(test)]
mod tests;
mod vbe;
mod vgahw;
mod video;

use ferrite_core::cpu::state::SegReg;
use ferrite_core::{Cpu, GuestMemory};

use crate::BiosError;
use ctx::Ctx;
pub use platform::{BiosDisk, DiskIoError, DiskKind, Platform, SectorIo};
pub use rom::{RomError, Trap, ROM_BASE, ROM_SEGMENT, ROM_SIZE, TRAP_PORT};

/// Something INT 19h boots instead of a boot sector (the direct kernel
/// boot plugs in here): it loads what it needs into guest memory and sets
/// up the CPU to enter it. An error is shown and the BIOS goes on with the
/// boot devices.
pub type BootHook = Box<dyn FnMut(&mut Cpu, &mut GuestMemory) -> Result<(), String>>;

/// The own BIOS: its ROM image and the state its services keep on the
/// host side (everything the guest can see lives in the BIOS data areas).
pub struct Bios {
    rom: rom::Rom,
    drives: disk::Drives,
    waits: clock::Waits,
    /// Option ROMs POST has yet to call.
    option_roms: Vec<u32>,
    /// Index into the boot order of the next device INT 18h tries.
    boot_next: usize,
    boot_hook: Option<BootHook>,
    /// Traps from addresses that are no stub (logged once).
    stray_logged: bool,
}

impl std::fmt::Debug for Bios {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bios").field("drives", &self.drives).field("boot_next", &self.boot_next).finish_non_exhaustive()
    }
}

impl Bios {
    /// Assemble the ROM.
    pub fn new() -> Result<Bios, BiosError> {
        Ok(Bios {
            rom: rom::Rom::build()?,
            drives: disk::Drives::default(),
            waits: clock::Waits::default(),
            option_roms: Vec::new(),
            boot_next: 0,
            boot_hook: None,
            stray_logged: false,
        })
    }

    /// The 64 KiB ROM image.
    pub fn image(&self) -> &[u8] {
        &self.rom.image
    }

    /// Map the ROM as an external BIOS is mapped: below 4 GiB and at
    /// 0xF0000 (the CPU starts at F000:FFF0).
    pub fn map(&self, mem: &mut GuestMemory) -> Result<(), BiosError> {
        crate::map_external_bios(mem, &self.rom.image)
    }

    /// Boot this instead of the boot devices (see [`BootHook`]).
    pub fn set_boot_hook(&mut self, hook: BootHook) {
        self.boot_hook = Some(hook);
    }

    /// The guest wrote the trap port: run the service whose stub it was.
    pub fn trap(&mut self, cpu: &mut Cpu, mem: &mut GuestMemory, p: &mut dyn Platform) {
        let linear = cpu.state.seg(SegReg::Cs).base.wrapping_add(cpu.state.eip);
        let Some(t) = self.rom.trap_at(linear) else {
            if !self.stray_logged {
                self.stray_logged = true;
                tracing::warn!("own BIOS: trap port written from {linear:#x}, which is no BIOS stub (ignored)");
            }
            return;
        };
        let mut c = Ctx { cpu, mem, p };
        self.service(&mut c, t);
    }

    fn service(&mut self, c: &mut Ctx, t: Trap) {
        match t {
            Trap::Post => match post::post(c, &self.rom) {
                post::Post::Resumed => {}
                post::Post::Done { drives, option_roms } => {
                    self.drives = drives;
                    self.option_roms = option_roms;
                    self.waits = clock::Waits::default();
                    self.boot_next = 0;
                }
            },
            Trap::PostRoms => self.next_option_rom(c),
            Trap::Int10 => video::int10(c),
            Trap::Int11 => system::int11(c),
            Trap::Int12 => system::int12(c),
            Trap::Int13 => disk::int13(c, &mut self.drives),
            Trap::Int14 => {
                if system::int14(c, &mut self.waits) == system::Int14::Wait {
                    c.jump_near(self.rom.at.int14_wait);
                }
            }
            Trap::Int15 => {
                if system::int15(c, &mut self.waits) == system::Int15::Wait {
                    c.jump_near(self.rom.at.int15_wait);
                }
            }
            Trap::Int16 => {
                if keyboard::int16(c) == keyboard::Int16::Wait {
                    c.jump_near(self.rom.at.int16_wait);
                }
            }
            Trap::Int17 => system::int17(c),
            Trap::Int18 => self.boot(c, false),
            Trap::Int19 => self.boot(c, true),
            Trap::Int1A => match c.ah() {
                0xB1 => pci::int1a_pci(c),
                _ => clock::int1a_time(c),
            },
            Trap::Irq0 => clock::irq0(c),
            Trap::Irq1 => {
                let code = c.al();
                match keyboard::irq1(c, code) {
                    keyboard::KeyAction::None => {}
                    keyboard::KeyAction::Break => c.jump_near(self.rom.at.int09_break),
                    keyboard::KeyAction::Reboot => {
                        // Warm boot: skip the memory test, pulse the reset
                        // line through the keyboard controller.
                        c.set_bda16(0x72, 0x1234);
                        c.outb(0x64, 0xFE);
                    }
                }
            }
            Trap::Irq(8) => {
                if clock::irq8(c, &mut self.waits) {
                    c.jump_near(self.rom.at.irq8_alarm);
                }
            }
            Trap::Irq(irq) => other_irq(c, irq),
        }
    }

    /// Call the next option ROM's init entry (seg:0003) with a far return
    /// to the POST loop's trap, or let POST go on to INT 19h.
    fn next_option_rom(&mut self, c: &mut Ctx) {
        if self.option_roms.is_empty() {
            return;
        }
        let at = self.option_roms.remove(0);
        c.push16(ROM_SEGMENT);
        c.push16(self.rom.at.post_roms);
        c.set_sel(SegReg::Es, 0);
        c.set_di(0);
        let flags = c.cpu.state.eflags();
        c.cpu.state.set_eflags(flags | 0x200);
        c.jump((at >> 4) as u16, 3);
    }

    /// INT 19h (`first`) and INT 18h: try the boot devices in order from
    /// the start or from the one after the last tried.
    fn boot(&mut self, c: &mut Ctx, first: bool) {
        if first {
            self.boot_next = 0;
            if let Some(hook) = self.boot_hook.as_mut() {
                video::print(c, "Booting the kernel...\n");
                match hook(c.cpu, c.mem) {
                    Ok(()) => return,
                    Err(e) => video::print(c, &format!("Kernel boot failed: {e}\n")),
                }
            }
        }
        let order = boot::boot_order(c);
        while self.boot_next < order.len() {
            let dev = order[self.boot_next];
            self.boot_next += 1;
            match boot::load(c, &mut self.drives, dev) {
                Ok(e) => {
                    video::print(c, &format!("Booting from {}...\n", boot::device_name(dev)));
                    boot::enter(c, e);
                    return;
                }
                Err(boot::NoBoot::NoDrive) => {}
                Err(why) => video::print(c, &format!("{}: {}\n", boot::device_name(dev), why.message())),
            }
        }
        video::print(c, "No bootable device.\n");
        c.jump(ROM_SEGMENT, self.rom.at.halt);
    }
}

/// An IRQ without a BIOS service: EOI if it was really in service (a
/// spurious IRQ7/IRQ15 is not), and mask a line nobody handles, as the
/// IBM BIOS does (40:6B records it). IRQ 6, 13, 14 and 15 set their
/// data-area flags.
fn other_irq(c: &mut Ctx, irq: u8) {
    let (port, bit) = if irq < 8 { (0x20u16, 1u8 << irq) } else { (0xA0, 1 << (irq - 8)) };
    c.outb(port, 0x0B);
    let isr = c.inb(port);
    c.outb(port, 0x0A);
    let in_service = isr & bit != 0;
    match irq {
        6 => {
            let f = c.bda8(0x3E);
            c.set_bda8(0x3E, f | 0x80);
        }
        13 => c.outb(0xF0, 0),
        14 | 15 => c.set_bda8(0x8E, 0xFF),
        2 | 9 | 3 | 4 | 5 | 7 | 10 | 11 | 12 if in_service => {
            c.set_bda8(0x6B, bit);
            let mask_port = port + 1;
            let m = c.inb(mask_port);
            c.outb(mask_port, m | bit);
        }
        _ => {}
    }
    if irq >= 8 {
        if in_service {
            c.outb(0xA0, 0x20);
        }
        // The cascade input of the master is in service either way.
        c.outb(0x20, 0x20);
    } else if in_service {
        c.outb(0x20, 0x20);
    }
}
