//! Runs the integer benchmark loop once, for profilers:
//! cargo run --release -p ferrite-benches --example loop_profile [integer|memory] [iterations]
use ferrite_benches::{flat32, integer_loop, memory_loop};
use ferrite_core::NullBus;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iters = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000_000);
    let code = if args.get(1).map(String::as_str) == Some("memory") { memory_loop(iters) } else { integer_loop(iters) };
    let (mut cpu, mut mem) = flat32(&code);
    let t = std::time::Instant::now();
    let (_, n) = cpu.run(&mut mem, &mut NullBus, u64::MAX);
    let dt = t.elapsed().as_secs_f64();
    println!("{n} instructions in {dt:.3} s: {:.1} MIPS", n as f64 / dt / 1e6);
}
