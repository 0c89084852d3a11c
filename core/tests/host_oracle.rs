//! Differential oracles against the host CPU, on ferrite's interpreter:
//! the integer, MMX, SSE and SSE2 instructions (`oracle/integer.rs`) and
//! the x87 FPU (`oracle/x87.rs`). `jit/tests/host_oracle.rs` runs the
//! same cases with the translator forced on.

mod oracle;

#[test]
fn integer_mmx_sse_instructions_match_the_host_cpu() {
    oracle::integer::check(|_| {}, oracle::integer::DEFAULT_CASES);
}

#[test]
fn x87_instructions_match_the_host_fpu() {
    oracle::x87::check(|_| {}, oracle::x87::DEFAULT_CASES);
}
