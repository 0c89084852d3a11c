//! The board end to end: a guest program initialises the PIC and PIT as a
//! BIOS would, sleeps in HLT until ten timer interrupts arrived, and reports
//! through the 16550A and the debug console.

use ferrite_core::cpu::state::SegReg;
use ferrite_core::{GuestMemory, Nanos, PhysAddr};
use ferrite_devices::pc::{Machine, PcConfig, RunExit};
use ferrite_test_roms::programs::timer;

#[test]
fn timer_interrupts_wake_hlt_and_serial_output_arrives() {
    let p = timer::program();
    let mut mem = GuestMemory::new(16 << 20).unwrap();
    mem.load(PhysAddr(p.load_addr), &p.image);
    let cfg = PcConfig { debug_exit: true, ..PcConfig::default() };
    let mut m = Machine::new(mem, &cfg);
    m.cpu.state.load_seg_real(SegReg::Cs, 0);
    m.cpu.state.eip = p.load_addr;
    let exit = m.run(50_000_000);
    assert_eq!(exit, RunExit::Exit(0), "console: {:?}", String::from_utf8_lossy(&m.pc.take_debugcon()));
    assert_eq!(m.pc.take_debugcon(), timer::MESSAGE.as_bytes());
    assert_eq!(m.pc.com[0].take_output(), timer::MESSAGE.as_bytes());
    // Ten 1 ms ticks happened in virtual time; most of it was spent halted.
    let now = m.pc.now();
    // Ten ticks (the first when the PIT is programmed: OUT0 rises with the
    // mode write, then one per ms) plus ~1.4 ms for 16 characters at 115200
    // baud.
    assert!(now >= Nanos(10_000_000) && now < Nanos(12_000_000), "virtual time {now:?}");
    // Most of it was spent halted: executed instructions cover only the
    // serial polling loop, the idle time was skipped.
    assert!(m.cpu.instret * 10 < now.0 / 4, "{} instructions for {now:?}", m.cpu.instret);
}

#[test]
fn a_halted_cpu_with_interrupts_off_stops_the_machine() {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(0x7C00), &[0xFA, 0xF4]); // cli; hlt
    let mut m = Machine::new(mem, &PcConfig::default());
    m.cpu.state.load_seg_real(SegReg::Cs, 0);
    m.cpu.state.eip = 0x7C00;
    assert_eq!(m.run(1_000_000), RunExit::HaltedForever);
}

#[test]
fn x87_errors_with_ne_clear_raise_irq13_until_port_f0() {
    use ferrite_test_roms::programs::ferr;
    let p = ferr::program();
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(p.load_addr), &p.image);
    let cfg = PcConfig { debug_exit: true, ..PcConfig::default() };
    let mut m = Machine::new(mem, &cfg);
    m.cpu.state.load_seg_real(SegReg::Cs, 0);
    m.cpu.state.eip = p.load_addr;
    let exit = m.run(1_000_000);
    assert_eq!(exit, RunExit::Exit(0), "console: {:?}", String::from_utf8_lossy(&m.pc.take_debugcon()));
    assert_eq!(m.pc.take_debugcon(), ferr::MESSAGE.as_bytes());
}
