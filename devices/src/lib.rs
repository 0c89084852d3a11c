//! ferrite-devices: one module per PC device (PIC, PIT, CMOS/RTC, PS/2, DMA,
//! UART, VGA, IDE/ATAPI, floppy, NE2000, SB16, PCI/PIIX) with unit tests, the
//! host-backend traits they use, and the `pc` board that wires them into a port
//! and memory map. The first devices land with the PC issue; today this crate
//! holds the debug devices the CPU test programs report through.

pub mod debug;
