//! National Semiconductor PC16550D-compatible UART (the "16550A"), one
//! instance per serial port. The board picks the base port and IRQ (COM1
//! 0x3F8/IRQ4, COM2 0x2F8/IRQ3, COM3 0x3E8/IRQ4, COM4 0x2E8/IRQ3).
//!
//! References: PC16550D datasheet (National Semiconductor, "Register
//! Description" tables 2-4, "FIFO Interrupt Mode Operation", "FIFO Polled Mode
//! Operation", section 8.6 "Modem Control Register" for loopback). The
//! reference clock is the PC's 1.8432 MHz crystal: baud = 115200 / divisor.
//!
//! Model:
//! - Time is virtual and lazy. The transmitter shift register (TSR) finishes
//!   its character at a known instant; the next FIFO byte starts then. Host
//!   input enters the receiver one character time after another. Every
//!   access catches up to `cx.now` first, and [`Timed::next_event`] names the
//!   next completion so the board can poll.
//! - The host side is two bounded byte queues: [`Uart::take_output`] drains
//!   what the guest transmitted, [`Uart::push_input`] queues bytes for the
//!   guest. The remote end behaves as if it obeyed flow control: it holds
//!   its next byte while the receiver FIFO (or, without FIFOs, the RBR) is
//!   full, so typed input is not lost to overruns; bytes beyond the host
//!   queue's bound are dropped and counted.
//! - The interrupt output reaches the ISA line through the OUT2 gate, as on
//!   every PC serial card: with OUT2 clear (or in loopback, where the
//!   datasheet forces OUT2 inactive) the UART leaves the line alone, so COM1
//!   and COM3 can share IRQ4.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::{AccessSize, DevCtx, Nanos, PortIo, Timed};

/// The PC's standard ports: (base, IRQ).
pub const COM1: (u16, u8) = (0x3F8, 4);
pub const COM2: (u16, u8) = (0x2F8, 3);
pub const COM3: (u16, u8) = (0x3E8, 4);
pub const COM4: (u16, u8) = (0x2E8, 3);
/// Number of ports a UART decodes from its base.
pub const UART_PORTS: u16 = 8;

/// Depth of the receiver and transmitter FIFOs.
pub const FIFO_DEPTH: usize = 16;
/// Bound of each host-side queue (bytes waiting for the guest, bytes the
/// guest sent and the frontend has not taken yet).
pub const HOST_QUEUE_LIMIT: usize = 64 * 1024;

/// 1.8432 MHz / 16: the baud rate at divisor 1.
const BASE_BAUD: u64 = 115_200;
const NS_PER_SEC: u64 = 1_000_000_000;

// Register offsets (table 2).
const REG_DATA: u16 = 0; // RBR / THR, DLL with DLAB
const REG_IER: u16 = 1; // IER, DLM with DLAB
const REG_IIR_FCR: u16 = 2;
const REG_LCR: u16 = 3;
const REG_MCR: u16 = 4;
const REG_LSR: u16 = 5;
const REG_MSR: u16 = 6;
const REG_SCR: u16 = 7;

/// IER bits.
pub const IER_ERBFI: u8 = 0x01;
pub const IER_ETBEI: u8 = 0x02;
pub const IER_ELSI: u8 = 0x04;
pub const IER_EDSSI: u8 = 0x08;

/// IIR values (table 4): bit 0 clear = interrupt pending, bits 3-1 source.
pub const IIR_NONE: u8 = 0x01;
pub const IIR_RLS: u8 = 0x06;
pub const IIR_RDA: u8 = 0x04;
pub const IIR_TIMEOUT: u8 = 0x0C;
pub const IIR_THRE: u8 = 0x02;
pub const IIR_MODEM: u8 = 0x00;
/// IIR bits 7-6: set when FCR0 enables the FIFOs.
pub const IIR_FIFO_ENABLED: u8 = 0xC0;

/// FCR bits.
pub const FCR_ENABLE: u8 = 0x01;
pub const FCR_RX_RESET: u8 = 0x02;
pub const FCR_TX_RESET: u8 = 0x04;
pub const FCR_DMA_MODE: u8 = 0x08;
pub const FCR_TRIGGER_MASK: u8 = 0xC0;

/// LCR bits.
pub const LCR_WORD_LENGTH_MASK: u8 = 0x03;
pub const LCR_STOP_BITS: u8 = 0x04;
pub const LCR_PARITY_ENABLE: u8 = 0x08;
pub const LCR_BREAK: u8 = 0x40;
pub const LCR_DLAB: u8 = 0x80;

/// MCR bits.
pub const MCR_DTR: u8 = 0x01;
pub const MCR_RTS: u8 = 0x02;
pub const MCR_OUT1: u8 = 0x04;
pub const MCR_OUT2: u8 = 0x08;
pub const MCR_LOOP: u8 = 0x10;

/// LSR bits.
pub const LSR_DR: u8 = 0x01;
pub const LSR_OE: u8 = 0x02;
pub const LSR_PE: u8 = 0x04;
pub const LSR_FE: u8 = 0x08;
pub const LSR_BI: u8 = 0x10;
pub const LSR_THRE: u8 = 0x20;
pub const LSR_TEMT: u8 = 0x40;
pub const LSR_RX_FIFO_ERROR: u8 = 0x80;
const LSR_ERRORS: u8 = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

/// MSR bits.
pub const MSR_DCTS: u8 = 0x01;
pub const MSR_DDSR: u8 = 0x02;
pub const MSR_TERI: u8 = 0x04;
pub const MSR_DDCD: u8 = 0x08;
pub const MSR_CTS: u8 = 0x10;
pub const MSR_DSR: u8 = 0x20;
pub const MSR_RI: u8 = 0x40;
pub const MSR_DCD: u8 = 0x80;

/// The modem input lines as the remote end drives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModemInputs {
    pub cts: bool,
    pub dsr: bool,
    pub ri: bool,
    pub dcd: bool,
}

impl Default for ModemInputs {
    /// A connected peer: CTS, DSR and DCD asserted, no ring.
    fn default() -> Self {
        ModemInputs { cts: true, dsr: true, ri: false, dcd: true }
    }
}

impl ModemInputs {
    fn msr_bits(self) -> u8 {
        (if self.cts { MSR_CTS } else { 0 })
            | (if self.dsr { MSR_DSR } else { 0 })
            | (if self.ri { MSR_RI } else { 0 })
            | (if self.dcd { MSR_DCD } else { 0 })
    }
}

/// Everything a snapshot must carry; also the UART's working state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UartState {
    pub ier: u8,
    pub lcr: u8,
    pub mcr: u8,
    pub scr: u8,
    pub divisor: u16,
    /// FCR0 (FIFO enable), FCR3 (DMA mode) and FCR7-6 (trigger); the reset
    /// bits are self-clearing.
    pub fcr: u8,
    /// Latched LSR error bits (OE, PE, FE, BI), cleared by reading LSR.
    pub lsr_errors: u8,
    /// MSR bits 3-0, cleared by reading MSR.
    pub msr_deltas: u8,
    /// Modem inputs from the remote end (used outside loopback).
    pub modem_inputs: ModemInputs,
    /// THRE interrupt latch: set when the THR/TX FIFO empties or ETBEI is
    /// enabled while it is empty; cleared by a THR write or by an IIR read
    /// that reports it.
    pub thre_pending: bool,
    /// Receiver FIFO (depth 1 = the RBR without FIFOs).
    pub rx_fifo: VecDeque<u8>,
    /// What RBR reads when the receiver is empty: the last byte read.
    pub rbr_last: u8,
    /// Transmitter FIFO (depth 1 = the THR without FIFOs).
    pub tx_fifo: VecDeque<u8>,
    /// The byte in the transmitter shift register, if it is busy.
    pub tsr: Option<u8>,
    /// When the TSR finishes its character, ns.
    pub tsr_done_at: u64,
    /// Last receiver activity (character received or RBR read), ns: the
    /// character-timeout timer's start.
    pub rx_last_activity: u64,
    /// When the receive line is free for the next host byte to start, ns.
    pub rx_line_free_at: u64,
    /// Virtual time the state has been advanced to, ns.
    pub now: u64,
    /// Host bytes waiting to be received.
    pub host_input: VecDeque<u8>,
    /// Transmitted bytes waiting for the frontend.
    pub host_output: VecDeque<u8>,
    /// Host input bytes dropped because the input queue was full.
    pub input_dropped: u64,
    /// Transmitted bytes dropped because the frontend did not take them.
    pub output_dropped: u64,
    /// Bytes the guest wrote into a full THR/TX FIFO (lost, as on hardware).
    pub tx_overflow: u64,
}

impl UartState {
    fn power_on() -> UartState {
        UartState {
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            // The datasheet leaves the divisor latch undefined after reset;
            // start at 9600 baud so an unprogrammed port still has a pace.
            divisor: 12,
            fcr: 0,
            lsr_errors: 0,
            msr_deltas: 0,
            modem_inputs: ModemInputs::default(),
            thre_pending: false,
            rx_fifo: VecDeque::with_capacity(FIFO_DEPTH),
            rbr_last: 0,
            tx_fifo: VecDeque::with_capacity(FIFO_DEPTH),
            tsr: None,
            tsr_done_at: 0,
            rx_last_activity: 0,
            rx_line_free_at: 0,
            now: 0,
            host_input: VecDeque::new(),
            host_output: VecDeque::new(),
            input_dropped: 0,
            output_dropped: 0,
            tx_overflow: 0,
        }
    }
}

/// One 16550A UART.
#[derive(Clone, Debug)]
pub struct Uart {
    base: u16,
    irq: u8,
    s: UartState,
    /// Whether this UART currently drives its IRQ line (OUT2 gate open), and
    /// the level it last drove.
    line_driven: bool,
    line_level: bool,
    /// Characters take this fraction of their line time (1 = the real
    /// baud rate). See [`Uart::set_speedup`].
    speedup: u64,
}

impl Uart {
    /// A UART decoding `base..base+8` and driving ISA line `irq`, in its
    /// master-reset state.
    pub fn new(base: u16, irq: u8) -> Uart {
        Uart { base, irq, s: UartState::power_on(), line_driven: false, line_level: false, speedup: 1 }
    }

    /// Run the line `factor` times faster than the programmed baud rate
    /// (1 = real speed). A console on the host has no line to wait for; a
    /// kernel printing to it with interrupts off would otherwise spend
    /// 87 us of virtual time per character at 115200 baud (and lose timer
    /// ticks doing so). Ordering, FIFO and interrupt behaviour stay those
    /// of a 16550A; only the character time shrinks.
    pub fn set_speedup(&mut self, factor: u64) {
        self.speedup = factor.max(1);
    }

    pub fn base(&self) -> u16 {
        self.base
    }

    pub fn irq(&self) -> u8 {
        self.irq
    }

    /// Master reset (the MR pin, driven by the PC's reset): registers to
    /// their datasheet reset values, FIFOs and shift registers emptied. The
    /// divisor and scratch register keep their contents; host queues too.
    pub fn reset(&mut self) {
        let keep = UartState {
            divisor: self.s.divisor,
            scr: self.s.scr,
            modem_inputs: self.s.modem_inputs,
            rbr_last: self.s.rbr_last,
            now: self.s.now,
            rx_line_free_at: self.s.now,
            host_input: std::mem::take(&mut self.s.host_input),
            host_output: std::mem::take(&mut self.s.host_output),
            input_dropped: self.s.input_dropped,
            output_dropped: self.s.output_dropped,
            tx_overflow: self.s.tx_overflow,
            ..UartState::power_on()
        };
        self.s = keep;
    }

    // ---- host side ---------------------------------------------------------

    /// Bytes the guest has transmitted (completely shifted out) so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.s.host_output.drain(..).collect()
    }

    /// Queue bytes for the guest; they enter the receiver at line speed.
    /// Bytes beyond [`HOST_QUEUE_LIMIT`] waiting are dropped and counted.
    /// The board should re-read [`Timed::next_event`] afterwards.
    pub fn push_input(&mut self, bytes: &[u8]) {
        if self.s.host_input.is_empty() {
            // The line has been idle: the first byte starts now.
            self.s.rx_line_free_at = self.s.rx_line_free_at.max(self.s.now);
        }
        let room = HOST_QUEUE_LIMIT.saturating_sub(self.s.host_input.len());
        let take = bytes.len().min(room);
        self.s.host_input.extend(&bytes[..take]);
        self.s.input_dropped += (bytes.len() - take) as u64;
    }

    /// Host bytes still waiting to enter the receiver.
    pub fn input_pending(&self) -> usize {
        self.s.host_input.len()
    }

    /// Set the modem inputs the remote end drives. Changes set the MSR delta
    /// bits; the interrupt line follows at the next poll, which
    /// [`Timed::next_event`] asks for at once.
    pub fn set_modem_inputs(&mut self, inputs: ModemInputs) {
        let old = self.msr_status();
        self.s.modem_inputs = inputs;
        self.note_status_change(old);
    }

    /// The modem outputs the guest drives (MCR DTR, RTS, OUT1, OUT2); all
    /// inactive in loopback, where they are looped back internally.
    pub fn modem_outputs(&self) -> u8 {
        if self.s.mcr & MCR_LOOP != 0 {
            0
        } else {
            self.s.mcr & (MCR_DTR | MCR_RTS | MCR_OUT1 | MCR_OUT2)
        }
    }

    /// Host input bytes dropped because the input queue was full.
    pub fn input_dropped(&self) -> u64 {
        self.s.input_dropped
    }

    /// Transmitted bytes dropped because the output queue was full.
    pub fn output_dropped(&self) -> u64 {
        self.s.output_dropped
    }

    /// Bytes the guest wrote while the THR/TX FIFO was full.
    pub fn tx_overflow(&self) -> u64 {
        self.s.tx_overflow
    }

    // ---- snapshot ----------------------------------------------------------

    pub fn state(&self) -> UartState {
        self.s.clone()
    }

    /// Load a snapshot; inconsistent values are clamped, never trusted.
    pub fn restore(&mut self, state: &UartState) {
        let mut s = state.clone();
        s.ier &= 0x0F;
        s.mcr &= 0x1F;
        s.fcr &= FCR_ENABLE | FCR_DMA_MODE | FCR_TRIGGER_MASK;
        s.lsr_errors &= LSR_ERRORS;
        s.msr_deltas &= 0x0F;
        s.rx_fifo.truncate(FIFO_DEPTH);
        s.tx_fifo.truncate(FIFO_DEPTH);
        s.host_input.truncate(HOST_QUEUE_LIMIT);
        s.host_output.truncate(HOST_QUEUE_LIMIT);
        self.s = s;
        let cap = self.fifo_capacity();
        self.s.rx_fifo.truncate(cap);
        self.s.tx_fifo.truncate(cap);
        self.line_driven = self.gate_open();
        self.line_level = self.line_driven && self.pending().is_some();
    }

    // ---- derived state -----------------------------------------------------

    fn fifo_enabled(&self) -> bool {
        self.s.fcr & FCR_ENABLE != 0
    }

    fn fifo_capacity(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_DEPTH
        } else {
            1
        }
    }

    fn loopback(&self) -> bool {
        self.s.mcr & MCR_LOOP != 0
    }

    /// RCVR trigger level (FCR7-6: 1, 4, 8, 14 bytes).
    fn trigger_level(&self) -> usize {
        match self.s.fcr >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        }
    }

    /// One character time for the current LCR and divisor: start bit, 5-8
    /// data bits, optional parity, 1, 1.5 (5-bit words) or 2 stop bits, each
    /// 16 reference clocks times the divisor. A divisor of 0 counts as 65536
    /// (the 16-bit divider wraps).
    pub fn char_time_ns(&self) -> u64 {
        let data = 5 + u64::from(self.s.lcr & LCR_WORD_LENGTH_MASK);
        let parity = u64::from(self.s.lcr & LCR_PARITY_ENABLE != 0);
        let stop_half_bits = match (self.s.lcr & LCR_STOP_BITS != 0, data) {
            (false, _) => 2,
            (true, 5) => 3,
            (true, _) => 4,
        };
        let half_bits = 2 * (1 + data + parity) + stop_half_bits;
        let divisor = if self.s.divisor == 0 { 65_536 } else { u64::from(self.s.divisor) };
        (half_bits * divisor * NS_PER_SEC / (2 * BASE_BAUD) / self.speedup).max(1)
    }

    /// FIFO mode character timeout: data waiting and no receive or read
    /// activity for four character times.
    fn timeout_active(&self) -> bool {
        self.fifo_enabled() && !self.s.rx_fifo.is_empty() && self.s.now >= self.timeout_deadline()
    }

    fn timeout_deadline(&self) -> u64 {
        self.s.rx_last_activity.saturating_add(4 * self.char_time_ns())
    }

    fn rx_data_available(&self) -> bool {
        if self.fifo_enabled() {
            self.s.rx_fifo.len() >= self.trigger_level()
        } else {
            !self.s.rx_fifo.is_empty()
        }
    }

    /// The highest-priority pending, enabled interrupt (table 4): receiver
    /// line status > received data / character timeout > THR empty > modem
    /// status.
    fn pending(&self) -> Option<u8> {
        let ier = self.s.ier;
        if ier & IER_ELSI != 0 && self.s.lsr_errors != 0 {
            return Some(IIR_RLS);
        }
        if ier & IER_ERBFI != 0 {
            if self.timeout_active() {
                return Some(IIR_TIMEOUT);
            }
            if self.rx_data_available() {
                return Some(IIR_RDA);
            }
        }
        if ier & IER_ETBEI != 0 && self.s.thre_pending {
            return Some(IIR_THRE);
        }
        if ier & IER_EDSSI != 0 && self.s.msr_deltas != 0 {
            return Some(IIR_MODEM);
        }
        None
    }

    /// MSR bits 7-4. In loopback (section 8.6) the modem control outputs
    /// feed the inputs: RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
    fn msr_status(&self) -> u8 {
        let mcr = self.s.mcr;
        if mcr & MCR_LOOP != 0 {
            (if mcr & MCR_RTS != 0 { MSR_CTS } else { 0 })
                | (if mcr & MCR_DTR != 0 { MSR_DSR } else { 0 })
                | (if mcr & MCR_OUT1 != 0 { MSR_RI } else { 0 })
                | (if mcr & MCR_OUT2 != 0 { MSR_DCD } else { 0 })
        } else {
            self.s.modem_inputs.msr_bits()
        }
    }

    /// Set the MSR delta bits for a change of the status lines from `old`.
    fn note_status_change(&mut self, old: u8) {
        let new = self.msr_status();
        let changed = old ^ new;
        if changed & MSR_CTS != 0 {
            self.s.msr_deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            self.s.msr_deltas |= MSR_DDSR;
        }
        if changed & MSR_DCD != 0 {
            self.s.msr_deltas |= MSR_DDCD;
        }
        // TERI: trailing edge of RI only.
        if old & MSR_RI != 0 && new & MSR_RI == 0 {
            self.s.msr_deltas |= MSR_TERI;
        }
    }

    fn lsr(&self) -> u8 {
        let mut v = self.s.lsr_errors;
        if !self.s.rx_fifo.is_empty() {
            v |= LSR_DR;
        }
        if self.s.tx_fifo.is_empty() {
            v |= LSR_THRE;
            if self.s.tsr.is_none() {
                v |= LSR_TEMT;
            }
        }
        v
    }

    /// The PC's OUT2 gate: the interrupt reaches the bus only with OUT2 set,
    /// and loopback forces the OUT2 pin inactive.
    fn gate_open(&self) -> bool {
        self.s.mcr & MCR_OUT2 != 0 && !self.loopback()
    }

    fn receiver_blocked(&self) -> bool {
        self.loopback() || self.s.rx_fifo.len() >= self.fifo_capacity()
    }

    // ---- time --------------------------------------------------------------

    /// Bring the UART to virtual time `t`.
    fn advance(&mut self, t: u64) {
        if t < self.s.now {
            return;
        }
        // Transmitter: finish characters whose last stop bit has gone out;
        // the next FIFO byte enters the TSR at that instant.
        while let Some(byte) = self.s.tsr {
            let done = self.s.tsr_done_at;
            if done > t {
                break;
            }
            self.s.tsr = None;
            self.transmitted(byte, done);
            if let Some(next) = self.s.tx_fifo.pop_front() {
                self.s.tsr = Some(next);
                self.s.tsr_done_at = done.saturating_add(self.char_time_ns());
                if self.s.tx_fifo.is_empty() {
                    self.s.thre_pending = true;
                }
            }
        }
        // Receiver: host bytes arrive back to back at line speed while there
        // is room (the remote end holds its byte otherwise).
        if !self.loopback() {
            let ct = self.char_time_ns();
            while !self.s.host_input.is_empty() && !self.receiver_blocked() {
                let at = self.s.rx_line_free_at.saturating_add(ct);
                if at > t {
                    break;
                }
                if let Some(b) = self.s.host_input.pop_front() {
                    self.received(b, at);
                }
                self.s.rx_line_free_at = at;
            }
        }
        if self.receiver_blocked() {
            // Held back until the receiver has room again.
            self.s.rx_line_free_at = self.s.rx_line_free_at.max(t);
        }
        self.s.now = t;
    }

    /// A character left the transmitter at `at`.
    fn transmitted(&mut self, byte: u8, at: u64) {
        if self.loopback() {
            // Loopback: the TSR output is connected to the receiver input.
            self.received(byte, at);
        } else if self.s.host_output.len() < HOST_QUEUE_LIMIT {
            self.s.host_output.push_back(byte);
        } else {
            self.s.output_dropped += 1;
        }
    }

    /// A character was assembled by the receiver at `at`.
    fn received(&mut self, byte: u8, at: u64) {
        if self.s.rx_fifo.len() >= self.fifo_capacity() {
            // LSR1 (OE). FIFO mode: "the character in the shift register is
            // overwritten, but it is not transferred to the FIFO". Without
            // FIFOs the new character replaces the unread one in the RBR.
            self.s.lsr_errors |= LSR_OE;
            if !self.fifo_enabled() {
                if let Some(slot) = self.s.rx_fifo.back_mut() {
                    *slot = byte;
                }
            }
        } else {
            self.s.rx_fifo.push_back(byte);
        }
        self.s.rx_last_activity = self.s.rx_last_activity.max(at);
    }

    /// Move the next byte into an idle TSR.
    fn start_transmitter(&mut self) {
        if self.s.tsr.is_some() {
            return;
        }
        if let Some(b) = self.s.tx_fifo.pop_front() {
            self.s.tsr = Some(b);
            self.s.tsr_done_at = self.s.now.saturating_add(self.char_time_ns());
            if self.s.tx_fifo.is_empty() {
                self.s.thre_pending = true;
            }
        }
    }

    fn drive_irq(&mut self, cx: &mut DevCtx) {
        if self.gate_open() {
            let level = self.pending().is_some();
            cx.irq.set(self.irq, level);
            self.line_driven = true;
            self.line_level = level;
        } else if self.line_driven {
            // The gate just closed: release the line.
            cx.irq.lower(self.irq);
            self.line_driven = false;
            self.line_level = false;
        }
    }

    // ---- registers ---------------------------------------------------------

    fn read_reg(&mut self, offset: u16) -> u8 {
        let dlab = self.s.lcr & LCR_DLAB != 0;
        match offset {
            REG_DATA if dlab => self.s.divisor as u8,
            REG_DATA => {
                if let Some(b) = self.s.rx_fifo.pop_front() {
                    self.s.rbr_last = b;
                }
                // Reading the FIFO clears a timeout and restarts its timer.
                self.s.rx_last_activity = self.s.now;
                if !self.receiver_blocked() {
                    self.s.rx_line_free_at = self.s.rx_line_free_at.max(self.s.now);
                }
                self.s.rbr_last
            }
            REG_IER if dlab => (self.s.divisor >> 8) as u8,
            REG_IER => self.s.ier,
            REG_IIR_FCR => {
                let p = self.pending();
                if p == Some(IIR_THRE) {
                    // THRE interrupt: cleared by reading IIR when it is the
                    // reported source.
                    self.s.thre_pending = false;
                }
                let fifo = if self.fifo_enabled() { IIR_FIFO_ENABLED } else { 0 };
                p.unwrap_or(IIR_NONE) | fifo
            }
            REG_LCR => self.s.lcr,
            REG_MCR => self.s.mcr,
            REG_LSR => {
                let v = self.lsr();
                // LSR1-4 are cleared when the CPU reads the LSR.
                self.s.lsr_errors = 0;
                v
            }
            REG_MSR => {
                let v = self.s.msr_deltas | self.msr_status();
                self.s.msr_deltas = 0;
                v
            }
            REG_SCR => self.s.scr,
            _ => 0xFF,
        }
    }

    fn write_reg(&mut self, offset: u16, v: u8) {
        let dlab = self.s.lcr & LCR_DLAB != 0;
        match offset {
            REG_DATA if dlab => self.s.divisor = (self.s.divisor & 0xFF00) | u16::from(v),
            REG_DATA => self.write_thr(v),
            REG_IER if dlab => self.s.divisor = (self.s.divisor & 0x00FF) | (u16::from(v) << 8),
            REG_IER => {
                let old = self.s.ier;
                // IER bits 7-4 are always 0 on the 16550A.
                self.s.ier = v & 0x0F;
                if old & IER_ETBEI == 0 && v & IER_ETBEI != 0 && self.s.tx_fifo.is_empty() {
                    // Enabling ETBEI with the THR empty interrupts at once.
                    self.s.thre_pending = true;
                }
            }
            REG_IIR_FCR => self.write_fcr(v),
            REG_LCR => self.s.lcr = v,
            REG_MCR => {
                let old = self.msr_status();
                // MCR bits 7-5 are always 0.
                self.s.mcr = v & 0x1F;
                self.note_status_change(old);
                if !self.receiver_blocked() {
                    self.s.rx_line_free_at = self.s.rx_line_free_at.max(self.s.now);
                }
            }
            // LSR and MSR writes are for factory test only.
            REG_LSR | REG_MSR => {}
            REG_SCR => self.s.scr = v,
            _ => {}
        }
    }

    fn write_thr(&mut self, v: u8) {
        let cap = self.fifo_capacity();
        if self.s.tx_fifo.len() >= cap {
            // Writing a full FIFO loses the byte; without FIFOs the new byte
            // overwrites the one still in the THR.
            self.s.tx_overflow += 1;
            if !self.fifo_enabled() {
                if let Some(slot) = self.s.tx_fifo.back_mut() {
                    *slot = v;
                }
            }
        } else {
            self.s.tx_fifo.push_back(v);
        }
        // A THR write clears the THRE interrupt.
        self.s.thre_pending = false;
        self.start_transmitter();
    }

    fn write_fcr(&mut self, v: u8) {
        let was_enabled = self.fifo_enabled();
        let enable = v & FCR_ENABLE != 0;
        if enable != was_enabled {
            // Changing FCR0 clears both FIFOs, and "the transmitter interrupt
            // after changing FCR0 will be immediate, if it is enabled".
            self.s.rx_fifo.clear();
            self.s.tx_fifo.clear();
            self.s.thre_pending = true;
        }
        if !enable {
            // "FCR0 must be 1 when other FCR bits are written to or they will
            // not be programmed."
            self.s.fcr = 0;
            return;
        }
        if v & FCR_RX_RESET != 0 {
            self.s.rx_fifo.clear();
            self.s.rx_last_activity = self.s.now;
        }
        if v & FCR_TX_RESET != 0 && !self.s.tx_fifo.is_empty() {
            // The shift register keeps its character.
            self.s.tx_fifo.clear();
            self.s.thre_pending = true;
        }
        self.s.fcr = v & (FCR_ENABLE | FCR_DMA_MODE | FCR_TRIGGER_MASK);
        if !self.receiver_blocked() {
            self.s.rx_line_free_at = self.s.rx_line_free_at.max(self.s.now);
        }
    }

    fn offset(&self, port: u16) -> Option<u16> {
        let off = port.wrapping_sub(self.base);
        (off < UART_PORTS).then_some(off)
    }
}

impl PortIo for Uart {
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        self.advance(cx.now.0);
        // An 8-bit device: wider accesses read consecutive registers.
        let mut v = 0u32;
        for i in 0..size.bytes() {
            let b = match self.offset(port.wrapping_add(i as u16)) {
                Some(off) => self.read_reg(off),
                None => 0xFF,
            };
            v |= u32::from(b) << (8 * i);
        }
        self.drive_irq(cx);
        v
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, cx: &mut DevCtx) {
        self.advance(cx.now.0);
        for i in 0..size.bytes() {
            if let Some(off) = self.offset(port.wrapping_add(i as u16)) {
                self.write_reg(off, (value >> (8 * i)) as u8);
            }
        }
        self.drive_irq(cx);
    }
}

impl Timed for Uart {
    fn poll(&mut self, cx: &mut DevCtx) {
        self.advance(cx.now.0);
        self.drive_irq(cx);
    }

    /// The next transmitter completion (THRE/TEMT change, output byte), the
    /// next host byte arriving, or the character timeout; "now" when the
    /// interrupt line is out of date after a host-side change.
    fn next_event(&self) -> Option<Nanos> {
        let mut best: Option<u64> = None;
        let mut consider = |t: u64| best = Some(best.map_or(t, |b| b.min(t)));
        let stale = if self.gate_open() {
            !self.line_driven || self.pending().is_some() != self.line_level
        } else {
            self.line_driven
        };
        if stale {
            consider(self.s.now);
        }
        if self.s.tsr.is_some() {
            consider(self.s.tsr_done_at);
        }
        if !self.s.host_input.is_empty() && !self.receiver_blocked() {
            consider(self.s.rx_line_free_at.saturating_add(self.char_time_ns()));
        }
        if self.s.ier & IER_ERBFI != 0 && self.fifo_enabled() && !self.s.rx_fifo.is_empty() && !self.timeout_active() {
            consider(self.timeout_deadline());
        }
        best.map(Nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IrqLines;

    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const BASE: u16 = COM1.0;
    const IRQ: u8 = COM1.1;

    struct Bench {
        uart: Uart,
        irq: IrqLines,
        now: u64,
    }

    impl Bench {
        fn new() -> Bench {
            Bench { uart: Uart::new(BASE, IRQ), irq: IrqLines::default(), now: 0 }
        }

        /// 8N1 at `baud` with the given FCR, interrupts off, OUT2 set.
        fn configured(baud: u32, fcr: u8) -> Bench {
            let mut b = Bench::new();
            let div = (115_200 / baud) as u16;
            b.write(REG_LCR, LCR_DLAB | 0x03);
            b.write(REG_DATA, div as u8);
            b.write(REG_IER, (div >> 8) as u8);
            b.write(REG_LCR, 0x03);
            b.write(REG_IIR_FCR, fcr);
            b.write(REG_MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
            b
        }

        fn at(&mut self, t: u64) -> &mut Self {
            assert!(t >= self.now, "test clock must not go backwards");
            self.now = t;
            let mut cx = DevCtx { now: Nanos(t), irq: &mut self.irq };
            self.uart.poll(&mut cx);
            self
        }

        fn read(&mut self, off: u16) -> u8 {
            let mut cx = DevCtx { now: Nanos(self.now), irq: &mut self.irq };
            self.uart.io_read(BASE + off, AccessSize::Byte, &mut cx) as u8
        }

        fn write(&mut self, off: u16, v: u8) {
            let mut cx = DevCtx { now: Nanos(self.now), irq: &mut self.irq };
            self.uart.io_write(BASE + off, AccessSize::Byte, u32::from(v), &mut cx);
        }

        fn line(&self) -> bool {
            self.irq.level(IRQ)
        }

        /// Run the board's loop: poll at each next event up to `t`.
        fn run_until(&mut self, t: u64) {
            while let Some(e) = self.uart.next_event() {
                if e.0 > t {
                    break;
                }
                self.at(e.0.max(self.now));
            }
            self.at(t);
        }
    }

    #[test]
    fn reset_values_match_the_datasheet() {
        let mut b = Bench::new();
        assert_eq!(b.read(REG_IER), 0);
        assert_eq!(b.read(REG_IIR_FCR), IIR_NONE);
        assert_eq!(b.read(REG_LCR), 0);
        assert_eq!(b.read(REG_MCR), 0);
        assert_eq!(b.read(REG_LSR), LSR_THRE | LSR_TEMT);
        assert_eq!(b.read(REG_MSR) & 0xF0, MSR_CTS | MSR_DSR | MSR_DCD);
    }

    #[test]
    fn dlab_switches_ports_0_and_1_to_the_divisor_latch() {
        let mut b = Bench::new();
        b.write(REG_LCR, LCR_DLAB | 0x03);
        b.write(REG_DATA, 0x80);
        b.write(REG_IER, 0x01);
        assert_eq!(b.read(REG_DATA), 0x80);
        assert_eq!(b.read(REG_IER), 0x01);
        b.write(REG_LCR, 0x03);
        assert_eq!(b.read(REG_IER), 0, "IER untouched by divisor writes");
        assert_eq!(b.uart.state().divisor, 0x0180);
        b.write(REG_IER, 0xFF);
        assert_eq!(b.read(REG_IER), 0x0F, "IER bits 7-4 read 0");
        b.write(REG_LCR, LCR_DLAB);
        assert_eq!(b.read(REG_IER), 0x01);
        assert_eq!(b.read(REG_LCR), LCR_DLAB);
    }

    #[test]
    fn lcr_sets_the_character_time() {
        let mut b = Bench::configured(9600, 0);
        // 8N1: 10 bits at 9600 baud.
        assert_eq!(b.uart.char_time_ns(), 1_041_666);
        // 5 data bits, 1.5 stop bits: 7.5 bits.
        b.write(REG_LCR, LCR_STOP_BITS);
        assert_eq!(b.uart.char_time_ns(), 781_250);
        // 8 data, parity, 2 stop: 12 bits.
        b.write(REG_LCR, 0x03 | LCR_PARITY_ENABLE | LCR_STOP_BITS);
        assert_eq!(b.uart.char_time_ns(), 1_250_000);
        assert_eq!(b.read(REG_LCR), 0x03 | LCR_PARITY_ENABLE | LCR_STOP_BITS);
        // Divisor 1: 115200 baud 8N1.
        b.write(REG_LCR, LCR_DLAB | 0x03);
        b.write(REG_DATA, 1);
        b.write(REG_LCR, 0x03);
        assert_eq!(b.uart.char_time_ns(), 86_805);
        b.uart.set_speedup(100);
        assert_eq!(b.uart.char_time_ns(), 868);
        b.uart.set_speedup(1);
    }

    #[test]
    fn a_byte_at_9600_8n1_takes_1_04_ms_before_temt() {
        let mut b = Bench::configured(9600, 0);
        b.at(5 * MS);
        b.write(REG_DATA, b'A');
        // Moved straight into the shift register: THR empty, TSR busy.
        assert_eq!(b.read(REG_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE);
        assert_eq!(b.uart.next_event(), Some(Nanos(5 * MS + 1_041_666)));
        b.at(5 * MS + 1_041_665);
        assert_eq!(b.read(REG_LSR) & LSR_TEMT, 0);
        assert!(b.uart.take_output().is_empty());
        b.at(5 * MS + 1_041_666);
        assert_eq!(b.read(REG_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
        assert_eq!(b.uart.take_output(), b"A");
    }

    #[test]
    fn polling_guest_sends_a_string_at_line_speed() {
        let mut b = Bench::configured(115_200, FCR_ENABLE);
        let msg = b"hello, world";
        let mut i = 0;
        while i < msg.len() {
            if b.read(REG_LSR) & LSR_THRE != 0 {
                b.write(REG_DATA, msg[i]);
                i += 1;
            }
            let t = b.now + US;
            b.at(t);
        }
        b.run_until(b.now + 100 * MS);
        assert_eq!(b.uart.take_output(), msg);
        // 12 characters, each written once THRE reappeared: about 12 char times.
        assert!(b.now > 11 * 86_805);
    }

    #[test]
    fn fifo_mode_holds_16_bytes_and_drops_the_17th() {
        let mut b = Bench::configured(9600, FCR_ENABLE);
        assert_eq!(b.read(REG_IIR_FCR) & IIR_FIFO_ENABLED, IIR_FIFO_ENABLED);
        for i in 0..18u8 {
            b.write(REG_DATA, i);
        }
        // One in the shift register, 16 in the FIFO, one lost.
        assert_eq!(b.uart.tx_overflow(), 1);
        assert_eq!(b.read(REG_LSR) & LSR_THRE, 0);
        b.run_until(20 * MS);
        assert_eq!(b.uart.take_output(), (0..17u8).collect::<Vec<_>>());
        // Without FIFOs the THR holds one byte and a second write overwrites it.
        b.write(REG_IIR_FCR, 0);
        assert_eq!(b.read(REG_IIR_FCR) & IIR_FIFO_ENABLED, 0);
        b.write(REG_DATA, b'x');
        b.write(REG_DATA, b'y');
        b.write(REG_DATA, b'z');
        b.run_until(30 * MS);
        assert_eq!(b.uart.take_output(), b"xz");
    }

    #[test]
    fn fcr_resets_clear_the_fifos_but_not_the_shift_register() {
        let mut b = Bench::configured(9600, FCR_ENABLE);
        b.write(REG_MCR, MCR_LOOP);
        for i in 0..3u8 {
            b.write(REG_DATA, i);
        }
        b.run_until(10 * MS);
        assert_eq!(b.read(REG_LSR) & LSR_DR, LSR_DR);
        b.write(REG_IIR_FCR, FCR_ENABLE | FCR_RX_RESET);
        assert_eq!(b.read(REG_LSR) & LSR_DR, 0);
        for i in 0..5u8 {
            b.write(REG_DATA, i);
        }
        b.write(REG_IIR_FCR, FCR_ENABLE | FCR_TX_RESET);
        assert_eq!(b.read(REG_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE);
        b.run_until(20 * MS);
        assert_eq!(b.read(REG_DATA), 0, "the shift register's byte still arrives");
        assert_eq!(b.read(REG_LSR) & LSR_DR, 0);
    }

    #[test]
    fn receive_trigger_levels_1_4_8_14() {
        for (bits, level) in [(0x00u8, 1usize), (0x40, 4), (0x80, 8), (0xC0, 14)] {
            let mut b = Bench::configured(115_200, FCR_ENABLE | bits);
            b.write(REG_IER, IER_ERBFI);
            b.uart.push_input(&[0x55; 16]);
            let ct = b.uart.char_time_ns();
            for n in 1..=16usize {
                b.at(n as u64 * ct);
                let rda = b.read(REG_IIR_FCR) & 0x0F == IIR_RDA;
                assert_eq!(rda, n >= level, "trigger {level}, {n} bytes");
                assert_eq!(b.line(), n >= level);
            }
            // Reading below the trigger clears it.
            for _ in 0..(16 - level + 1) {
                b.read(REG_DATA);
            }
            assert_ne!(b.read(REG_IIR_FCR) & 0x0F, IIR_RDA);
        }
    }

    #[test]
    fn character_timeout_after_four_character_times() {
        let mut b = Bench::configured(9600, FCR_ENABLE | 0xC0);
        b.write(REG_IER, IER_ERBFI);
        b.uart.push_input(b"hi");
        let ct = b.uart.char_time_ns();
        b.at(2 * ct);
        assert_eq!(b.read(REG_IIR_FCR), IIR_NONE | IIR_FIFO_ENABLED, "below trigger");
        assert_eq!(b.uart.next_event(), Some(Nanos(6 * ct)));
        b.at(6 * ct - 1);
        assert!(!b.line());
        b.at(6 * ct);
        assert!(b.line());
        assert_eq!(b.read(REG_IIR_FCR), IIR_TIMEOUT | IIR_FIFO_ENABLED);
        // Reading one character clears it and restarts the timer.
        assert_eq!(b.read(REG_DATA), b'h');
        assert!(!b.line());
        assert_eq!(b.read(REG_IIR_FCR) & 0x0F, IIR_NONE);
        b.at(10 * ct);
        assert_eq!(b.read(REG_IIR_FCR) & 0x0F, IIR_TIMEOUT);
        assert_eq!(b.read(REG_DATA), b'i');
        b.at(20 * ct);
        assert_eq!(b.read(REG_IIR_FCR) & 0x0F, IIR_NONE, "empty FIFO: no timeout");
        // No timeout in non-FIFO mode: data available instead.
        let mut c = Bench::configured(9600, 0);
        c.write(REG_IER, IER_ERBFI);
        c.uart.push_input(b"x");
        c.at(ct);
        assert_eq!(c.read(REG_IIR_FCR), IIR_RDA);
        c.at(10 * ct);
        assert_eq!(c.read(REG_IIR_FCR), IIR_RDA);
    }

    #[test]
    fn host_input_arrives_at_line_speed_and_waits_for_room() {
        let mut b = Bench::configured(9600, 0);
        b.uart.push_input(b"abc");
        let ct = b.uart.char_time_ns();
        assert_eq!(b.uart.next_event(), Some(Nanos(ct)));
        b.at(ct - 1);
        assert_eq!(b.read(REG_LSR) & LSR_DR, 0);
        b.at(ct);
        assert_eq!(b.read(REG_LSR) & LSR_DR, LSR_DR);
        // The RBR is full: the remote end holds 'b' rather than overrunning.
        b.at(50 * ct);
        assert_eq!(b.read(REG_LSR) & LSR_OE, 0);
        assert_eq!(b.read(REG_DATA), b'a');
        assert_eq!(b.read(REG_LSR) & LSR_DR, 0);
        b.at(51 * ct);
        assert_eq!(b.read(REG_DATA), b'b');
        b.at(52 * ct);
        assert_eq!(b.read(REG_DATA), b'c');
        assert_eq!(b.uart.next_event(), None);
    }

    #[test]
    fn host_queues_are_bounded_and_count_drops() {
        let mut b = Bench::configured(115_200, FCR_ENABLE);
        b.uart.push_input(&vec![0u8; HOST_QUEUE_LIMIT + 10]);
        assert_eq!(b.uart.input_dropped(), 10);
        assert_eq!(b.uart.input_pending(), HOST_QUEUE_LIMIT);
        // A guest sending forever into a frontend that never takes output.
        let mut t = 0;
        for _ in 0..(HOST_QUEUE_LIMIT + 5) {
            b.at(t);
            b.write(REG_DATA, 1);
            t += b.uart.char_time_ns();
        }
        b.run_until(t + MS);
        assert_eq!(b.uart.state().host_output.len(), HOST_QUEUE_LIMIT);
        assert!(b.uart.output_dropped() >= 4);
    }

    #[test]
    fn thre_interrupt_semantics() {
        let mut b = Bench::configured(9600, 0);
        // Enabling ETBEI with the THR empty interrupts at once.
        b.write(REG_IER, IER_ETBEI);
        assert!(b.line());
        // Reading IIR when THRE is the source clears it.
        assert_eq!(b.read(REG_IIR_FCR), IIR_THRE);
        assert!(!b.line());
        assert_eq!(b.read(REG_IIR_FCR), IIR_NONE);
        // Re-enabling raises it again (Linux's THRE test relies on this).
        b.write(REG_IER, 0);
        b.write(REG_IER, IER_ETBEI);
        assert_eq!(b.read(REG_IIR_FCR), IIR_THRE);
        // First byte goes straight to the shift register: THR empty again.
        b.write(REG_DATA, 1);
        assert!(b.line());
        // Second byte waits in the THR; writing it cleared the interrupt.
        b.write(REG_DATA, 2);
        assert!(!b.line());
        assert_eq!(b.read(REG_IIR_FCR), IIR_NONE);
        // When it moves into the shift register, THRE interrupts again.
        let ct = b.uart.char_time_ns();
        assert_eq!(b.uart.next_event(), Some(Nanos(ct)));
        b.at(ct);
        assert!(b.line());
        assert_eq!(b.read(REG_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE);
        // Writing THR clears it too.
        b.write(REG_DATA, 3);
        assert!(!b.line());
    }

    #[test]
    fn enabling_fifos_gives_an_immediate_thre_interrupt() {
        let mut b = Bench::configured(9600, 0);
        b.write(REG_IER, IER_ETBEI);
        assert_eq!(b.read(REG_IIR_FCR), IIR_THRE);
        b.write(REG_IIR_FCR, FCR_ENABLE);
        assert_eq!(b.read(REG_IIR_FCR), IIR_THRE | IIR_FIFO_ENABLED);
        assert_eq!(b.read(REG_IIR_FCR), IIR_NONE | IIR_FIFO_ENABLED);
    }

    #[test]
    fn iir_reports_sources_in_priority_order() {
        let mut b = Bench::configured(9600, FCR_ENABLE);
        b.write(REG_MCR, MCR_LOOP);
        b.read(REG_MSR);
        // Overrun the receiver through loopback: 17 characters.
        for i in 0..17u8 {
            b.write(REG_DATA, i);
            let t = b.now + b.uart.char_time_ns();
            b.run_until(t);
        }
        b.write(REG_MCR, MCR_LOOP | MCR_RTS); // CTS changes: DCTS
        b.write(REG_IER, IER_ERBFI | IER_ETBEI | IER_ELSI | IER_EDSSI);
        assert_eq!(b.read(REG_IIR_FCR) & 0x0F, IIR_RLS);
        let lsr = b.read(REG_LSR);
        assert_eq!(lsr & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
        assert_eq!(b.read(REG_LSR) & LSR_OE, 0, "reading LSR clears OE");
        assert_eq!(b.read(REG_IIR_FCR) & 0x0F, IIR_RDA);
        for i in 0..16u8 {
            assert_eq!(b.read(REG_DATA), i, "the 17th byte was lost");
        }
        assert_eq!(b.read(REG_IIR_FCR) & 0x0F, IIR_THRE);
        assert_eq!(b.read(REG_IIR_FCR) & 0x0F, IIR_MODEM);
        assert_eq!(b.read(REG_MSR), MSR_DCTS | MSR_CTS);
        assert_eq!(b.read(REG_IIR_FCR) & 0x0F, IIR_NONE);
    }

    #[test]
    fn overrun_without_fifos_replaces_the_unread_byte() {
        let mut b = Bench::configured(9600, 0);
        b.write(REG_MCR, MCR_LOOP);
        b.write(REG_DATA, b'1');
        b.run_until(5 * MS);
        b.write(REG_DATA, b'2');
        b.run_until(10 * MS);
        assert_eq!(b.read(REG_LSR) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
        assert_eq!(b.read(REG_DATA), b'2');
        assert_eq!(b.read(REG_LSR) & (LSR_OE | LSR_DR), 0);
    }

    #[test]
    fn loopback_routes_tx_to_rx_and_mirrors_modem_lines() {
        let mut b = Bench::configured(115_200, FCR_ENABLE);
        b.read(REG_MSR);
        b.write(REG_MCR, MCR_LOOP);
        // Entering loopback drops CTS, DSR and DCD: delta bits.
        assert_eq!(b.read(REG_MSR), MSR_DCTS | MSR_DDSR | MSR_DDCD);
        b.write(REG_MCR, MCR_LOOP | MCR_RTS | MCR_DTR | MCR_OUT1 | MCR_OUT2);
        assert_eq!(b.read(REG_MSR), 0xF0 | MSR_DCTS | MSR_DDSR | MSR_DDCD);
        b.write(REG_MCR, MCR_LOOP | MCR_RTS | MCR_DTR | MCR_OUT2);
        assert_eq!(b.read(REG_MSR), MSR_CTS | MSR_DSR | MSR_DCD | MSR_TERI);
        assert_eq!(b.uart.modem_outputs(), 0, "outputs inactive in loopback");
        // Host input is disconnected in loopback and waits.
        b.uart.push_input(b"host");
        for &c in b"loop" {
            b.write(REG_DATA, c);
        }
        b.run_until(2 * MS);
        assert!(b.uart.take_output().is_empty());
        let got: Vec<u8> = (0..4).map(|_| b.read(REG_DATA)).collect();
        assert_eq!(got, b"loop");
        assert_eq!(b.read(REG_LSR) & LSR_DR, 0);
        // Leaving loopback reconnects the host.
        b.write(REG_MCR, MCR_OUT2);
        b.run_until(4 * MS);
        let got: Vec<u8> = (0..4).map(|_| b.read(REG_DATA)).collect();
        assert_eq!(got, b"host");
    }

    #[test]
    fn modem_input_changes_set_deltas_and_interrupt() {
        let mut b = Bench::configured(9600, 0);
        b.write(REG_IER, IER_EDSSI);
        assert!(!b.line());
        b.uart.set_modem_inputs(ModemInputs { cts: false, dsr: true, ri: true, dcd: true });
        assert_eq!(b.uart.next_event(), Some(Nanos(0)), "line update requested");
        b.at(0);
        assert!(b.line());
        assert_eq!(b.read(REG_IIR_FCR), IIR_MODEM);
        assert_eq!(b.read(REG_MSR), MSR_DCTS | MSR_DSR | MSR_RI | MSR_DCD);
        assert!(!b.line());
        b.uart.set_modem_inputs(ModemInputs { cts: false, dsr: true, ri: false, dcd: true });
        assert_eq!(b.read(REG_MSR), MSR_TERI | MSR_DSR | MSR_DCD);
    }

    #[test]
    fn out2_gates_the_interrupt_line() {
        let mut b = Bench::configured(9600, 0);
        b.write(REG_MCR, MCR_DTR | MCR_RTS);
        b.write(REG_IER, IER_ETBEI);
        assert!(!b.line(), "OUT2 clear: line not driven");
        assert_eq!(b.read(REG_IIR_FCR), IIR_THRE, "the interrupt is still pending inside");
        b.write(REG_IER, 0);
        b.write(REG_IER, IER_ETBEI);
        b.write(REG_MCR, MCR_OUT2);
        assert!(b.line());
        b.write(REG_MCR, 0);
        assert!(!b.line(), "closing the gate releases the line");
        // A second UART sharing the IRQ with OUT2 clear leaves the line alone.
        let mut other = Uart::new(COM3.0, COM3.1);
        b.write(REG_MCR, MCR_OUT2);
        assert!(b.line());
        let mut cx = DevCtx { now: Nanos(b.now), irq: &mut b.irq };
        other.io_write(COM3.0 + REG_SCR, AccessSize::Byte, 0x12, &mut cx);
        other.poll(&mut cx);
        assert!(b.irq.level(IRQ));
        // Loopback forces OUT2 inactive.
        b.write(REG_MCR, MCR_OUT2 | MCR_LOOP);
        assert!(!b.line());
    }

    #[test]
    fn scratch_register_and_word_access() {
        let mut b = Bench::new();
        b.write(REG_SCR, 0xA5);
        assert_eq!(b.read(REG_SCR), 0xA5);
        let mut cx = DevCtx { now: Nanos(0), irq: &mut b.irq };
        // A word read at LCR returns LCR then MCR.
        b.uart.io_write(BASE + REG_LCR, AccessSize::Word, 0x0B03, &mut cx);
        assert_eq!(b.uart.io_read(BASE + REG_LCR, AccessSize::Word, &mut cx), 0x0B03);
        // Past the last register reads float.
        assert_eq!(b.uart.io_read(BASE + REG_SCR, AccessSize::Word, &mut cx), 0xFFA5);
    }

    #[test]
    fn master_reset_keeps_divisor_and_scratch() {
        let mut b = Bench::configured(9600, FCR_ENABLE);
        b.write(REG_SCR, 0x42);
        b.write(REG_IER, 0x0F);
        b.write(REG_DATA, 1);
        b.write(REG_IER, IER_ETBEI);
        assert!(b.line());
        b.uart.reset();
        assert_eq!(b.uart.next_event().map(|t| t.0), Some(b.now), "asks to release the line");
        b.at(b.now);
        assert!(!b.line());
        assert_eq!(b.read(REG_IER), 0);
        assert_eq!(b.read(REG_IIR_FCR), IIR_NONE);
        assert_eq!(b.read(REG_LSR), LSR_THRE | LSR_TEMT);
        assert_eq!(b.read(REG_SCR), 0x42);
        assert_eq!(b.uart.state().divisor, 12);
    }

    #[test]
    fn snapshot_round_trip_resumes_identically() {
        let mut a = Bench::configured(19_200, FCR_ENABLE | 0x40);
        a.write(REG_IER, IER_ERBFI | IER_ETBEI);
        a.uart.push_input(b"input");
        for &c in b"output" {
            a.write(REG_DATA, c);
        }
        a.at(1_234_567);
        let state = a.uart.state();
        let mut b = Bench::new();
        b.uart.restore(&state);
        b.irq = a.irq;
        b.now = a.now;
        assert_eq!(b.uart.state(), state);
        for t in [2 * MS, 3 * MS, 5 * MS, 9 * MS] {
            a.run_until(t);
            b.run_until(t);
            assert_eq!(a.line(), b.line());
            assert_eq!(a.read(REG_IIR_FCR), b.read(REG_IIR_FCR));
            assert_eq!(a.read(REG_LSR), b.read(REG_LSR));
            assert_eq!(a.read(REG_DATA), b.read(REG_DATA));
            assert_eq!(a.uart.take_output(), b.uart.take_output());
        }
        // An oversized FIFO in a snapshot is clamped, not trusted.
        let mut bad = state.clone();
        bad.rx_fifo = (0..100).collect();
        b.uart.restore(&bad);
        assert_eq!(b.uart.state().rx_fifo.len(), FIFO_DEPTH);
    }

    /// Random register traffic at random times: no panic, bounded state.
    #[test]
    fn garbage_register_traffic_never_panics() {
        let mut seed = 0x1234_5678_9ABC_DEF0u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut b = Bench::new();
        for _ in 0..200_000 {
            let r = rnd();
            let off = (r & 7) as u16;
            match (r >> 3) % 5 {
                0 | 1 => b.write(off, (r >> 8) as u8),
                2 | 3 => {
                    b.read(off);
                }
                _ => {
                    if r & 0x100 != 0 {
                        b.uart.push_input(&[(r >> 16) as u8; 3]);
                    }
                    let t = b.now + (r >> 20) % (2 * MS);
                    b.run_until(t);
                    b.uart.take_output();
                }
            }
            let s = &b.uart.s;
            assert!(s.rx_fifo.len() <= FIFO_DEPTH && s.tx_fifo.len() <= FIFO_DEPTH);
        }
    }
}
