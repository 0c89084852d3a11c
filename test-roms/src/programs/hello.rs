//! `hello`: the smallest program. Real mode only: prints one line to the
//! debug console and exits with 0. The frontend's default demo runs it.

use super::asm::{build, Code};
use super::rt::LOAD;
use super::Program;
use iced_x86::code_asm::*;

/// What `hello` prints.
pub const MESSAGE: &str = "hello from ferrite\n";

pub fn program() -> Program {
    let image = build(LOAD, |img| {
        let mut c = Code::new(16, LOAD, "hello")?;
        c.cli()?;
        c.cld()?;
        c.xor(ax, ax)?;
        c.mov(ds, ax)?;
        c.mov(ss, ax)?;
        c.mov(sp, LOAD)?;
        let msg = img.addr("hello.msg");
        c.mov(si, msg)?;
        c.mov(dx, 0xE9u32)?;
        let mut l = c.fresh();
        let mut done = c.fresh();
        c.set(&mut l)?;
        c.lodsb()?;
        c.test(al, al)?;
        c.jz(done)?;
        c.out(dx, al)?;
        c.jmp(l)?;
        c.set(&mut done)?;
        c.mov(dx, 0xF4u32)?;
        c.xor(al, al)?;
        c.out(dx, al)?;
        let mut h = c.fresh();
        c.set(&mut h)?;
        c.hlt()?;
        c.jmp(h)?;
        c.here("hello.msg")?;
        let mut m = MESSAGE.as_bytes().to_vec();
        m.push(0);
        c.db(&m)?;
        img.place(c)
    });
    Program { name: "hello", image, load_addr: LOAD }
}
