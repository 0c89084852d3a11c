//! The functions translated code calls. They are the JIT-entry boundary:
//! raw pointers from generated code become references here.

use ferrite_core::cpu::accel::ExecResult;
use ferrite_core::cpu::decode::Insn;
use ferrite_core::cpu::Ctx;
use ferrite_core::Cpu;

/// Run one instruction with the interpreter's semantics. Returns 1 when
/// translated code must leave (control transfer, fault, code written,
/// halt, port service), 0 to go on with the next instruction.
pub(crate) extern "C" fn step(cpu: *mut Cpu, ctx: *mut Ctx, insn: *const Insn) -> u32 {
    // SAFETY: generated code passes the `Cpu` and `Ctx` it was entered with
    // (exclusive references held by `Jit::execute` for the whole call) and a
    // pointer into the running block's own decoded instructions, which the
    // block owns and which outlive the call.
    let (cpu, ctx, insn) = unsafe { (&mut *cpu, &mut *ctx, &*insn) };
    match cpu.exec_one(ctx, insn) {
        ExecResult::Next => 0,
        ExecResult::Exit => 1,
    }
}

/// Condition code `cc` from the flags record in `CpuState`.
pub(crate) extern "C" fn condition(cpu: *mut Cpu, cc: u32) -> u32 {
    // SAFETY: as in `step`; only read.
    let cpu = unsafe { &*cpu };
    cpu.condition(cc as u8) as u32
}

/// Make the flags in `which` non-lazy (before an INC/DEC record that keeps
/// CF).
pub(crate) extern "C" fn materialize(cpu: *mut Cpu, which: u32) {
    // SAFETY: as in `step`.
    let cpu = unsafe { &mut *cpu };
    cpu.state.flags.materialize(which);
}
