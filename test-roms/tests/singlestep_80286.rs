//! The SingleStepTests 80286 real-mode suite, run through the library API:
//! every `v1_real_mode/*.json.gz` file and the original `moo/*.MOO.gz` files.
//!
//! The suite is not part of the repository: it is looked up in
//! `$FERRITE_SHARED/conformance/80286`, by default `../shared` beside the
//! workspace. Without it the tests print `SKIPPED: ... not found` and pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrite_test_roms::singlestep::suite::SuiteEvent;
use ferrite_test_roms::singlestep::{collect_inputs, run_suite, Outcome, RunOptions, SuiteSummary, TestFile};

/// Share of the tests run (not skipped) that must pass.
const MIN_PASS_RATE: f64 = 0.999;
/// Share of the whole suite that may be skipped (revoked tests and
/// documented 286-versus-P6 differences). Tests checked against an
/// adjustment's P6 outcome run and count as passed or failed.
const MAX_SKIP_RATE: f64 = 0.015;

fn suite_dir() -> PathBuf {
    let shared = std::env::var_os("FERRITE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("conformance/80286")
}

/// The suite directory, or `None` after saying why the test is skipped.
fn find_suite() -> Option<PathBuf> {
    let dir = suite_dir();
    if dir.join("v1_real_mode").is_dir() {
        Some(dir)
    } else {
        println!("SKIPPED: {} not found (set FERRITE_SHARED to the shared data directory)", dir.display());
        None
    }
}

/// Run some files; returns the summary and a line per file with problems.
fn run(files: &[PathBuf], opts: &RunOptions) -> (SuiteSummary, Vec<String>) {
    let mut problems = Vec::new();
    let summary = run_suite(files, opts, |event| {
        let SuiteEvent::File { result, .. } = event else { return };
        match result {
            Err(e) => problems.push(format!("error: {e}")),
            Ok(report) if report.failed > 0 => {
                let first: Vec<String> = report
                    .tests
                    .iter()
                    .filter_map(|t| match &t.outcome {
                        Outcome::Failed(f) => {
                            let adjusted = report
                                .adjustment_of(t)
                                .map(|a| format!(" [checked against the P6 rule {}]", a.name))
                                .unwrap_or_default();
                            Some(format!("#{} {} ({}){adjusted}: {:?}", t.idx, t.name, t.hash_prefix(), f.kind))
                        }
                        _ => None,
                    })
                    .take(3)
                    .collect();
                problems.push(format!("{}: {} failed, e.g. {}", report.name, report.failed, first.join("; ")));
            }
            Ok(_) => {}
        }
    })
    .expect("suite set-up (metadata, revocation list, guest memory)");
    (summary, problems)
}

#[test]
fn real_mode_suite_passes() {
    let Some(dir) = find_suite() else { return };
    let jobs = std::thread::available_parallelism().map(|n| n.get().min(2)).unwrap_or(1);
    let start = std::time::Instant::now();

    let json_files = collect_inputs(&[dir.join("v1_real_mode")]).expect("list v1_real_mode");
    let (json, mut problems) = run(&json_files, &RunOptions { jobs, ..RunOptions::default() });

    // moo/ has no metadata.json of its own: use the JSON set's.
    let mut moo = SuiteSummary::default();
    if dir.join("moo").is_dir() {
        let moo_files = collect_inputs(&[dir.join("moo")]).expect("list moo");
        let opts = RunOptions { jobs, metadata: Some(dir.join("v1_real_mode/metadata.json")), ..RunOptions::default() };
        let (summary, more) = run(&moo_files, &opts);
        moo = summary;
        problems.extend(more);
    }

    let passed = json.passed + moo.passed;
    let failed = json.failed + moo.failed;
    let skipped = json.skipped + moo.skipped;
    let total = passed + failed + skipped;
    let counts = |pick: fn(&SuiteSummary) -> &BTreeMap<&'static str, (&'static str, usize)>| {
        let mut all = pick(&json).clone();
        for (name, (reason, n)) in pick(&moo) {
            all.entry(name).or_insert((reason, 0)).1 += n;
        }
        all.iter().map(|(name, (_, n))| format!("{n} {name}")).collect::<Vec<String>>()
    };
    let skip_lines = counts(|s| &s.skips);
    println!(
        "80286 real mode: {} JSON + {} MOO files in {:.1} s: {passed} passed, {failed} failed, {skipped} skipped ({}); \
         {} of the passed and failed checked against the P6 rule instead of the 286 result ({})",
        json.files.len(),
        moo.files.len(),
        start.elapsed().as_secs_f64(),
        skip_lines.join(", "),
        json.adjusted + moo.adjusted,
        counts(|s| &s.adjustments).join(", ")
    );

    let unreadable = json.file_errors() + moo.file_errors();
    assert_eq!(unreadable, 0, "unreadable files:\n{}", problems.join("\n"));
    assert!(passed + failed > 0, "no tests ran");
    let pass_rate = passed as f64 / (passed + failed) as f64;
    assert!(
        pass_rate >= MIN_PASS_RATE,
        "pass rate {:.3}% is below {:.1}%: {passed} passed, {failed} failed\n{}",
        pass_rate * 100.0,
        MIN_PASS_RATE * 100.0,
        problems.join("\n")
    );
    let skip_rate = skipped as f64 / total as f64;
    assert!(
        skip_rate < MAX_SKIP_RATE,
        "{skipped} of {total} tests skipped ({:.2}%), the limit is {:.1}%: {}",
        skip_rate * 100.0,
        MAX_SKIP_RATE * 100.0,
        skip_lines.join(", ")
    );
}

/// The JSON files hold the first 1000 tests of the original MOO files: both
/// readers must produce the same tests from them.
#[test]
fn moo_and_json_forms_agree() {
    let Some(dir) = find_suite() else { return };
    let Ok(moo_files) = collect_inputs(&[dir.join("moo")]) else {
        println!("SKIPPED: no MOO files in {}", dir.join("moo").display());
        return;
    };
    for moo_path in moo_files {
        let moo = TestFile::load(&moo_path).expect("read MOO file");
        let opcode = moo.opcode.clone().expect("MOO file name or META gives the opcode");
        let json_path = dir.join("v1_real_mode").join(format!("{opcode}.json.gz"));
        let json = TestFile::load(&json_path).expect("read JSON file");
        assert!(!json.tests.is_empty() && json.tests.len() <= moo.tests.len(), "{}", json_path.display());
        for (j, m) in json.tests.iter().zip(&moo.tests) {
            assert_eq!(j, m, "test {} of {} and {}", j.idx, json_path.display(), moo_path.display());
        }
    }
}
