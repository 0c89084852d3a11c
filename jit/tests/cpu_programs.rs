//! The project's CPU test programs (protected mode, paging, gates, tasks,
//! V86, self-modifying code, ...) with the JIT forced on: every block is
//! translated on its first execution. Each must pass exactly as on the
//! interpreter, and most of its instructions must run as translated code.

use ferrite_jit::{Jit, JitMode};
use ferrite_test_roms::debug_ports::DebugPorts;
use ferrite_test_roms::programs;

#[test]
fn every_cpu_program_passes_with_the_jit_forced_on() {
    for p in programs::all() {
        let mut bus = DebugPorts::new();
        let r = programs::run_with(&p, &mut bus, 50_000_000, |cpu| {
            Jit::install(cpu, JitMode::Force).expect("the JIT starts on this host")
        });
        let text = r.console_text();
        assert!(
            matches!(r.exit, Ok(0)) && !text.contains("FAIL"),
            "program {} failed with the JIT: exit {:?} after {} instructions; console:\n{text}",
            p.name,
            r.exit,
            r.instructions
        );
        let s = r.accel.expect("the JIT was installed");
        println!(
            "{}: {} instructions, {} translated, {} blocks",
            p.name, r.instructions, s.insns_translated, s.blocks_compiled
        );
        assert!(s.blocks_compiled > 0 && s.insns_translated > 0, "{}: nothing was translated: {s:?}", p.name);
    }
}
