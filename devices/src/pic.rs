//! The two cascaded Intel 8259A programmable interrupt controllers of the
//! PC/AT (master at 0x20/0x21, slave at 0xA0/0xA1, slave INT wired to master
//! IR2) and the PIIX3 edge/level control registers (ELCR) at 0x4D0/0x4D1.
//!
//! References: Intel 8259A datasheet (order 231468), sections "Interrupt
//! Sequence", "Programming the 8259A" (ICW1-ICW4, OCW1-OCW3), "The Special
//! Fully Nested Mode", "Special Mask Mode", "Poll Command", "Edge and Level
//! Triggered Modes", "Reading the 8259A Status", "The Cascade Buffer/
//! Comparator"; Intel 82371FB/SB (PIIX/PIIX3) datasheet, section "ELCR1/ELCR2
//! - Edge/Level Control Registers".
//!
//! How the board uses it: devices drive [`IrqLines`]; the board calls
//! [`Pic::update`] after lines change (port accesses also sample the lines in
//! `cx.irq`), checks [`Pic::interrupt_pending`] (the master's INT pin) and
//! runs the INTA cycle with [`Pic::acknowledge`], which returns the vector.
//!
//! Not modelled: MCS-80/85 mode (µPM = 0) still delivers 8086-style vectors
//! (a PC CPU cannot use the CALL sequence); buffered mode and the SP/EN pin
//! (which chip is master is fixed by the board); the ADI/interval bits of ICW1.

use serde::{Deserialize, Serialize};

use crate::{AccessSize, DevCtx, IrqLines, PortIo};

/// Master command port (ICW1, OCW2, OCW3; reads IRR/ISR/poll word).
pub const MASTER_CMD: u16 = 0x20;
/// Master data port (ICW2-ICW4, OCW1 = IMR).
pub const MASTER_DATA: u16 = 0x21;
/// Slave command port.
pub const SLAVE_CMD: u16 = 0xA0;
/// Slave data port.
pub const SLAVE_DATA: u16 = 0xA1;
/// ELCR for IRQ0-7 (PIIX3).
pub const ELCR1: u16 = 0x4D0;
/// ELCR for IRQ8-15 (PIIX3).
pub const ELCR2: u16 = 0x4D1;
/// Master input the slave's INT output is wired to.
pub const CASCADE_IR: u8 = 2;
/// ELCR bits that are reserved and read as 0 (IRQ0, 1, 2, 8, 13 are always
/// edge-triggered: PIIX3 datasheet, ELCR1 bits 2:0 and ELCR2 bits 5 and 0).
pub const ELCR_FIXED_EDGE: u16 = 0b0010_0001_0000_0111;

/// Where a chip is in its initialization sequence (datasheet figure
/// "Initialization Sequence": ICW1, ICW2, then ICW3 if SNGL = 0, then ICW4 if
/// IC4 = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitStep {
    /// Initialized: data-port writes are OCW1.
    Ready,
    /// The next data-port write is ICW2.
    Icw2,
    /// The next data-port write is ICW3.
    Icw3,
    /// The next data-port write is ICW4.
    Icw4,
}

/// The registers of one 8259A.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChipState {
    /// Interrupt request register.
    pub irr: u8,
    /// In-service register.
    pub isr: u8,
    /// Interrupt mask register (OCW1).
    pub imr: u8,
    /// Input levels at the last sample (edge detection).
    pub inputs: u8,
    /// ICW2 as written; the vector is `(icw2 & 0xF8) | level` in 8086 mode.
    pub icw2: u8,
    /// ICW3: on the master, a bit per input with a slave; on the slave, its
    /// cascade identity in bits 2:0.
    pub icw3: u8,
    /// Level with the lowest priority (rotation state); 7 after ICW1.
    pub lowest: u8,
    pub init: InitStep,
    /// ICW1 SNGL: no slaves, no ICW3.
    pub single: bool,
    /// ICW1 IC4: ICW4 follows.
    pub icw4_needed: bool,
    /// ICW1 LTIM: every input of this chip is level-triggered.
    pub ltim: bool,
    /// ICW4 µPM (8086 mode).
    pub x86_mode: bool,
    /// ICW4 AEOI.
    pub auto_eoi: bool,
    /// ICW4 SFNM (special fully nested mode).
    pub special_fully_nested: bool,
    /// ICW4 BUF and M/S, kept only so the guest's value is preserved.
    pub buffered: u8,
    /// OCW2 "rotate in automatic EOI mode" flag.
    pub rotate_on_aeoi: bool,
    /// OCW3 special mask mode.
    pub special_mask: bool,
    /// OCW3 read-register select: ISR (true) or IRR (false).
    pub read_isr: bool,
    /// OCW3 poll command issued: the next read is the poll word.
    pub poll: bool,
}

impl ChipState {
    /// Power-on state: the datasheet leaves it undefined until ICW1, so all
    /// inputs are masked until the BIOS initializes the chip.
    fn power_on() -> ChipState {
        ChipState {
            irr: 0,
            isr: 0,
            imr: 0xFF,
            inputs: 0,
            icw2: 0,
            icw3: 0,
            lowest: 7,
            init: InitStep::Ready,
            single: false,
            icw4_needed: true,
            ltim: false,
            x86_mode: true,
            auto_eoi: false,
            special_fully_nested: false,
            buffered: 0,
            rotate_on_aeoi: false,
            special_mask: false,
            read_isr: false,
            poll: false,
        }
    }

    /// Levels 0-7 from highest to lowest priority.
    fn priority_order(&self) -> impl Iterator<Item = u8> {
        let first = (self.lowest + 1) & 7;
        (0..8).map(move |i| (first + i) & 7)
    }

    /// Inputs that are level-triggered: all with LTIM, else the ELCR bits.
    fn level_mask(&self, elcr: u8) -> u8 {
        if self.ltim {
            0xFF
        } else {
            elcr
        }
    }

    /// Sample the input pins. Edge-triggered inputs latch a low-to-high
    /// transition into IRR ("Edge Triggered Mode": the level that stays high
    /// does not request again); level-triggered IRR bits follow the pin.
    fn sample(&mut self, levels: u8, elcr: u8) {
        let level = self.level_mask(elcr);
        let rising = levels & !self.inputs & !level;
        self.irr = ((self.irr | rising) & !level) | (levels & level);
        self.inputs = levels;
    }

    /// In-service bits that hold off requests: in special mask mode an IS bit
    /// whose level is masked no longer inhibits other levels ("Special Mask
    /// Mode").
    fn blocking_isr(&self) -> u8 {
        if self.special_mask {
            self.isr & !self.imr
        } else {
            self.isr
        }
    }

    /// The priority resolver: the highest-priority unmasked request that is
    /// above every in-service level (fully nested mode). On a master in
    /// special fully nested mode a request from a slave input is also let
    /// through while that input is in service, so the slave can nest a
    /// higher-priority request ("Special Fully Nested Mode").
    fn resolve(&self, is_master: bool) -> Option<u8> {
        if self.init != InitStep::Ready {
            return None;
        }
        let requests = self.irr & !self.imr;
        if requests == 0 {
            // Nothing unmasked is requesting (the common case, checked
            // before every instruction).
            return None;
        }
        let blocking = self.blocking_isr();
        for level in self.priority_order() {
            let bit = 1u8 << level;
            if blocking & bit != 0 {
                let nested_slave = is_master && self.special_fully_nested && !self.single && self.icw3 & bit != 0;
                if nested_slave && requests & bit != 0 {
                    return Some(level);
                }
                return None;
            }
            if requests & bit != 0 {
                return Some(level);
            }
        }
        None
    }

    /// Vector for `level` (8086 mode: T7-T3 from ICW2, level in bits 2:0).
    fn vector(&self, level: u8) -> u8 {
        (self.icw2 & 0xF8) | (level & 7)
    }

    /// The INTA cycle for `level`: set its IS bit and clear an edge request;
    /// a level request stays while the pin is high. In AEOI mode the IS bit
    /// is reset again at the end of the second INTA pulse, with rotation if
    /// "rotate in automatic EOI mode" is set.
    fn acknowledge_level(&mut self, level: u8, elcr: u8) {
        let bit = 1u8 << level;
        self.isr |= bit;
        self.irr &= !(bit & !self.level_mask(elcr));
        if self.auto_eoi {
            self.isr &= !bit;
            if self.rotate_on_aeoi {
                self.lowest = level;
            }
        }
    }

    /// The IS bit a non-specific EOI resets: the highest-priority one. In
    /// special mask mode an IS bit masked by the IMR is not reset by a
    /// non-specific EOI (datasheet, "End of Interrupt").
    fn eoi_target(&self) -> Option<u8> {
        let candidates = if self.special_mask { self.isr & !self.imr } else { self.isr };
        self.priority_order().find(|&l| candidates & (1 << l) != 0)
    }

    /// ICW1: restarts initialization. Datasheet, "Initialization Command
    /// Words": the edge sense circuit is reset (a pin already high must go
    /// low and high again to request), the IMR is cleared, IR7 gets the
    /// lowest priority, special mask mode is cleared and the read register
    /// becomes IRR; without IC4 all ICW4 functions are zero. Pending requests
    /// and in-service bits are dropped too, as a restarted chip has none.
    fn write_icw1(&mut self, value: u8) {
        self.init = InitStep::Icw2;
        self.single = value & 0x02 != 0;
        self.icw4_needed = value & 0x01 != 0;
        self.ltim = value & 0x08 != 0;
        self.irr = 0;
        self.isr = 0;
        self.imr = 0;
        self.lowest = 7;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.rotate_on_aeoi = false;
        if !self.icw4_needed {
            self.x86_mode = false;
            self.auto_eoi = false;
            self.special_fully_nested = false;
            self.buffered = 0;
        }
    }

    /// OCW2 (R, SL, EOI in bits 7:5; level in bits 2:0).
    fn write_ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Non-specific EOI.
            0b001 => {
                if let Some(l) = self.eoi_target() {
                    self.isr &= !(1 << l);
                }
            }
            // Specific EOI.
            0b011 => self.isr &= !(1 << level),
            // Rotate on non-specific EOI: the level just ended becomes lowest.
            0b101 => {
                if let Some(l) = self.eoi_target() {
                    self.isr &= !(1 << l);
                    self.lowest = l;
                }
            }
            // Rotate in automatic EOI mode (set / clear).
            0b100 => self.rotate_on_aeoi = true,
            0b000 => self.rotate_on_aeoi = false,
            // Rotate on specific EOI.
            0b111 => {
                self.isr &= !(1 << level);
                self.lowest = level;
            }
            // Set priority: `level` becomes the lowest.
            0b110 => self.lowest = level,
            // 0b010: no operation.
            _ => {}
        }
    }

    /// OCW3 (ESMM/SMM in bits 6:5, P in bit 2, RR/RIS in bits 1:0).
    fn write_ocw3(&mut self, value: u8) {
        if value & 0x40 != 0 {
            self.special_mask = value & 0x20 != 0;
        }
        if value & 0x04 != 0 {
            self.poll = true;
        }
        if value & 0x02 != 0 {
            self.read_isr = value & 0x01 != 0;
        }
    }

    fn write_cmd(&mut self, value: u8) {
        if value & 0x10 != 0 {
            self.write_icw1(value);
        } else if value & 0x08 != 0 {
            self.write_ocw3(value);
        } else {
            self.write_ocw2(value);
        }
    }

    fn write_data(&mut self, value: u8) {
        match self.init {
            InitStep::Icw2 => {
                self.icw2 = value;
                self.init = if !self.single {
                    InitStep::Icw3
                } else if self.icw4_needed {
                    InitStep::Icw4
                } else {
                    InitStep::Ready
                };
            }
            InitStep::Icw3 => {
                self.icw3 = value;
                self.init = if self.icw4_needed { InitStep::Icw4 } else { InitStep::Ready };
            }
            InitStep::Icw4 => {
                self.x86_mode = value & 0x01 != 0;
                self.auto_eoi = value & 0x02 != 0;
                self.buffered = (value >> 2) & 3;
                self.special_fully_nested = value & 0x10 != 0;
                self.init = InitStep::Ready;
            }
            InitStep::Ready => self.imr = value,
        }
    }

    /// The poll word ("Poll Command"): the read acts as an interrupt
    /// acknowledge; bit 7 says whether a level was requesting, bits 2:0 which.
    fn read_poll(&mut self, is_master: bool, elcr: u8) -> u8 {
        self.poll = false;
        match self.resolve(is_master) {
            Some(level) => {
                self.acknowledge_level(level, elcr);
                0x80 | level
            }
            None => 0,
        }
    }

    /// Bring restored values into range so no later operation can misbehave.
    fn sanitize(&mut self) {
        self.lowest &= 7;
        self.buffered &= 3;
    }
}

/// Snapshot of the PIC pair and the ELCR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PicState {
    pub master: ChipState,
    pub slave: ChipState,
    /// ELCR, bit n = IRQ n level-triggered.
    pub elcr: u16,
    /// The master's INT pin has been high since the last INTA cycle, so an
    /// INTA that finds no request gets the IR7 default vector.
    pub int_seen: bool,
}

/// The 8259A master/slave pair with the PIIX3 ELCR.
#[derive(Clone, Debug)]
pub struct Pic {
    s: PicState,
}

impl Default for Pic {
    fn default() -> Self {
        Pic::new()
    }
}

impl Pic {
    /// Power-on state: both chips uninitialized with every input masked, all
    /// inputs edge-triggered (ELCR reset value 0).
    pub fn new() -> Pic {
        Pic { s: PicState { master: ChipState::power_on(), slave: ChipState::power_on(), elcr: 0, int_seen: false } }
    }

    /// Sample the 16 ISA lines (bit n = IRQ n). Line 2 is not an input: the
    /// master's IR2 is the slave's INT output.
    pub fn update(&mut self, lines: &IrqLines) {
        let levels = lines.levels();
        let slave_inputs = (levels >> 8) as u8;
        let master_inputs = levels as u8;
        self.settle(master_inputs, slave_inputs);
    }

    /// The master's INT output: an interrupt is waiting for an INTA cycle.
    pub fn interrupt_pending(&self) -> bool {
        self.s.master.resolve(true).is_some()
    }

    /// The INTA cycle: returns the vector the CPU reads. If the request that
    /// raised INT went away before the acknowledge, the 8259A answers with
    /// its IR7 vector and sets no IS bit ("Edge and Level Triggered Modes");
    /// for the slave the master still sets IS2 and the slave gives its IR7.
    /// `None` only when INT has not been raised since the last INTA.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let elcr_lo = self.s.elcr as u8;
        let elcr_hi = (self.s.elcr >> 8) as u8;
        let Some(level) = self.s.master.resolve(true) else {
            if !self.s.int_seen {
                return None;
            }
            self.s.int_seen = false;
            return Some(self.s.master.vector(7));
        };
        self.s.int_seen = false;
        let master = &mut self.s.master;
        let cascaded = !master.single && master.icw3 & (1 << level) != 0;
        master.acknowledge_level(level, elcr_lo);
        let vector = if cascaded {
            // The master puts `level` on CAS0-2; only a slave whose ICW3
            // identity matches drives the vector. The board has one slave.
            let slave = &mut self.s.slave;
            if slave.icw3 & 7 != level {
                0xFF
            } else {
                match slave.resolve(false) {
                    Some(sl) => {
                        slave.acknowledge_level(sl, elcr_hi);
                        slave.vector(sl)
                    }
                    None => slave.vector(7),
                }
            }
        } else {
            master.vector(level)
        };
        self.refresh();
        Some(vector)
    }

    /// The ELCR, bit n = IRQ n level-triggered.
    pub fn elcr(&self) -> u16 {
        self.s.elcr
    }

    pub fn save(&self) -> PicState {
        self.s.clone()
    }

    pub fn restore(state: PicState) -> Pic {
        let mut s = state;
        s.master.sanitize();
        s.slave.sanitize();
        s.elcr &= !ELCR_FIXED_EDGE;
        let mut pic = Pic { s };
        pic.refresh();
        pic
    }

    /// Propagate the slave's INT to master IR2 and recompute level requests
    /// with the pins last sampled.
    fn refresh(&mut self) {
        let master_inputs = self.s.master.inputs;
        let slave_inputs = self.s.slave.inputs;
        self.settle(master_inputs, slave_inputs);
    }

    fn settle(&mut self, master_inputs: u8, slave_inputs: u8) {
        let elcr_lo = self.s.elcr as u8;
        let elcr_hi = (self.s.elcr >> 8) as u8;
        self.s.slave.sample(slave_inputs, elcr_hi);
        let slave_int = self.s.slave.resolve(false).is_some();
        let cascade_bit = 1u8 << CASCADE_IR;
        let master_inputs = (master_inputs & !cascade_bit) | if slave_int { cascade_bit } else { 0 };
        self.s.master.sample(master_inputs, elcr_lo);
        if self.interrupt_pending() {
            self.s.int_seen = true;
        }
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        let elcr = self.s.elcr;
        let value = match port {
            MASTER_CMD | MASTER_DATA | SLAVE_CMD | SLAVE_DATA => {
                let is_master = port < SLAVE_CMD;
                let chip = if is_master { &mut self.s.master } else { &mut self.s.slave };
                let chip_elcr = if is_master { elcr as u8 } else { (elcr >> 8) as u8 };
                if chip.poll {
                    // The poll command makes the next RD pulse to the chip
                    // (either address) an interrupt acknowledge.
                    chip.read_poll(is_master, chip_elcr)
                } else if port & 1 == 1 {
                    chip.imr
                } else if chip.read_isr {
                    chip.isr
                } else {
                    chip.irr
                }
            }
            ELCR1 => elcr as u8,
            ELCR2 => (elcr >> 8) as u8,
            _ => 0xFF,
        };
        self.refresh();
        value
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        match port {
            MASTER_CMD => self.s.master.write_cmd(value),
            MASTER_DATA => self.s.master.write_data(value),
            SLAVE_CMD => self.s.slave.write_cmd(value),
            SLAVE_DATA => self.s.slave.write_data(value),
            ELCR1 => self.s.elcr = (self.s.elcr & 0xFF00) | value as u16,
            ELCR2 => self.s.elcr = (self.s.elcr & 0x00FF) | ((value as u16) << 8),
            _ => return,
        }
        self.s.elcr &= !ELCR_FIXED_EDGE;
        self.refresh();
    }
}

impl PortIo for Pic {
    /// Wider accesses are split into byte cycles on consecutive ports, as the
    /// ISA bus does for an 8-bit device.
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        self.update(cx.irq);
        (0..size.bytes()).fold(0u32, |acc, i| acc | (self.read_byte(port.wrapping_add(i as u16)) as u32) << (8 * i))
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, cx: &mut DevCtx) {
        self.update(cx.irq);
        for i in 0..size.bytes() {
            self.write_byte(port.wrapping_add(i as u16), (value >> (8 * i)) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_core::Nanos;

    /// A PIC with its lines, driven like the board drives it.
    struct Bench {
        pic: Pic,
        lines: IrqLines,
    }

    impl Bench {
        fn new() -> Bench {
            Bench { pic: Pic::new(), lines: IrqLines::default() }
        }

        /// The PC BIOS initialization: vectors 0x08 and 0x70, slave on IR2,
        /// 8086 mode, all inputs unmasked.
        fn bios() -> Bench {
            let mut b = Bench::new();
            b.init(0x11, 0x01, 0x00);
            b
        }

        fn init(&mut self, icw1: u8, icw4: u8, imr: u8) {
            self.out(MASTER_CMD, icw1);
            self.out(MASTER_DATA, 0x08);
            self.out(MASTER_DATA, 1 << CASCADE_IR);
            self.out(MASTER_DATA, icw4);
            self.out(SLAVE_CMD, icw1);
            self.out(SLAVE_DATA, 0x70);
            self.out(SLAVE_DATA, CASCADE_IR);
            self.out(SLAVE_DATA, icw4);
            self.out(MASTER_DATA, imr);
            self.out(SLAVE_DATA, imr);
        }

        fn out(&mut self, port: u16, value: u8) {
            let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut self.lines };
            self.pic.io_write(port, AccessSize::Byte, value as u32, &mut cx);
        }

        fn inp(&mut self, port: u16) -> u8 {
            let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut self.lines };
            self.pic.io_read(port, AccessSize::Byte, &mut cx) as u8
        }

        fn set(&mut self, irq: u8, high: bool) {
            self.lines.set(irq, high);
            self.pic.update(&self.lines);
        }

        /// Raise and lower a line (an edge-triggered request).
        fn pulse(&mut self, irq: u8) {
            self.set(irq, true);
            self.set(irq, false);
        }

        fn ack(&mut self) -> Option<u8> {
            self.pic.acknowledge()
        }

        fn isr(&mut self, cmd: u16) -> u8 {
            self.out(cmd, 0x0B);
            self.inp(cmd)
        }

        fn irr(&mut self, cmd: u16) -> u8 {
            self.out(cmd, 0x0A);
            self.inp(cmd)
        }

        fn eoi(&mut self, cmd: u16) {
            self.out(cmd, 0x20);
        }
    }

    #[test]
    fn bios_init_delivers_vectors_from_icw2() {
        let mut b = Bench::bios();
        b.pulse(0);
        assert!(b.pic.interrupt_pending());
        assert_eq!(b.ack(), Some(0x08));
        assert!(!b.pic.interrupt_pending());
        b.eoi(MASTER_CMD);
        b.pulse(14);
        assert_eq!(b.ack(), Some(0x76));
        assert_eq!(b.ack(), None, "nothing more to acknowledge");
    }

    #[test]
    fn power_on_state_masks_everything() {
        let mut b = Bench::new();
        b.pulse(1);
        assert!(!b.pic.interrupt_pending());
        assert_eq!(b.inp(MASTER_DATA), 0xFF);
        assert_eq!(b.ack(), None);
    }

    #[test]
    fn masked_requests_stay_in_irr_until_unmasked() {
        let mut b = Bench::bios();
        b.out(MASTER_DATA, 0x02);
        assert_eq!(b.inp(MASTER_DATA), 0x02);
        b.pulse(1);
        assert!(!b.pic.interrupt_pending());
        assert_eq!(b.irr(MASTER_CMD), 0x02);
        b.out(MASTER_DATA, 0x00);
        assert_eq!(b.ack(), Some(0x09));
    }

    #[test]
    fn lower_number_wins_and_in_service_blocks_lower_priority() {
        let mut b = Bench::bios();
        b.pulse(5);
        b.pulse(3);
        b.pulse(1);
        assert_eq!(b.ack(), Some(0x09));
        // IR3 and IR5 wait behind IS1 (fully nested mode).
        assert!(!b.pic.interrupt_pending());
        // A higher-priority request nests.
        b.pulse(0);
        assert_eq!(b.ack(), Some(0x08));
        assert_eq!(b.isr(MASTER_CMD), 0x03);
        b.eoi(MASTER_CMD); // ends IR0, the highest in service
        assert_eq!(b.isr(MASTER_CMD), 0x02);
        assert!(!b.pic.interrupt_pending());
        b.eoi(MASTER_CMD);
        assert_eq!(b.ack(), Some(0x0B));
        b.eoi(MASTER_CMD);
        assert_eq!(b.ack(), Some(0x0D));
    }

    #[test]
    fn specific_eoi_resets_only_the_named_level() {
        let mut b = Bench::bios();
        b.pulse(4);
        assert_eq!(b.ack(), Some(0x0C));
        b.pulse(2 + 8); // IRQ10 through the cascade
        b.pulse(1);
        assert_eq!(b.ack(), Some(0x09));
        assert_eq!(b.isr(MASTER_CMD), 0x12);
        b.out(MASTER_CMD, 0x60 | 4); // specific EOI, level 4
        assert_eq!(b.isr(MASTER_CMD), 0x02);
    }

    #[test]
    fn auto_eoi_leaves_no_in_service_bit() {
        let mut b = Bench::new();
        b.init(0x11, 0x03, 0x00);
        b.pulse(3);
        assert_eq!(b.ack(), Some(0x0B));
        assert_eq!(b.isr(MASTER_CMD), 0);
        b.pulse(6);
        assert_eq!(b.ack(), Some(0x0E), "no IS bit holds lower levels off");
    }

    #[test]
    fn rotate_in_auto_eoi_mode_makes_the_served_level_lowest() {
        let mut b = Bench::new();
        b.init(0x11, 0x03, 0x00);
        b.out(MASTER_CMD, 0x80); // rotate in AEOI mode: set
        b.pulse(1);
        assert_eq!(b.ack(), Some(0x09));
        // IR1 is now lowest, so IR2..IR7 and IR0 beat it.
        b.pulse(1);
        b.pulse(6);
        assert_eq!(b.ack(), Some(0x0E));
        b.out(MASTER_CMD, 0x00); // rotate in AEOI mode: clear
        b.pulse(3);
        // Priority after serving IR6: 7,0,1,...,6 -> IR1 before IR3.
        assert_eq!(b.ack(), Some(0x09));
        assert_eq!(b.ack(), Some(0x0B));
    }

    #[test]
    fn rotate_on_nonspecific_eoi_and_set_priority() {
        let mut b = Bench::bios();
        b.pulse(0);
        b.pulse(5);
        assert_eq!(b.ack(), Some(0x08));
        b.out(MASTER_CMD, 0xA0); // rotate on non-specific EOI: IR0 lowest
        assert_eq!(b.isr(MASTER_CMD), 0);
        b.pulse(0);
        assert_eq!(b.ack(), Some(0x0D), "IR5 now outranks IR0");
        b.out(MASTER_CMD, 0x60 | 5);
        // Set priority: IR4 lowest, so IR5 is highest.
        b.out(MASTER_CMD, 0xC0 | 4);
        b.pulse(5);
        assert_eq!(b.ack(), Some(0x0D));
        b.out(MASTER_CMD, 0xE0 | 5); // rotate on specific EOI 5: IR5 lowest
        assert_eq!(b.isr(MASTER_CMD), 0);
        assert_eq!(b.ack(), Some(0x08), "IR0 still pending");
        b.out(MASTER_CMD, 0x40); // no operation
        assert_eq!(b.isr(MASTER_CMD), 0x01);
    }

    #[test]
    fn special_mask_mode_lets_lower_levels_in() {
        let mut b = Bench::bios();
        b.pulse(1);
        assert_eq!(b.ack(), Some(0x09));
        b.pulse(4);
        assert!(!b.pic.interrupt_pending(), "IS1 blocks IR4");
        b.out(MASTER_CMD, 0x68); // set special mask mode
        b.out(MASTER_DATA, 0x02); // mask the level in service
        assert!(b.pic.interrupt_pending());
        assert_eq!(b.ack(), Some(0x0C));
        // A non-specific EOI skips the masked IS1 and ends IS4.
        b.eoi(MASTER_CMD);
        assert_eq!(b.isr(MASTER_CMD), 0x02);
        b.out(MASTER_CMD, 0x48); // reset special mask mode
        b.out(MASTER_DATA, 0x00);
        b.pulse(6);
        assert!(!b.pic.interrupt_pending(), "IS1 blocks again");
        b.eoi(MASTER_CMD);
        assert_eq!(b.ack(), Some(0x0E));
    }

    #[test]
    fn poll_command_acknowledges_through_a_read() {
        let mut b = Bench::bios();
        b.out(MASTER_DATA, 0xFF);
        b.pulse(5);
        b.out(MASTER_CMD, 0x0C); // poll
        assert_eq!(b.inp(MASTER_CMD), 0, "masked: nothing requesting");
        b.out(MASTER_DATA, 0x00);
        b.out(MASTER_CMD, 0x0C);
        assert_eq!(b.inp(MASTER_CMD), 0x85);
        assert_eq!(b.isr(MASTER_CMD), 0x20);
        assert_eq!(b.irr(MASTER_CMD), 0);
        // Only one read is a poll; the read register returns after it.
        b.pulse(3);
        b.out(MASTER_CMD, 0x0C);
        assert_eq!(b.inp(MASTER_CMD), 0x83);
        assert_eq!(b.inp(MASTER_CMD), 0x00, "IRR read again");
    }

    #[test]
    fn ocw3_selects_irr_or_isr_and_keeps_it() {
        let mut b = Bench::bios();
        b.pulse(3);
        b.pulse(6);
        assert_eq!(b.ack(), Some(0x0B));
        b.out(MASTER_CMD, 0x0B);
        assert_eq!(b.inp(MASTER_CMD), 0x08);
        assert_eq!(b.inp(MASTER_CMD), 0x08, "selection persists");
        b.out(MASTER_CMD, 0x09); // RR = 0: RIS ignored
        assert_eq!(b.inp(MASTER_CMD), 0x08);
        b.out(MASTER_CMD, 0x0A);
        assert_eq!(b.inp(MASTER_CMD), 0x40);
    }

    #[test]
    fn cascade_returns_slave_vector_and_sets_both_in_service_bits() {
        let mut b = Bench::bios();
        b.pulse(10);
        assert!(b.pic.interrupt_pending());
        assert_eq!(b.ack(), Some(0x72));
        assert_eq!(b.isr(MASTER_CMD), 0x04);
        assert_eq!(b.isr(SLAVE_CMD), 0x04);
        // A higher slave level waits: master IS2 blocks IR2 in plain nesting.
        b.pulse(8);
        assert!(!b.pic.interrupt_pending());
        b.eoi(SLAVE_CMD);
        b.eoi(MASTER_CMD);
        assert_eq!(b.ack(), Some(0x70));
        // Master IR0/IR1 still outrank the whole slave.
        b.pulse(15);
        b.eoi(SLAVE_CMD);
        b.eoi(MASTER_CMD);
        b.pulse(1);
        assert_eq!(b.ack(), Some(0x09));
    }

    #[test]
    fn special_fully_nested_mode_lets_the_slave_nest() {
        let mut b = Bench::bios();
        b.out(MASTER_CMD, 0x11);
        b.out(MASTER_DATA, 0x08);
        b.out(MASTER_DATA, 0x04);
        b.out(MASTER_DATA, 0x11); // 8086 mode, SFNM
        b.out(MASTER_DATA, 0x00);
        b.pulse(12);
        assert_eq!(b.ack(), Some(0x74));
        b.pulse(9);
        assert!(b.pic.interrupt_pending(), "SFNM: IS2 does not block the slave");
        assert_eq!(b.ack(), Some(0x71));
        b.pulse(13);
        assert!(!b.pic.interrupt_pending(), "the slave's own nesting still applies");
    }

    #[test]
    fn edge_input_held_high_does_not_retrigger() {
        let mut b = Bench::bios();
        b.set(4, true);
        assert_eq!(b.ack(), Some(0x0C));
        b.eoi(MASTER_CMD);
        b.pic.update(&b.lines);
        assert!(!b.pic.interrupt_pending());
        b.set(4, false);
        b.set(4, true);
        assert_eq!(b.ack(), Some(0x0C));
    }

    #[test]
    fn level_input_requests_again_after_eoi_while_high() {
        let mut b = Bench::bios();
        b.out(ELCR2, 0x08); // IRQ11 level-triggered
        b.set(11, true);
        assert_eq!(b.ack(), Some(0x73));
        b.eoi(SLAVE_CMD);
        b.eoi(MASTER_CMD);
        assert_eq!(b.ack(), Some(0x73), "still high: requests again");
        b.set(11, false);
        b.eoi(SLAVE_CMD);
        b.eoi(MASTER_CMD);
        assert!(!b.pic.interrupt_pending());
        assert_eq!(b.irr(SLAVE_CMD), 0);
    }

    #[test]
    fn ltim_makes_every_input_of_the_chip_level_triggered() {
        let mut b = Bench::new();
        b.init(0x19, 0x01, 0x00);
        b.set(5, true);
        assert_eq!(b.ack(), Some(0x0D));
        b.eoi(MASTER_CMD);
        assert_eq!(b.ack(), Some(0x0D));
    }

    #[test]
    fn level_request_gone_before_inta_gives_spurious_irq7() {
        let mut b = Bench::bios();
        b.out(ELCR1, 0x20); // IRQ5 level
        b.set(5, true);
        assert!(b.pic.interrupt_pending());
        b.set(5, false);
        assert!(!b.pic.interrupt_pending());
        assert_eq!(b.ack(), Some(0x0F));
        assert_eq!(b.isr(MASTER_CMD), 0, "no IS bit for the default IR7");
        assert_eq!(b.ack(), None);
    }

    #[test]
    fn slave_request_gone_before_inta_gives_spurious_irq15() {
        let mut b = Bench::bios();
        b.out(ELCR2, 0x08); // IRQ11 level
        b.set(11, true);
        b.set(11, false);
        // Master IR2 latched the slave's INT edge; the slave has nothing.
        assert!(b.pic.interrupt_pending());
        assert_eq!(b.ack(), Some(0x77));
        assert_eq!(b.isr(MASTER_CMD), 0x04);
        assert_eq!(b.isr(SLAVE_CMD), 0x00);
    }

    #[test]
    fn icw1_resets_edge_sense_so_a_high_line_needs_a_new_edge() {
        let mut b = Bench::new();
        b.set(3, true);
        b.init(0x11, 0x01, 0x00);
        assert!(!b.pic.interrupt_pending());
        b.set(3, false);
        b.set(3, true);
        assert_eq!(b.ack(), Some(0x0B));
    }

    #[test]
    fn elcr_keeps_fixed_edge_bits_clear() {
        let mut b = Bench::bios();
        b.out(ELCR1, 0xFF);
        b.out(ELCR2, 0xFF);
        assert_eq!(b.inp(ELCR1), 0xF8);
        assert_eq!(b.inp(ELCR2), 0xDE);
        assert_eq!(b.pic.elcr(), 0xDEF8);
        let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut b.lines };
        assert_eq!(b.pic.io_read(ELCR1, AccessSize::Word, &mut cx), 0xDEF8);
        b.pic.io_write(ELCR1, AccessSize::Word, 0x0C20, &mut cx);
        assert_eq!(b.pic.elcr(), 0x0C20);
    }

    #[test]
    fn snapshot_round_trip_keeps_behaviour() {
        let mut b = Bench::bios();
        b.out(ELCR2, 0x08);
        b.pulse(1);
        b.pulse(12);
        assert_eq!(b.ack(), Some(0x09));
        b.out(MASTER_CMD, 0x0B);
        let state = b.pic.save();
        let mut other = Bench { pic: Pic::restore(state.clone()), lines: b.lines };
        assert_eq!(other.pic.save(), state);
        for bench in [&mut b, &mut other] {
            assert_eq!(bench.inp(MASTER_CMD), 0x02);
            bench.eoi(MASTER_CMD);
            assert_eq!(bench.ack(), Some(0x74));
        }
        assert_eq!(b.pic.save(), other.pic.save());
    }

    #[test]
    fn state_is_serde_serializable() {
        fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
        assert_serde::<PicState>();
    }

    #[test]
    fn garbage_on_every_port_never_panics() {
        let mut b = Bench::new();
        let mut x: u32 = 0x1234_5678;
        let ports = [MASTER_CMD, MASTER_DATA, SLAVE_CMD, SLAVE_DATA, ELCR1, ELCR2, 0x22];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let port = ports[(x % ports.len() as u32) as usize];
            match (x >> 8) % 4 {
                0 => {
                    b.inp(port);
                }
                1 => b.set((x >> 12) as u8 & 15, x & 0x10000 != 0),
                2 => {
                    b.ack();
                }
                _ => b.out(port, (x >> 16) as u8),
            }
        }
        let mut restored = Pic::restore(b.pic.save());
        restored.acknowledge();
    }
}
