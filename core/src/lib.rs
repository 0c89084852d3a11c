//! ferrite-core: the x86 CPU (state, decoded-instruction cache, interpreter,
//! segmentation, paging, exceptions), guest physical memory and the bus
//! traits devices implement. It knows nothing of devices, the JIT or any host
//! frontend, and never reads the wall clock.

pub mod bus;
pub mod cpu;
pub mod mem;
pub mod time;

pub use bus::{AccessSize, Bus, NullBus};
pub use cpu::{Cpu, StepOutcome};
pub use mem::{GuestMemory, MemError, PageKind, PhysAddr, RamSpan, DEVICE_RAM_BYTES};
pub use time::Nanos;
