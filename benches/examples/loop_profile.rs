//! Runs a benchmark loop once, for profilers and quick speed checks:
//! cargo run --release -p ferrite-benches --example loop_profile [integer|memory] [iterations] [off|on|force]
use ferrite_benches::{flat32, integer_loop, memory_loop};
use ferrite_core::NullBus;
use ferrite_jit::{Jit, JitMode};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iters = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000_000);
    let code = if args.get(1).map(String::as_str) == Some("memory") { memory_loop(iters) } else { integer_loop(iters) };
    let mode = match args.get(3).map(String::as_str) {
        Some("on") => JitMode::On,
        Some("force") => JitMode::Force,
        _ => JitMode::Off,
    };
    let (mut cpu, mut mem) = flat32(&code);
    Jit::install(&mut cpu, mode).expect("the JIT starts on this host");
    let t = std::time::Instant::now();
    let (_, n) = cpu.run(&mut mem, &mut NullBus, u64::MAX);
    let dt = t.elapsed().as_secs_f64();
    println!("{n} instructions in {dt:.3} s: {:.1} MIPS ({mode:?})", n as f64 / dt / 1e6);
    println!("regs {:08x?} flags {:08x}", cpu.state.regs, cpu.state.eflags());
    if let Some(s) = cpu.accel_stats() {
        println!("{s:?}");
    }
}
