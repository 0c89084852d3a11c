//! `multiboot`: a minimal multiboot v1 kernel (an ELF32 executable with a
//! multiboot header) for `ferrite run --kernel`. It checks the loader's
//! handshake (EAX = 2BADB002h, flat 32-bit protected mode), prints the
//! command line and the contents of module 0 (the `--initrd` file, read as
//! a zero-terminated string) on the debug console as
//! `multiboot: cmdline=<...> module=<...> mem_upper=<ok|bad>\n`, and exits
//! through the 0xF4 device with 0, or 1 when the handshake is wrong.

use super::asm::{build, Code};
use iced_x86::code_asm::*;

/// Physical load address of the ELF segment.
pub const LOAD: u32 = 0x10_0000;
/// Where the code starts in the file (after the ELF and multiboot headers).
const CODE_OFFSET: u32 = 0x70;

/// The ELF image.
pub fn image() -> Vec<u8> {
    let entry = LOAD + CODE_OFFSET;
    let code = build(entry, |img| {
        let mut c = Code::new(32, entry, "multiboot")?;
        let mut fail = c.fresh();
        c.cmp(eax, 0x2BAD_B002u32)?;
        c.jne(fail)?;
        c.mov(esp, 0x9_0000u32)?;
        c.mov(ebp, ebx)?;
        let print = img.addr("mb.print");
        // Print an inline string: jump over it, point ESI at it by its named
        // label's address, call print.
        let mut n = 0;
        let mut say = |c: &mut Code, img: &mut super::asm::Image, s: &str| -> super::asm::R {
            n += 1;
            let name = format!("mb.s{n}");
            let at = img.addr(&name);
            let mut after = c.fresh();
            c.jmp(after)?;
            c.here(&name)?;
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            c.db(&b)?;
            c.set(&mut after)?;
            c.mov(esi, at)?;
            c.call(print as u64)
        };
        say(&mut c, img, "multiboot: cmdline=")?;
        // flags bit 2: cmdline valid.
        c.test(dword_ptr(ebp), 4u32)?;
        c.jz(fail)?;
        c.mov(esi, dword_ptr(ebp + 16))?;
        c.call(print as u64)?;
        say(&mut c, img, " module=")?;
        // flags bit 3: mods valid, one module.
        c.test(dword_ptr(ebp), 8u32)?;
        c.jz(fail)?;
        c.cmp(dword_ptr(ebp + 20), 1u32)?;
        c.jne(fail)?;
        c.mov(esi, dword_ptr(ebp + 24))?;
        c.mov(esi, dword_ptr(esi))?;
        c.call(print as u64)?;
        say(&mut c, img, " mem_upper=")?;
        let mut bad = c.fresh();
        c.test(dword_ptr(ebp), 1u32)?;
        c.jz(bad)?;
        c.cmp(dword_ptr(ebp + 8), 1024u32)?;
        c.jb(bad)?;
        say(&mut c, img, "ok\n")?;
        c.xor(eax, eax)?;
        c.out(0xF4, al)?;
        let mut h = c.fresh();
        c.jmp(h)?;
        c.set(&mut bad)?;
        say(&mut c, img, "bad\n")?;
        c.set(&mut fail)?;
        c.mov(al, 1)?;
        c.out(0xF4, al)?;
        c.set(&mut h)?;
        c.hlt()?;
        c.jmp(h)?;
        // print: ESI zero-terminated string to port 0xE9.
        c.here("mb.print")?;
        let mut done = c.fresh();
        let top = c.lbl("mb.print");
        c.lodsb()?;
        c.test(al, al)?;
        c.jz(done)?;
        c.out(0xE9, al)?;
        c.jmp(top)?;
        c.set(&mut done)?;
        c.ret()?;
        img.place(c)
    });
    let total = CODE_OFFSET + code.len() as u32;
    let mut f = vec![0u8; CODE_OFFSET as usize];
    // ELF header (ELF32, little-endian, executable, i386).
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 1;
    f[5] = 1;
    f[6] = 1;
    let put16 = |f: &mut Vec<u8>, o: usize, v: u16| f[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut Vec<u8>, o: usize, v: u32| f[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 3); // EM_386
    put32(&mut f, 20, 1);
    put32(&mut f, 24, entry);
    put32(&mut f, 28, 52); // e_phoff
    put16(&mut f, 40, 52); // e_ehsize
    put16(&mut f, 42, 32); // e_phentsize
    put16(&mut f, 44, 1); // e_phnum
                          // One PT_LOAD: the whole file at LOAD, read/execute.
    for (i, v) in [1u32, 0, LOAD, LOAD, total, total, 5, 0x1000].iter().enumerate() {
        put32(&mut f, 52 + 4 * i, *v);
    }
    // Multiboot header at 0x60: page-aligned modules and memory info wanted.
    let flags = 3u32;
    for (i, v) in [0x1BAD_B002u32, flags, 0u32.wrapping_sub(0x1BAD_B002).wrapping_sub(flags)].iter().enumerate() {
        put32(&mut f, 0x60 + 4 * i, *v);
    }
    f.extend_from_slice(&code);
    f
}
