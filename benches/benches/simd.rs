//! SSE2 integer code in guest instructions per second (criterion reports
//! elements/s = instructions/s): the interpreter, the translator running
//! each SSE instruction through the interpreter's semantics (helper
//! calls), and the translator with SSE lowered to vector operations.
//!
//! cargo bench -p ferrite-benches --bench simd

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrite_benches::{flat32_sse2, sse2_loop};
use ferrite_core::NullBus;
use ferrite_jit::{Jit, JitMode};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse2_loop");
    let code = sse2_loop(1_000_000);
    let (mut cpu, mut mem) = flat32_sse2(&code);
    let (_, n) = cpu.run(&mut mem, &mut NullBus, u64::MAX);
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    for name in ["interpreter", "jit_helpers", "jit_vector"] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (mut cpu, mut mem) = flat32_sse2(&code);
                if name != "interpreter" {
                    let jit = Jit::new(JitMode::On).expect("the translator starts");
                    let jit = if name == "jit_helpers" { jit.without_simd_lowering() } else { jit };
                    cpu.set_accelerator(Some(Box::new(jit)));
                }
                cpu.run(&mut mem, &mut NullBus, u64::MAX)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
