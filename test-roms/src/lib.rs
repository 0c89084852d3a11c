//! ferrite-test-roms: the project's own CPU test programs and the runners for
//! external conformance suites.

pub mod debug_ports;
pub mod programs;
pub mod singlestep;
