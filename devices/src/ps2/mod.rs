//! The Intel 8042-compatible keyboard controller of PS/2-style PCs at ports
//! 0x60 (data) and 0x64 (status/command), with a PS/2 keyboard on its first
//! port (IRQ1) and a PS/2 mouse on its auxiliary port (IRQ12).
//!
//! References: IBM PS/2 Hardware Interface Technical Reference, "Keyboard
//! and Auxiliary Device Controller" (status register, controller command
//! byte, commands 0x20-0xFF, input and output ports); A. Brouwer, "Keyboard
//! scancodes", section 9.3 (the translation table and the F0 break-prefix
//! folding) and section 10 (the AT controller: status bits, command byte,
//! commands 0xA7-0xFF, input port P1, output port P2, test inputs).
//!
//! Model:
//! - One output buffer (port 0x60 reads) fed from three queues in priority
//!   order: the controller's own replies (and bytes injected with 0xD2 and
//!   0xD3), then the keyboard, then the mouse. A device's bytes move into
//!   the buffer only while its port is enabled in the command byte; the
//!   device keeps them meanwhile.
//! - After the guest reads a byte, the next one enters the buffer
//!   [`BYTE_GAP_NS`] of virtual time later, at a [`Timed::poll`]. The
//!   interrupt line thus drops for a while between bytes, so the PIC sees a
//!   fresh edge for each, and a handler that reads port 0x60 twice sees the
//!   same byte (the register keeps its last value).
//! - IRQ1 is high while the buffer holds a non-auxiliary byte and the
//!   command byte enables keyboard interrupts; IRQ12 likewise for auxiliary
//!   bytes. Reading port 0x60 empties the buffer and drops the line.
//! - With the command byte's translate bit set, keyboard bytes pass through
//!   the 8042 translation table; 0xF0 is swallowed and sets bit 7 of the
//!   byte that follows it.
//! - The input buffer is consumed at once: IBF always reads 0.
//! - The output port's reset line (active-low bit 0) and A20 gate (bit 1)
//!   reach the board through [`Ps2::take_reset_request`] and
//!   [`Ps2::a20_enabled`]. At power-on every output-port pin is high, as
//!   an 8042's quasi-bidirectional port comes out of reset: A20 enabled.
//!
//! Not modelled: the timeout and parity error status bits (always 0); the
//! password, speed-switching and vendor commands (0xA0-0xA6 except 0xA4,
//! 0xAC, 0xAF, 0xB0-0xBF, 0xC1-0xCB; ignored); AMI's RAM-access aliases
//! 0x00-0x1F and 0x40-0x5F (ignored); the Synaptics multiplexer; a
//! controller self-test that resets the command byte (0xAA only sets the
//! system flag).

mod keyboard;
mod mouse;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::{AccessSize, DevCtx, Nanos, PortIo, Timed};

pub use keyboard::{scan_sequence, KbdParam, KeyCode, Keyboard, KeyboardState};
pub use mouse::{Mouse, MouseParam, MouseState};

/// Data port: output buffer (read), input buffer as data (write).
pub const DATA_PORT: u16 = 0x60;
/// Status register (read), input buffer as command (write).
pub const STATUS_PORT: u16 = 0x64;
/// Interrupt line of the keyboard port.
pub const KBD_IRQ: u8 = 1;
/// Interrupt line of the auxiliary (mouse) port.
pub const AUX_IRQ: u8 = 12;

/// Virtual time between the guest reading a byte and the next byte entering
/// the output buffer. A PS/2 frame takes about 1 ms on the wire; this is
/// shorter so that polled input is not slowed, and long enough that the
/// interrupt line is visibly low between two bytes.
pub const BYTE_GAP_NS: u64 = 50_000;

/// Status register bits.
pub const STATUS_OBF: u8 = 0x01;
pub const STATUS_IBF: u8 = 0x02;
pub const STATUS_SYSTEM: u8 = 0x04;
/// The last write went to port 0x64 (a command).
pub const STATUS_COMMAND: u8 = 0x08;
/// Keyboard not inhibited by the key lock.
pub const STATUS_UNLOCKED: u8 = 0x10;
/// The output buffer holds auxiliary-device data.
pub const STATUS_AUX_OBF: u8 = 0x20;
pub const STATUS_TIMEOUT: u8 = 0x40;
pub const STATUS_PARITY: u8 = 0x80;

/// Controller command byte (RAM byte 0) bits.
pub const CB_KBD_INT: u8 = 0x01;
pub const CB_AUX_INT: u8 = 0x02;
pub const CB_SYSTEM: u8 = 0x04;
pub const CB_KBD_DISABLE: u8 = 0x10;
pub const CB_AUX_DISABLE: u8 = 0x20;
pub const CB_TRANSLATE: u8 = 0x40;

/// Output port P2 bits.
/// System reset, active low: writing 0 resets the CPU.
pub const OUT_RESET: u8 = 0x01;
pub const OUT_A20: u8 = 0x02;
/// Output-buffer-full interrupt of the keyboard and auxiliary ports.
pub const OUT_KBD_IRQ: u8 = 0x10;
pub const OUT_AUX_IRQ: u8 = 0x20;

/// Command byte at power-on: interrupts off, both ports enabled, system
/// flag clear (cold boot), translation on (the PC/AT convention BIOSes keep).
pub const POWER_ON_COMMAND_BYTE: u8 = CB_TRANSLATE;
/// Output port at power-on: all pins high (not in reset, A20 enabled,
/// clock and data lines released); the IRQ bits are computed.
pub const POWER_ON_OUTPUT_PORT: u8 = 0xCF;
/// Input port P1 (command 0xC0): keyboard not locked (bit 7), no
/// manufacturing jumper (bit 5), colour display (bit 6 clear).
pub const INPUT_PORT: u8 = 0xA0;
/// Controller self-test passed (command 0xAA).
pub const SELF_TEST_OK: u8 = 0x55;
/// Interface test passed (commands 0xA9 and 0xAB).
pub const INTERFACE_OK: u8 = 0x00;
/// Reply to 0xA4 ("check password installed"): none.
pub const NO_PASSWORD: u8 = 0xF1;

/// Bytes of controller RAM (commands 0x20-0x3F read, 0x60-0x7F write).
pub const RAM_SIZE: usize = 32;
/// Bound of the controller's own reply queue.
pub const CONTROLLER_QUEUE_LIMIT: usize = 16;

/// The 8042 translation table for bytes 0x00-0x7F (Brouwer 9.3, from
/// Konzak, "PC 8042 Controller"); bytes 0x80-0xFF pass unchanged except
/// 0x83 (set 2 F7) -> 0x41 and 0x84 (set 2 Alt+SysRq) -> 0x54.
const TRANSLATE: [u8; 128] = [
    0xFF, 0x43, 0x41, 0x3F, 0x3D, 0x3B, 0x3C, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3E, 0x0F, 0x29, 0x59, //
    0x65, 0x38, 0x2A, 0x70, 0x1D, 0x10, 0x02, 0x5A, 0x66, 0x71, 0x2C, 0x1F, 0x1E, 0x11, 0x03, 0x5B, //
    0x67, 0x2E, 0x2D, 0x20, 0x12, 0x05, 0x04, 0x5C, 0x68, 0x39, 0x2F, 0x21, 0x14, 0x13, 0x06, 0x5D, //
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5E, 0x6A, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5F, //
    0x6B, 0x33, 0x25, 0x17, 0x18, 0x0B, 0x0A, 0x60, 0x6C, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0C, 0x61, //
    0x6D, 0x73, 0x28, 0x74, 0x1A, 0x0D, 0x62, 0x6E, 0x3A, 0x36, 0x1C, 0x1B, 0x75, 0x2B, 0x63, 0x76, //
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7A, 0x0E, 0x7B, 0x7C, 0x4F, 0x7D, 0x4B, 0x47, 0x7E, 0x7F, 0x6F, //
    0x52, 0x53, 0x50, 0x4C, 0x4D, 0x48, 0x01, 0x45, 0x57, 0x4E, 0x51, 0x4A, 0x37, 0x49, 0x46, 0x54, //
];

/// One byte of keyboard data as the translating 8042 forwards it (without
/// the break bit an earlier 0xF0 adds).
pub fn translate(byte: u8) -> u8 {
    match byte {
        0x00..=0x7F => TRANSLATE[byte as usize],
        0x83 => 0x41,
        0x84 => 0x54,
        _ => byte,
    }
}

/// A byte in (or queued for) the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutByte {
    pub value: u8,
    /// From the auxiliary port (status bit 5, IRQ12).
    pub aux: bool,
}

/// The controller's registers; with the devices' states, the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Controller RAM; byte 0 is the command byte.
    pub ram: Vec<u8>,
    /// The output buffer, when full (OBF).
    pub output: Option<OutByte>,
    /// What port 0x60 reads: the last byte placed in the output buffer.
    pub data_latch: u8,
    /// A command waiting for its data byte at port 0x60.
    pub pending: Option<u8>,
    /// Status bit 3: the last input-buffer write was to port 0x64.
    pub last_was_command: bool,
    /// Output port P2 as written (bits 4-5 are computed on read).
    pub output_port: u8,
    /// A reset pulse the board has not taken yet.
    pub reset_requested: bool,
    /// Controller replies and 0xD2/0xD3 bytes waiting for the buffer.
    pub queue: VecDeque<OutByte>,
    /// Translation: an 0xF0 was swallowed; the next byte gets bit 7.
    pub translate_break: bool,
    /// The next byte may enter the output buffer at this time, ns.
    pub next_load_at: u64,
    /// Virtual time the controller has been advanced to, ns.
    pub now: u64,
    /// Levels last driven on IRQ1 and IRQ12.
    pub irq1: bool,
    pub irq12: bool,
}

impl ControllerState {
    fn power_on() -> ControllerState {
        let mut ram = vec![0; RAM_SIZE];
        ram[0] = POWER_ON_COMMAND_BYTE;
        ControllerState {
            ram,
            output: None,
            data_latch: 0,
            pending: None,
            last_was_command: false,
            output_port: POWER_ON_OUTPUT_PORT,
            reset_requested: false,
            queue: VecDeque::new(),
            translate_break: false,
            next_load_at: 0,
            now: 0,
            irq1: false,
            irq12: false,
        }
    }
}

/// Snapshot of the controller with both devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ps2State {
    pub controller: ControllerState,
    pub keyboard: KeyboardState,
    pub mouse: MouseState,
}

/// The 8042 with its keyboard and mouse.
#[derive(Clone, Debug)]
pub struct Ps2 {
    c: ControllerState,
    kbd: Keyboard,
    mouse: Mouse,
    /// Unknown commands already logged (bit per command byte).
    logged: [u64; 4],
}

impl Default for Ps2 {
    fn default() -> Self {
        Ps2::new()
    }
}

impl Ps2 {
    /// Controller, keyboard and mouse in their power-on state.
    pub fn new() -> Ps2 {
        Ps2 { c: ControllerState::power_on(), kbd: Keyboard::new(), mouse: Mouse::new(), logged: [0; 4] }
    }

    /// Power-on reset of the controller and both devices (a hard machine
    /// reset). A CPU reset the controller requested itself does not reset
    /// the controller: the board resets only the CPU then.
    pub fn reset(&mut self) {
        let now = self.c.now;
        let (irq1, irq12) = (self.c.irq1, self.c.irq12);
        *self = Ps2::new();
        self.c.now = now;
        // Keep the driven levels so the next access lowers them.
        self.c.irq1 = irq1;
        self.c.irq12 = irq12;
    }

    // ---- board interface ---------------------------------------------------

    /// The A20 gate (output port bit 1). The board combines it with port
    /// 0x92's fast-A20 bit (A20 is enabled if either is set).
    pub fn a20_enabled(&self) -> bool {
        self.c.output_port & OUT_A20 != 0
    }

    /// Whether the guest pulsed the reset line (command 0xFE or another
    /// pulse with bit 0 clear, or 0xD1 with bit 0 clear) since the last
    /// call. The board resets the CPU when this returns true.
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.c.reset_requested)
    }

    // ---- host side ---------------------------------------------------------

    /// A host key went down or up (see [`Keyboard::key_event`]). The board
    /// re-reads [`Timed::next_event`] afterwards.
    pub fn key_event(&mut self, key: KeyCode, pressed: bool) {
        self.kbd.key_event(key, pressed);
    }

    /// The host mouse moved: `dx` right, `dy` down, `wheel` notches toward
    /// the user (see [`Mouse::motion`]). The board re-reads
    /// [`Timed::next_event`] afterwards.
    pub fn mouse_motion(&mut self, dx: i32, dy: i32, wheel: i32) {
        self.mouse.motion(dx, dy, wheel);
    }

    /// The host mouse buttons. The board re-reads [`Timed::next_event`].
    pub fn mouse_buttons(&mut self, left: bool, right: bool, middle: bool) {
        self.mouse.buttons(left, right, middle);
    }

    /// Keyboard LEDs as the guest set them: bit 0 Scroll, 1 Num, 2 Caps.
    pub fn keyboard_leds(&self) -> u8 {
        self.kbd.leds()
    }

    /// Whether the guest is listening to the mouse (stream reporting on):
    /// a frontend may grab the host pointer only then.
    pub fn mouse_reporting(&self) -> bool {
        self.mouse.reporting()
    }

    pub fn keyboard(&self) -> &Keyboard {
        &self.kbd
    }

    pub fn mouse(&self) -> &Mouse {
        &self.mouse
    }

    // ---- snapshot ----------------------------------------------------------

    pub fn save(&self) -> Ps2State {
        Ps2State { controller: self.c.clone(), keyboard: self.kbd.state().clone(), mouse: self.mouse.state().clone() }
    }

    /// Load a snapshot; inconsistent values are clamped, never trusted.
    pub fn restore(&mut self, state: &Ps2State) {
        let mut c = state.controller.clone();
        c.ram.resize(RAM_SIZE, 0);
        c.queue.truncate(CONTROLLER_QUEUE_LIMIT);
        self.c = c;
        self.kbd.restore(&state.keyboard);
        self.mouse.restore(&state.mouse);
    }

    // ---- registers ---------------------------------------------------------

    /// The controller command byte.
    pub fn command_byte(&self) -> u8 {
        self.c.ram[0]
    }

    /// The status register as port 0x64 reads it.
    pub fn status(&self) -> u8 {
        let out = self.c.output;
        (if out.is_some() { STATUS_OBF } else { 0 })
            | (self.command_byte() & CB_SYSTEM)
            | (if self.c.last_was_command { STATUS_COMMAND } else { 0 })
            | STATUS_UNLOCKED
            | (if out.is_some_and(|o| o.aux) { STATUS_AUX_OBF } else { 0 })
    }

    /// The levels IRQ1 and IRQ12 should have now.
    fn irq_levels(&self) -> (bool, bool) {
        let cb = self.command_byte();
        match self.c.output {
            Some(OutByte { aux: false, .. }) => (cb & CB_KBD_INT != 0, false),
            Some(OutByte { aux: true, .. }) => (false, cb & CB_AUX_INT != 0),
            None => (false, false),
        }
    }

    /// Output port P2 as command 0xD0 reads it.
    fn output_port_value(&self) -> u8 {
        let (k, a) = self.irq_levels();
        (self.c.output_port & !(OUT_KBD_IRQ | OUT_AUX_IRQ))
            | (if k { OUT_KBD_IRQ } else { 0 })
            | (if a { OUT_AUX_IRQ } else { 0 })
    }

    fn kbd_port_enabled(&self) -> bool {
        self.command_byte() & CB_KBD_DISABLE == 0
    }

    fn aux_port_enabled(&self) -> bool {
        self.command_byte() & CB_AUX_DISABLE == 0
    }

    /// Whether a byte is ready to enter the output buffer.
    fn byte_waiting(&self) -> bool {
        !self.c.queue.is_empty()
            || (self.kbd_port_enabled() && self.kbd.has_output())
            || (self.aux_port_enabled() && self.mouse.has_output())
    }

    /// Move the next waiting byte into the output buffer if it is empty and
    /// the inter-byte gap has passed.
    fn load(&mut self) {
        if self.c.output.is_some() || self.c.now < self.c.next_load_at {
            return;
        }
        let next = if let Some(b) = self.c.queue.pop_front() {
            Some(b)
        } else if let Some(v) = self.kbd_port_enabled().then(|| self.next_keyboard_byte()).flatten() {
            Some(OutByte { value: v, aux: false })
        } else {
            self.aux_port_enabled().then(|| self.mouse.pop()).flatten().map(|v| OutByte { value: v, aux: true })
        };
        if let Some(b) = next {
            self.c.output = Some(b);
            self.c.data_latch = b.value;
        }
    }

    /// The next keyboard byte after translation (Brouwer 9.3): an 0xF0 is
    /// absorbed and ORs 0x80 into the byte after it.
    fn next_keyboard_byte(&mut self) -> Option<u8> {
        loop {
            let b = self.kbd.pop()?;
            if self.command_byte() & CB_TRANSLATE == 0 {
                return Some(b);
            }
            if b == 0xF0 {
                self.c.translate_break = true;
                continue;
            }
            let t = translate(b) | if std::mem::take(&mut self.c.translate_break) { 0x80 } else { 0 };
            return Some(t);
        }
    }

    fn reply(&mut self, value: u8) {
        if self.c.queue.len() < CONTROLLER_QUEUE_LIMIT {
            self.c.queue.push_back(OutByte { value, aux: false });
        }
    }

    /// Port 0x60 read: the output buffer; OBF clears and the next byte
    /// follows after the gap. With OBF clear the last byte reads again.
    fn read_data(&mut self) -> u8 {
        if self.c.output.take().is_some() {
            self.c.next_load_at = self.c.now.saturating_add(BYTE_GAP_NS);
        }
        self.c.data_latch
    }

    /// Port 0x60 write: the data byte of a pending command, else a byte for
    /// the keyboard.
    fn write_data(&mut self, value: u8) {
        self.c.last_was_command = false;
        match self.c.pending.take() {
            Some(cmd @ 0x60..=0x7F) => {
                self.c.ram[(cmd & 0x1F) as usize] = value;
            }
            Some(0xD1) => self.write_output_port(value),
            // Write keyboard / auxiliary output buffer: the byte comes back
            // as if the device had sent it (untranslated).
            Some(0xD2) => {
                if self.c.queue.len() < CONTROLLER_QUEUE_LIMIT {
                    self.c.queue.push_back(OutByte { value, aux: false });
                }
            }
            Some(0xD3) => {
                if self.c.queue.len() < CONTROLLER_QUEUE_LIMIT {
                    self.c.queue.push_back(OutByte { value, aux: true });
                }
            }
            Some(0xD4) => self.mouse.receive(value),
            _ => self.kbd.receive(value),
        }
    }

    /// Output port write (0xD1). Bit 0 low resets the CPU: the reset logic
    /// triggers on the pulse, so the pin reads back high afterwards.
    fn write_output_port(&mut self, value: u8) {
        if value & OUT_RESET == 0 {
            self.c.reset_requested = true;
        }
        self.c.output_port = value | OUT_RESET;
    }

    /// Port 0x64 write: a controller command.
    fn write_command(&mut self, cmd: u8) {
        self.c.last_was_command = true;
        // A new command abandons one still waiting for its data byte.
        self.c.pending = None;
        match cmd {
            // Read controller RAM (byte 0: the command byte).
            0x20..=0x3F => {
                let v = self.c.ram[(cmd & 0x1F) as usize];
                self.reply(v);
            }
            // Write controller RAM; output port; output buffers; to mouse.
            0x60..=0x7F | 0xD1..=0xD4 => self.c.pending = Some(cmd),
            0xA4 => self.reply(NO_PASSWORD),
            0xA7 => self.c.ram[0] |= CB_AUX_DISABLE,
            0xA8 => self.c.ram[0] &= !CB_AUX_DISABLE,
            0xA9 | 0xAB => self.reply(INTERFACE_OK),
            // Self test: passes and sets the system flag ("set to 1 after
            // successful completion of the self-test").
            0xAA => {
                self.c.ram[0] |= CB_SYSTEM;
                self.c.translate_break = false;
                self.reply(SELF_TEST_OK);
            }
            0xAD => self.c.ram[0] |= CB_KBD_DISABLE,
            0xAE => self.c.ram[0] &= !CB_KBD_DISABLE,
            0xC0 => self.reply(INPUT_PORT),
            0xD0 => {
                let v = self.output_port_value();
                self.reply(v);
            }
            // HP Vectra-style A20 commands, kept by many chipsets.
            0xDD => self.c.output_port &= !OUT_A20,
            0xDF => self.c.output_port |= OUT_A20,
            // Test inputs: T0 keyboard clock, T1 auxiliary clock; a clock
            // line is held low while its port is disabled.
            0xE0 => {
                let v = u8::from(self.kbd_port_enabled()) | u8::from(self.aux_port_enabled()) << 1;
                self.reply(v);
            }
            // Pulse output port bits 3-0 low where the command bit is 0;
            // only bit 0 (reset) has a lasting effect.
            0xF0..=0xFF => {
                if cmd & OUT_RESET == 0 {
                    self.c.reset_requested = true;
                }
            }
            _ => self.log_unknown(cmd),
        }
    }

    fn log_unknown(&mut self, cmd: u8) {
        let (word, bit) = ((cmd >> 6) as usize, 1u64 << (cmd & 63));
        if self.logged[word] & bit == 0 {
            self.logged[word] |= bit;
            tracing::debug!(cmd, "ps2: unsupported 8042 command ignored");
        }
    }

    /// Catch up to `now`: a byte may enter the output buffer.
    fn advance(&mut self, now: Nanos) {
        self.c.now = self.c.now.max(now.0);
        self.load();
    }

    fn drive_irqs(&mut self, cx: &mut DevCtx) {
        let (k, a) = self.irq_levels();
        self.c.irq1 = k;
        self.c.irq12 = a;
        cx.irq.set(KBD_IRQ, k);
        cx.irq.set(AUX_IRQ, a);
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        match port {
            DATA_PORT => self.read_data(),
            STATUS_PORT => self.status(),
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        match port {
            DATA_PORT => self.write_data(value),
            STATUS_PORT => self.write_command(value),
            _ => {}
        }
    }
}

impl PortIo for Ps2 {
    /// An 8-bit device: wider accesses reach the addressed register in the
    /// low byte; the other bytes read as an empty bus.
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        self.advance(cx.now);
        let v = self.read_byte(port);
        // A read that emptied the buffer drops the line until the gap has
        // passed; anything else may have been loaded just now.
        self.load();
        self.drive_irqs(cx);
        (size.all_ones() & !0xFF) | u32::from(v)
    }

    fn io_write(&mut self, port: u16, _size: AccessSize, value: u32, cx: &mut DevCtx) {
        self.advance(cx.now);
        self.write_byte(port, value as u8);
        self.load();
        self.drive_irqs(cx);
    }
}

impl Timed for Ps2 {
    fn poll(&mut self, cx: &mut DevCtx) {
        self.advance(cx.now);
        self.drive_irqs(cx);
    }

    /// When the next byte may enter the empty output buffer; "now" when the
    /// interrupt lines are out of date (after a command byte change that
    /// arrived through a snapshot, or host input).
    fn next_event(&self) -> Option<Nanos> {
        if self.c.output.is_none() && self.byte_waiting() {
            return Some(Nanos(self.c.next_load_at.max(self.c.now)));
        }
        if self.irq_levels() != (self.c.irq1, self.c.irq12) {
            return Some(Nanos(self.c.now));
        }
        None
    }
}
