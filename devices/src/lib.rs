//! ferrite-devices: one module per PC device (PIC, PIT, CMOS/RTC, PS/2, DMA,
//! UART, VGA, IDE/ATAPI, floppy, NE2000, SB16, PCI/PIIX) with unit tests, the
//! host-backend traits they use, and the `pc` board that wires them into a port
//! and memory map.
//!
//! Conventions every device follows:
//! - A device is a plain struct. The board calls it through [`PortIo`] for
//!   port accesses and [`Timed`] for time; each call carries a [`DevCtx`] with
//!   the current virtual time and the interrupt lines, so devices hold no
//!   references to each other (no `Rc<RefCell>` graphs).
//! - Time is virtual ([`Nanos`]). A device catches up lazily to `cx.now` when
//!   it is accessed or polled, and tells the board when it next needs a poll
//!   ([`Timed::next_event`]); the board polls it at or after that time.
//! - Interrupt outputs are levels on [`IrqLines`]; the PIC samples them
//!   (edge-triggered inputs latch a rising edge).
//! - Registers and behaviour follow the datasheet; comments cite the section.
//! - State that a snapshot must carry is a `serde`-serializable struct.
//! - Nothing a guest does may panic: unknown registers read as all-ones or the
//!   datasheet's value, bad writes are ignored (and logged once).

pub mod block;
pub mod busmaster;
pub mod debug;
pub mod dma;
pub mod fdc;
pub mod ide;
pub mod pc;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod ps2;
pub mod rtc;
pub mod uart;
pub mod vga;

pub use ferrite_core::{AccessSize, Nanos};

/// The 16 ISA interrupt request lines (plus room for PCI INTx routing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IrqLines {
    /// Current level of each line, bit n = IRQ n.
    levels: u32,
}

impl IrqLines {
    /// Drive line `irq` high or low.
    pub fn set(&mut self, irq: u8, high: bool) {
        if high {
            self.levels |= 1 << irq;
        } else {
            self.levels &= !(1 << irq);
        }
    }

    pub fn raise(&mut self, irq: u8) {
        self.set(irq, true);
    }

    pub fn lower(&mut self, irq: u8) {
        self.set(irq, false);
    }

    /// Level of line `irq`.
    pub fn level(&self, irq: u8) -> bool {
        self.levels & (1 << irq) != 0
    }

    /// All levels, bit n = IRQ n.
    pub fn levels(&self) -> u32 {
        self.levels
    }
}

/// What every device call receives from the board.
pub struct DevCtx<'a> {
    /// Current virtual time.
    pub now: Nanos,
    /// The interrupt lines devices drive.
    pub irq: &'a mut IrqLines,
}

/// A device reached through I/O ports. The board only routes ports the
/// device claimed; `port` is the full port number.
pub trait PortIo {
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32;
    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, cx: &mut DevCtx);
}

/// A device with behaviour in time (timers, transmitters, periodic
/// interrupts).
pub trait Timed {
    /// Advance internal state to `cx.now`, driving interrupt lines.
    fn poll(&mut self, cx: &mut DevCtx);
    /// When the device next needs [`Timed::poll`] (None: not until it is
    /// accessed again).
    fn next_event(&self) -> Option<Nanos>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irq_lines_hold_levels() {
        let mut l = IrqLines::default();
        l.raise(0);
        l.raise(14);
        l.lower(0);
        assert!(!l.level(0));
        assert!(l.level(14));
        assert_eq!(l.levels(), 1 << 14);
    }
}
