//! ferrite-test-roms: the project's own CPU test programs and the runners for
//! external conformance suites.

pub mod singlestep;
