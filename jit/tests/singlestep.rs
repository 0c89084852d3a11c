//! The SingleStepTests 80286 real-mode suite (from `../shared`, when
//! present) with the JIT forced on: every test's code is translated and run
//! as host code. The interpreter passes every test it runs (see
//! test-roms/tests/singlestep_80286.rs); translated code must fail none of
//! them either, and skip exactly as many.

use ferrite_jit::{Jit, JitMode};
use ferrite_test_roms::singlestep::{collect_inputs, run_suite, RunOptions};
use std::path::{Path, PathBuf};

fn suite_dir() -> PathBuf {
    std::env::var_os("FERRITE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("conformance/80286/v1_real_mode")
}

fn force_jit(cpu: &mut ferrite_core::Cpu) {
    Jit::install(cpu, JitMode::Force).expect("the JIT starts on this host");
}

#[test]
fn real_mode_suite_passes_with_the_jit_forced_on() {
    let dir = suite_dir();
    if !dir.is_dir() {
        println!("SKIPPED: {} not found (set FERRITE_SHARED to the shared data directory)", dir.display());
        return;
    }
    let files = collect_inputs(&[dir]).expect("list v1_real_mode");
    let jobs = std::thread::available_parallelism().map(|n| n.get().min(2)).unwrap_or(1);
    // FERRITE_JIT_SUITE_LIMIT=n runs the first n tests of each file only.
    let limit = std::env::var("FERRITE_JIT_SUITE_LIMIT").ok().and_then(|v| v.parse().ok());
    let start = std::time::Instant::now();
    let mut failures = Vec::new();
    let jit =
        run_suite(&files, &RunOptions { jobs, limit, cpu_setup: Some(force_jit), ..RunOptions::default() }, |e| {
            if let ferrite_test_roms::singlestep::suite::SuiteEvent::File { result: Ok(r), .. } = e {
                if r.failed > 0 {
                    failures.push(format!("{}: {} failed", r.name, r.failed));
                }
            }
        })
        .expect("suite set-up");
    println!(
        "80286 real mode, JIT forced: {} passed, {} failed, {} skipped in {:.1} s",
        jit.passed,
        jit.failed,
        jit.skipped,
        start.elapsed().as_secs_f64()
    );
    assert!(jit.passed > 0, "no tests ran");
    assert_eq!(jit.failed, 0, "failures with the JIT:\n{}", failures.join("\n"));
}
