//! `ferr`: a program for the PC board: DOS-style x87 error reporting. With
//! CR0.NE clear, an unmasked x87 exception asserts FERR#, which the board
//! latches onto IRQ13 (slave 8259A input 5, vector 0x75) until software
//! writes port F0h. The program divides by zero with the zero-divide
//! exception unmasked, waits for IRQ13, and in the handler clears the latch
//! and the exception; it exits with 0 when the status word the handler saw
//! had ZE and ES set, 1 otherwise.

use super::asm::{build, Code};
use super::rt::LOAD;
use super::Program;
use iced_x86::code_asm::*;

/// What `ferr` prints on the debug console when IRQ13 arrived.
pub const MESSAGE: &str = "ferr: irq13\n";

/// Where the handler stores the x87 status word it saw.
const STATUS: u32 = 0x0600;
/// Set to 1 by the IRQ13 handler.
const FLAG: u32 = 0x0602;
/// The control word loaded: all masked but ZE.
const CONTROL: u32 = 0x0604;

pub fn program() -> Program {
    let image = build(LOAD, |img| {
        let mut c = Code::new(16, LOAD, "ferr")?;
        c.cli()?;
        c.cld()?;
        c.xor(ax, ax)?;
        c.mov(ds, ax)?;
        c.mov(ss, ax)?;
        c.mov(sp, LOAD)?;
        let handler = img.addr("ferr.irq13");
        c.mov(word_ptr(0x75 * 4), handler)?;
        c.mov(word_ptr(0x75 * 4 + 2), 0u32)?;
        c.mov(word_ptr(FLAG), 0u32)?;
        c.mov(word_ptr(CONTROL), 0x037Bu32)?;
        // 8259A pair: vectors 0x08/0x70; the master passes only the cascade
        // (IR2), the slave only IR5 (IRQ13).
        super::rt::out_bytes(
            &mut c,
            &[
                (0x20u32, 0x11u32),
                (0x21, 0x08),
                (0x21, 0x04),
                (0x21, 0x01),
                (0x21, 0xFB),
                (0xA0, 0x11),
                (0xA1, 0x70),
                (0xA1, 0x02),
                (0xA1, 0x01),
                (0xA1, 0xDF),
            ],
        )?;
        // CR0: NE clear (FERR# reporting), EM and TS clear, MP set.
        c.mov(eax, cr0)?;
        c.and(eax, !0x2Ci32)?;
        c.or(eax, 0x02)?;
        c.mov(cr0, eax)?;
        c.fninit()?;
        c.fldcw(word_ptr(CONTROL))?;
        c.sti()?;
        c.fld1()?;
        c.fldz()?;
        c.fdivp(st1, st0)?;
        // FERR# is now asserted; no further x87 instruction until the
        // handler has run.
        let mut wait = c.fresh();
        c.set(&mut wait)?;
        c.hlt()?;
        c.cmp(word_ptr(FLAG), 1u32)?;
        c.jne(wait)?;
        c.cli()?;
        let mut bad = c.fresh();
        c.mov(ax, word_ptr(STATUS))?;
        c.and(ax, 0x0084u32)?; // ES | ZE
        c.cmp(ax, 0x0084u32)?;
        c.jne(bad)?;
        let msg = img.addr("ferr.msg");
        c.mov(si, msg)?;
        c.mov(dx, 0xE9u32)?;
        let mut next = c.fresh();
        let mut done = c.fresh();
        c.set(&mut next)?;
        c.lodsb()?;
        c.test(al, al)?;
        c.jz(done)?;
        c.out(dx, al)?;
        c.jmp(next)?;
        let mut h = c.fresh();
        c.set(&mut done)?;
        c.xor(al, al)?;
        c.out(0xF4, al)?;
        c.jmp(h)?;
        c.set(&mut bad)?;
        c.mov(al, 1)?;
        c.out(0xF4, al)?;
        c.set(&mut h)?;
        c.hlt()?;
        c.jmp(h)?;
        // IRQ13: clear the latch (port F0h), save and clear the x87
        // exception, EOI both PICs.
        c.here("ferr.irq13")?;
        c.push(ax)?;
        c.xor(al, al)?;
        c.out(0xF0, al)?;
        c.fnstsw(word_ptr(STATUS))?;
        c.fnclex()?;
        c.mov(word_ptr(FLAG), 1u32)?;
        c.mov(al, 0x20)?;
        c.out(0xA0, al)?;
        c.out(0x20, al)?;
        c.pop(ax)?;
        c.iret()?;
        c.here("ferr.msg")?;
        let mut m = MESSAGE.as_bytes().to_vec();
        m.push(0);
        c.db(&m)?;
        img.place(c)
    });
    Program { name: "ferr", image, load_addr: LOAD }
}
