//! Interpreter speed in guest instructions per second (criterion reports
//! elements/s = instructions/s).
//!
//! cargo bench -p ferrite-benches --bench interp

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrite_benches::{flat32, integer_loop, memory_loop};
use ferrite_core::NullBus;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("interpreter");
    for (name, code) in [("integer_loop", integer_loop(1_000_000)), ("memory_loop", memory_loop(1_000_000))] {
        // Count what one run retires, then report per instruction.
        let (mut cpu, mut mem) = flat32(&code);
        let (_, n) = cpu.run(&mut mem, &mut NullBus, u64::MAX);
        g.throughput(Throughput::Elements(n));
        g.sample_size(10);
        g.bench_function(name, |b| {
            b.iter(|| {
                let (mut cpu, mut mem) = flat32(&code);
                cpu.run(&mut mem, &mut NullBus, u64::MAX)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
