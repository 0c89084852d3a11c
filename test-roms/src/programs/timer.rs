//! `timer`: a program for the PC board (not for the bare CPU): programs
//! the 8259A pair and the 8254 like a BIOS, sleeps with HLT until ten IRQ0
//! ticks (about 10 ms) arrived, then reports through COM1 (polling the
//! 16550A's LSR) and the debug console, and exits with 0 through 0xF4.

use super::asm::{build, Code};
use super::rt::LOAD;
use super::Program;
use iced_x86::code_asm::*;

/// What `timer` prints on COM1 and the debug console.
pub const MESSAGE: &str = "timer: 10 ticks\n";

/// Where the tick counter lives.
const COUNT: u32 = 0x0600;

pub fn program() -> Program {
    let image = build(LOAD, |img| {
        let mut c = Code::new(16, LOAD, "timer")?;
        c.cli()?;
        c.cld()?;
        c.xor(ax, ax)?;
        c.mov(ds, ax)?;
        c.mov(ss, ax)?;
        c.mov(sp, LOAD)?;
        // IVT entry 8 (IRQ0 after the PIC init below).
        let handler = img.addr("timer.irq0");
        c.mov(word_ptr(8 * 4), handler)?;
        c.mov(word_ptr(8 * 4 + 2), 0u32)?;
        c.mov(word_ptr(COUNT), 0u32)?;
        // 8259A: ICW1-ICW4 for both chips, vectors 0x08 and 0x70, only IRQ0 unmasked.
        super::rt::out_bytes(
            &mut c,
            &[
                (0x20u32, 0x11u32),
                (0x21, 0x08),
                (0x21, 0x04),
                (0x21, 0x01),
                (0x21, 0xFE),
                (0xA0, 0x11),
                (0xA1, 0x70),
                (0xA1, 0x02),
                (0xA1, 0x01),
                (0xA1, 0xFF),
                // 8254 channel 0, LSB+MSB, mode 2, count 1193 (1 ms).
                (0x43, 0x34),
                (0x40, 1193 & 0xFF),
                (0x40, 1193 >> 8),
                // COM1: 115200 baud, 8N1, FIFO on.
                (0x3FB, 0x80),
                (0x3F8, 0x01),
                (0x3F9, 0x00),
                (0x3FB, 0x03),
                (0x3FA, 0x07),
            ],
        )?;
        c.sti()?;
        let mut wait = c.fresh();
        c.set(&mut wait)?;
        c.hlt()?;
        c.cmp(word_ptr(COUNT), 10u32)?;
        c.jb(wait)?;
        c.cli()?;
        // Print the message on COM1 (wait for THRE) and on 0xE9.
        let msg = img.addr("timer.msg");
        c.mov(si, msg)?;
        let mut next = c.fresh();
        let mut done = c.fresh();
        let mut thre = c.fresh();
        c.set(&mut next)?;
        c.lodsb()?;
        c.test(al, al)?;
        c.jz(done)?;
        c.mov(bl, al)?;
        c.mov(dx, 0x3FDu32)?;
        c.set(&mut thre)?;
        c.in_(al, dx)?;
        c.test(al, 0x20)?;
        c.jz(thre)?;
        c.mov(al, bl)?;
        c.mov(dx, 0x3F8u32)?;
        c.out(dx, al)?;
        c.mov(dx, 0xE9u32)?;
        c.out(dx, al)?;
        c.jmp(next)?;
        c.set(&mut done)?;
        // Let the transmitter drain (TEMT) before exiting.
        let mut temt = c.fresh();
        c.mov(dx, 0x3FDu32)?;
        c.set(&mut temt)?;
        c.in_(al, dx)?;
        c.test(al, 0x40)?;
        c.jz(temt)?;
        c.mov(dx, 0xF4u32)?;
        c.xor(al, al)?;
        c.out(dx, al)?;
        let mut h = c.fresh();
        c.set(&mut h)?;
        c.hlt()?;
        c.jmp(h)?;
        // IRQ0 handler: count, EOI, return.
        c.here("timer.irq0")?;
        c.push(ax)?;
        c.inc(word_ptr(COUNT))?;
        c.mov(al, 0x20)?;
        c.out(0x20, al)?;
        c.pop(ax)?;
        c.iret()?;
        c.here("timer.msg")?;
        let mut m = MESSAGE.as_bytes().to_vec();
        m.push(0);
        c.db(&m)?;
        img.place(c)
    });
    Program { name: "timer", image, load_addr: LOAD }
}
