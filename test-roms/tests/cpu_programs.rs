//! The project's own CPU test programs (test-roms/src/programs) run on the
//! interpreter: each must exit with 0 and print no failure.

use ferrite_test_roms::debug_ports::DebugPorts;
use ferrite_test_roms::programs::{self, RunResult};

const BUDGET: u64 = 50_000_000;

fn run(name: &str) -> RunResult {
    let program = programs::by_name(name).expect("program exists");
    let mut bus = DebugPorts::new();
    programs::run(&program, &mut bus, BUDGET)
}

fn assert_passes(name: &str) {
    let r = run(name);
    let text = r.console_text();
    println!("{text}");
    assert!(
        matches!(r.exit, Ok(0)) && !text.contains("FAIL"),
        "program {name} failed: exit {:?} after {} instructions; console:\n{text}",
        r.exit,
        r.instructions
    );
}

#[test]
fn hello() {
    let r = run("hello");
    assert_eq!(r.console_text(), "hello from ferrite\n");
    assert!(matches!(r.exit, Ok(0)), "{:?}", r.exit);
}

#[test]
fn pmode() {
    assert_passes("pmode");
}

#[test]
fn paging() {
    assert_passes("paging");
}

#[test]
fn gates() {
    assert_passes("gates");
}

#[test]
fn tasks() {
    assert_passes("tasks");
}

#[test]
fn v86() {
    assert_passes("v86");
}

#[test]
fn smc() {
    assert_passes("smc");
}
