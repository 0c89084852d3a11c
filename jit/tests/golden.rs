//! Golden tests for the translator: the Cranelift IR of a few small guest
//! blocks is pinned in `tests/golden/*.clif` (host addresses of helpers and
//! tables replaced by `<addr>`), so a change in the generated code shows
//! in review. `FERRITE_BLESS=1 cargo test -p ferrite-jit --test golden`
//! rewrites the files after a deliberate change. The IR pinned is that of
//! x86-64 Linux hosts (`preserve_all` helper calls, tables in the low 2 GiB
//! folded into displacements); elsewhere the test is left out.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use ferrite_core::cpu::cpuid::CpuModel;
use ferrite_core::cpu::state::CR4_OSFXSR;
use ferrite_core::cpu::Ctx;
use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr};
use iced_x86::code_asm::*;

const BASE: u32 = 0x10_0000;

/// Flat 32-bit protected mode (segment caches set directly), `code` at BASE.
fn flat32(code: &[u8]) -> (Cpu, GuestMemory) {
    let mut mem = GuestMemory::new(4 << 20).expect("guest RAM");
    mem.load(PhysAddr(BASE), code);
    let mut cpu = Cpu::new();
    cpu.state.enter_flat32(8, 16);
    cpu.state.eip = BASE;
    (cpu, mem)
}

/// Replace host addresses (large constants) so the text is stable.
fn sanitize(ir: &str) -> String {
    ir.lines()
        .map(|l| {
            l.split(' ')
                .map(|w| match w.strip_prefix("0x") {
                    Some(h) if h.len() > 8 => "<addr>".to_string(),
                    // A table's address as an access's displacement
                    // (`v18+0x40b9_4000`).
                    _ => match w.split_once("+0x") {
                        Some((v, h)) if u64::from_str_radix(&h.replace('_', ""), 16).is_ok_and(|x| x >= 1 << 16) => {
                            format!("{v}+<addr>")
                        }
                        _ => w.to_string(),
                    },
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn check(name: &str, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) {
    check_on(name, None, build);
}

/// `check` on a machine of CPU model `model` (with CR4.OSFXSR set).
fn check_on(name: &str, model: Option<CpuModel>, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) {
    let mut a = CodeAssembler::new(32).unwrap();
    build(&mut a).unwrap();
    let code = a.assemble(BASE as u64).unwrap();
    let (mut cpu, mut mem) = flat32(&code);
    if let Some(m) = model {
        cpu.set_model(m);
        cpu.state.cr4 |= CR4_OSFXSR;
    }
    let mut bus = NullBus;
    let mut ctx = Ctx { mem: &mut mem, bus: &mut bus };
    let ir = sanitize(&ferrite_jit::block_ir(&mut cpu, &mut ctx).expect("the block translates"));
    compare(name, &ir);
}

/// Compare `ir` with `tests/golden/NAME.clif` (or write it).
fn compare(name: &str, ir: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.clif"));
    if std::env::var_os("FERRITE_BLESS").is_some() || !path.exists() {
        std::fs::write(&path, ir).unwrap();
        println!("wrote {}", path.display());
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(want == ir, "{name}: the IR differs from {} (FERRITE_BLESS=1 to accept):\n{ir}", path.display());
}

#[test]
fn integer_loop_stays_in_registers_and_loops_in_the_block() {
    check("integer_loop", |a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.add(eax, ebx)?;
        a.xor(edx, eax)?;
        a.dec(ecx)?;
        a.jnz(l)?;
        a.hlt()
    });
}

#[test]
fn a_region_keeps_registers_across_its_inner_branches() {
    // A loop of two guest blocks with a forward skip: one function, the
    // skip and the back edge jump to labels inside it.
    check("region_loop", |a| {
        let mut top = a.create_label();
        let mut skip = a.create_label();
        a.set_label(&mut top)?;
        a.add(eax, ebx)?;
        a.jz(skip)?;
        a.inc(edx)?;
        a.set_label(&mut skip)?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.hlt()
    });
}

#[test]
fn compare_and_branch_fold_into_one_host_compare() {
    check("cmp_jl", |a| {
        let mut l = a.create_label();
        a.cmp(esi, edi)?;
        a.jl(l)?;
        a.set_label(&mut l)?;
        a.nop()?;
        a.hlt()
    });
}

#[test]
fn loads_stores_and_stack_go_through_the_fast_tlb() {
    check("memory", |a| {
        a.mov(eax, dword_ptr(esi + 8))?;
        a.add(dword_ptr(edi), 1)?; // read-modify-write: a helper call
        a.mov(dword_ptr(edi + 4), eax)?;
        a.push(eax)?;
        a.pop(ebx)?;
        a.ret()
    });
}

#[test]
fn exits_that_look_their_target_up_share_one_function_per_mode() {
    // The `ret` of the `memory` snippet tail-calls this function: the
    // inline probe of the table of linear entry points (both ways), then
    // `helpers::lookup`, then the return to the run loop.
    let (cpu, _mem) = flat32(&[0xC3]);
    let ir = sanitize(&ferrite_jit::exit_ir(&cpu).expect("the exit function builds"));
    assert!(ir.contains("return_call_indirect"), "{ir}");
    compare("exit", &ir);
}

#[test]
fn x87_memory_operands_reach_their_helper_through_the_fast_tlb() {
    check("x87_memory", |a| {
        a.fld(qword_ptr(esi))?;
        a.fstp(qword_ptr(edi + 8))?;
        a.fxch(st0, st1)?; // no memory operand: the plain helper
        a.hlt()
    });
}

#[test]
fn sse2_integer_code_becomes_vector_operations() {
    // XMM registers in vector variables, written through to `CpuState`;
    // the aligned load checks its linear address; MULPS (floating point,
    // MXCSR) stays a helper call, through the trampoline that saves
    // vector registers.
    check_on("sse2_vector", Some(CpuModel::Pentium4), |a| {
        a.movdqa(xmm0, xmmword_ptr(esi))?;
        a.paddd(xmm0, xmm1)?;
        a.pshufd(xmm2, xmm0, 0x1B)?;
        a.pxor(xmm2, xmm0)?;
        a.mulps(xmm3, xmm2)?;
        a.pmovmskb(eax, xmm2)?;
        a.movdqu(xmmword_ptr(edi), xmm2)?;
        a.hlt()
    });
}
