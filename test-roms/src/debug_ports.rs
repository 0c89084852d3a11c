//! A minimal bus for the test programs: the Bochs/QEMU debug console at
//! port 0xE9 and the QEMU isa-debug-exit device at port 0xF4. Every other
//! port reads all-ones and ignores writes (what an empty ISA slot does).

use ferrite_core::{AccessSize, Bus};

/// Port of the debug console (one byte per write).
pub const DEBUGCON_PORT: u16 = 0xE9;
/// Port of the exit device: writing v ends the run with status (v<<1)|1.
pub const EXIT_PORT: u16 = 0xF4;

/// Collects debug-console bytes and the exit-device value.
#[derive(Debug, Default)]
pub struct DebugPorts {
    /// Bytes written to port 0xE9.
    pub console: Vec<u8>,
    /// The value last written to port 0xF4.
    pub exit: Option<u32>,
}

impl DebugPorts {
    pub fn new() -> DebugPorts {
        DebugPorts::default()
    }

    /// The exit status QEMU's isa-debug-exit would give: (v<<1)|1.
    pub fn exit_status(&self) -> Option<u32> {
        self.exit.map(|v| (v << 1) | 1)
    }
}

impl Bus for DebugPorts {
    fn io_read(&mut self, _port: u16, size: AccessSize) -> u32 {
        size.all_ones()
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32) {
        match port {
            DEBUGCON_PORT => self.console.push(value as u8),
            EXIT_PORT => self.exit = Some(value & size.all_ones()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_bytes_and_exit_value_are_recorded() {
        let mut bus = DebugPorts::new();
        bus.io_write(DEBUGCON_PORT, AccessSize::Byte, u32::from(b'h'));
        bus.io_write(0x80, AccessSize::Byte, 0x55);
        bus.io_write(EXIT_PORT, AccessSize::Byte, 3);
        assert_eq!(bus.console, b"h");
        assert_eq!(bus.exit, Some(3));
        assert_eq!(bus.exit_status(), Some(7));
        assert_eq!(bus.io_read(0x60, AccessSize::Word), 0xFFFF);
    }
}
