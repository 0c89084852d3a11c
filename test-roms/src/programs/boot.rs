//! What the boot-sector programs (`bootdisk`, `bootcd`, `bootfloppy`) share:
//! the code after their checks.

use iced_x86::code_asm::*;

/// Emit the start of a boot program: flat real-mode segments at 0, the
/// stack below the load address, interrupts on (DL, the boot drive, kept).
pub(crate) fn prologue(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.cli()?;
    a.xor(ax, ax)?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(sp, 0x7C00u32)?;
    a.sti()
}

/// Emit the end of a boot program: falling through prints the
/// zero-terminated message at `msg` on the debug console and exits with 0
/// through 0xF4; jumping to `fail` exits with 1. Both then halt.
pub(crate) fn report(a: &mut CodeAssembler, fail: &mut CodeLabel, msg: u32) -> Result<(), IcedError> {
    let mut halt = a.create_label();
    let mut print = a.create_label();
    let mut done = a.create_label();
    a.mov(si, msg)?;
    a.call(print)?;
    a.xor(al, al)?;
    a.out(0xF4, al)?;
    a.set_label(&mut halt)?;
    a.hlt()?;
    a.jmp(halt)?;
    a.set_label(fail)?;
    a.mov(al, 1)?;
    a.out(0xF4, al)?;
    a.jmp(halt)?;
    // print: DS:SI zero-terminated string to port 0xE9.
    a.set_label(&mut print)?;
    a.lodsb()?;
    a.test(al, al)?;
    a.jz(done)?;
    a.out(0xE9, al)?;
    a.jmp(print)?;
    a.set_label(&mut done)?;
    a.ret()
}
