//! The extent of a region: it goes on past conditional branches, and past
//! an unconditional JMP when an earlier branch of the region goes to the
//! code right after it (if/else, a loop entered at its condition), so such
//! code runs in one translated function instead of hopping between
//! regions. The results must match the interpreter's either way.

use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use ferrite_jit::{Jit, JitMode};
use iced_x86::code_asm::*;

const BASE: u32 = 0x10_0000;

/// An if/else inside a counted loop: even EAX adds to EBX, odd EAX
/// subtracts from EDX; both arms meet at the loop's tail.
fn if_else(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut top = a.create_label();
    let mut odd = a.create_label();
    let mut tail = a.create_label();
    a.mov(ecx, 1000u32)?;
    a.set_label(&mut top)?;
    a.mov(eax, ecx)?;
    a.test(eax, 1)?;
    a.jnz(odd)?;
    a.add(ebx, eax)?;
    a.jmp(tail)?;
    a.set_label(&mut odd)?;
    a.sub(edx, eax)?;
    a.set_label(&mut tail)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    a.hlt()
}

/// A loop in the shape compilers give a `while`: the entry jumps to the
/// condition at the bottom, the body comes first.
fn while_loop(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut body = a.create_label();
    let mut cond = a.create_label();
    a.mov(ecx, 1000u32)?;
    a.jmp(cond)?;
    a.set_label(&mut body)?;
    a.add(esi, ecx)?;
    a.xor(edi, esi)?;
    a.dec(ecx)?;
    a.set_label(&mut cond)?;
    a.test(ecx, ecx)?;
    a.jnz(body)?;
    a.hlt()
}

/// A forward JMP over bytes nothing branches to (an instruction that
/// would raise #UD, then a loop): the region must not run them.
fn jump_over(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut over = a.create_label();
    let mut top = a.create_label();
    a.mov(ecx, 100u32)?;
    a.jmp(over)?;
    a.ud2()?;
    a.set_label(&mut top)?;
    a.add(ebx, 3)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    a.hlt()?;
    a.set_label(&mut over)?;
    a.inc(edx)?;
    a.jmp(top)
}

/// Calls and returns in flat code, which go straight on through the
/// translator's return stack when the address matches: a plain call, a
/// callee that moves its return address past the next instruction (the
/// stack's entry must not be taken), and a recursion deeper than the
/// stack holds.
fn calls(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut top = a.create_label();
    let mut f = a.create_label();
    let mut g = a.create_label();
    let mut rec = a.create_label();
    let mut out = a.create_label();
    a.xor(edx, edx)?;
    a.mov(ecx, 300u32)?;
    a.set_label(&mut top)?;
    a.call(f)?;
    a.add(ebx, 1)?;
    a.call(g)?;
    // INC EDX in its one-byte form, which `g` returns past.
    a.db(&[0x42])?;
    a.add(esi, 3)?;
    a.mov(eax, 40u32)?;
    a.call(rec)?;
    a.add(edi, eax)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    a.hlt()?;
    a.set_label(&mut f)?;
    a.add(ebp, 2)?;
    a.ret()?;
    a.set_label(&mut g)?;
    a.add(dword_ptr(esp), 1)?;
    a.ret()?;
    a.set_label(&mut rec)?;
    a.test(eax, eax)?;
    a.jz(out)?;
    a.dec(eax)?;
    a.call(rec)?;
    a.add(eax, 2)?;
    a.set_label(&mut out)?;
    a.ret()
}

fn machine(build: fn(&mut CodeAssembler) -> Result<(), IcedError>, mode: Option<JitMode>) -> (Cpu, GuestMemory) {
    let mut a = CodeAssembler::new(32).unwrap();
    build(&mut a).unwrap();
    let code = a.assemble(BASE as u64).unwrap();
    let mut mem = GuestMemory::new(4 << 20).expect("guest RAM");
    mem.load(PhysAddr(BASE), &code);
    let mut cpu = Cpu::new();
    cpu.state.enter_flat32(8, 16);
    cpu.state.eip = BASE;
    cpu.state.regs[4] = 0x8_0000;
    if let Some(m) = mode {
        Jit::install(&mut cpu, m).expect("translator");
    }
    (cpu, mem)
}

/// Runs `build` interpreted and with the JIT forced, checks both end in
/// the same state; returns the number of regions the JIT compiled.
fn same_result(build: fn(&mut CodeAssembler) -> Result<(), IcedError>) -> u64 {
    let (mut i, mut mi) = machine(build, None);
    let (mut j, mut mj) = machine(build, Some(JitMode::Force));
    for (cpu, mem) in [(&mut i, &mut mi), (&mut j, &mut mj)] {
        let (out, _) = cpu.run(mem, &mut NullBus, 1_000_000);
        assert_eq!(out, StepOutcome::Halted);
    }
    assert_eq!(i.state.regs, j.state.regs);
    assert_eq!((i.state.eip, i.instret), (j.state.eip, j.instret));
    assert_eq!(i.state.flags.value(), j.state.flags.value());
    let s = j.accel_stats().expect("the JIT is installed");
    assert!(s.insns_translated * 10 > j.instret * 9, "{s:?}: only part of {} translated", j.instret);
    s.blocks_compiled
}

#[test]
fn an_if_else_runs_as_one_region() {
    // (With regions ending at the JMP: four, the entry, `odd`, `tail`
    // and `top`, each pass chaining through three of them.)
    let n = same_result(if_else);
    assert_eq!(n, 1, "{n} regions compiled");
}

#[test]
fn a_loop_entered_at_its_condition_runs_as_one_region() {
    let n = same_result(while_loop);
    assert_eq!(n, 1, "{n} regions compiled");
}

#[test]
fn code_a_jmp_skips_stays_out_of_the_region() {
    same_result(jump_over);
}

#[test]
fn returns_go_straight_on_only_to_the_address_popped() {
    same_result(calls);
    let (mut j, mut mj) = machine(calls, Some(JitMode::Force));
    let (out, _) = j.run(&mut mj, &mut NullBus, 1_000_000);
    assert_eq!(out, StepOutcome::Halted);
    // (EBX: the calls to `f`; EDX: `g` skipped its INC every time; EDI:
    // 300 recursions that each add 2 per level on the way out.)
    assert_eq!((j.state.regs[3], j.state.regs[2], j.state.regs[7]), (300, 0, 300 * 80));
}

/// Only a backward jump checks the instruction budget inside a region (the
/// entry checks it for the whole region, which code going forward runs at
/// most once): budgets that end anywhere in the loop still stop translated
/// code exactly where the interpreter stops.
#[test]
fn a_budget_ends_exactly_inside_a_region_loop() {
    for slice in [1000, 997, 61, 5] {
        let (mut i, mut mi) = machine(if_else, None);
        let (mut j, mut mj) = machine(if_else, Some(JitMode::Force));
        for n in 0.. {
            let (oi, _) = i.run(&mut mi, &mut NullBus, slice);
            let (oj, _) = j.run(&mut mj, &mut NullBus, slice);
            assert_eq!(
                (i.state.eip, i.instret, i.state.regs, i.state.flags.value()),
                (j.state.eip, j.instret, j.state.regs, j.state.flags.value()),
                "slices of {slice}: after slice {n}"
            );
            assert_eq!(oi, oj);
            if oi == StepOutcome::Halted {
                break;
            }
        }
        let s = j.accel_stats().expect("the JIT is installed");
        if slice > 50 {
            assert!(s.insns_translated * 2 > j.instret, "slices of {slice}: {s:?}, {} in all", j.instret);
        }
    }
}
