//! The host-CPU oracles of `core/tests/oracle` (integer, MMX, SSE, SSE2
//! and x87 instructions against the host CPU) with the translator forced
//! on: every case's code runs as translated code (SSE's integer, logic,
//! move and shuffle forms as vector operations, the rest through
//! helpers), and must match the host CPU as the interpreter does. Fewer
//! cases than the interpreter's runs (each case's snippet is compiled
//! once); `FERRITE_ORACLE_CASES` / `FERRITE_X87_CASES` override.

#[path = "../../core/tests/oracle/mod.rs"]
mod oracle;

use ferrite_jit::{Jit, JitMode};

fn force(cpu: &mut ferrite_core::Cpu) {
    Jit::install(cpu, JitMode::Force).expect("the translator starts on this host");
}

#[test]
fn integer_mmx_sse_instructions_match_the_host_cpu_in_translated_code() {
    oracle::integer::check(force, 40_000);
}

#[test]
fn x87_instructions_match_the_host_fpu_in_translated_code() {
    oracle::x87::check(force, 20_000);
}
