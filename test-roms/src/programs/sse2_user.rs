//! `sse2_user`: a static i386 Linux executable (hand-built ELF) that runs a
//! numeric kernel in SSE2 (packed double square roots, products, quotients
//! and sums, conversions to integers and to singles, 64-bit integer sums and
//! products, shuffles, a compare feeding a mask) for a few thousand steps
//! and writes its final XMM state as 96 hex digits and a newline to stdout
//! (`write`, then `exit(0)`, through INT 80h).
//!
//! The same bytes run natively on an x86 host and inside a guest, so the
//! two lines can be compared: every operation is exactly defined.

use iced_x86::code_asm::*;

/// Load address of the one segment (ELF header included).
pub const LOAD: u32 = 0x0804_8000;
const CODE: u32 = LOAD + 0x100;
/// Inputs (16-byte aligned).
const DATA: u32 = LOAD + 0x800;
/// The hex digits' table.
const HEX: u32 = DATA + 0x80;
/// Results, then their text.
const OUT: u32 = LOAD + 0x900;
const TEXT: u32 = LOAD + 0x980;
/// Bytes of results printed.
const RESULT: u32 = 48;
const SIZE: u32 = 0xA00;

/// The program's output: this many hex digits and a newline.
pub const OUTPUT_LEN: usize = 2 * RESULT as usize + 1;

fn code() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(32)?;
    let mut top = a.create_label();
    let mut hex = a.create_label();
    a.mov(ecx, 3000u32)?;
    a.movapd(xmm6, xmmword_ptr(DATA))?; // x = (1.0, 2.5)
    a.movapd(xmm7, xmmword_ptr(DATA + 16))?; // step = (0.375, 1.0/3)
    a.movapd(xmm4, xmmword_ptr(DATA + 32))?; // c = (3.0, 0.1)
    a.pxor(xmm5, xmm5)?;
    a.pxor(xmm3, xmm3)?;
    a.set_label(&mut top)?;
    a.sqrtpd(xmm0, xmm6)?;
    a.mulpd(xmm0, xmm4)?;
    a.movapd(xmm1, xmm6)?;
    a.divpd(xmm1, xmm7)?;
    a.addpd(xmm0, xmm1)?;
    a.subsd(xmm0, xmm4)?;
    // 64-bit sums of the results' bit patterns, and products of their
    // integer parts.
    a.paddq(xmm5, xmm0)?;
    a.cvttpd2dq(xmm2, xmm0)?;
    a.pmuludq(xmm2, xmm2)?;
    a.paddq(xmm3, xmm2)?;
    a.pshufd(xmm3, xmm3, 0x4E)?;
    // Singles and back, a compare mask folded in.
    a.cvtpd2ps(xmm1, xmm0)?;
    a.cvtps2pd(xmm1, xmm1)?;
    a.cmpltpd(xmm1, xmm0)?;
    a.pxor(xmm5, xmm1)?;
    a.addpd(xmm6, xmm7)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    a.movdqu(xmmword_ptr(OUT), xmm5)?;
    a.movdqu(xmmword_ptr(OUT + 16), xmm3)?;
    a.movupd(xmmword_ptr(OUT + 32), xmm6)?;
    // Hex digits, high nibble first, byte by byte.
    a.mov(esi, OUT)?;
    a.mov(edi, TEXT)?;
    a.mov(ecx, RESULT)?;
    a.set_label(&mut hex)?;
    a.movzx(eax, byte_ptr(esi))?;
    a.mov(edx, eax)?;
    a.shr(eax, 4)?;
    a.and(edx, 15)?;
    a.mov(al, byte_ptr(eax + HEX))?;
    a.mov(byte_ptr(edi), al)?;
    a.mov(dl, byte_ptr(edx + HEX))?;
    a.mov(byte_ptr(edi + 1), dl)?;
    a.inc(esi)?;
    a.add(edi, 2)?;
    a.dec(ecx)?;
    a.jnz(hex)?;
    a.mov(byte_ptr(edi), 10)?;
    a.mov(eax, 4u32)?;
    a.mov(ebx, 1u32)?;
    a.mov(ecx, TEXT)?;
    a.mov(edx, OUTPUT_LEN as u32)?;
    a.int(0x80)?;
    a.mov(eax, 1u32)?;
    a.xor(ebx, ebx)?;
    a.int(0x80)?;
    a.assemble(CODE as u64)
}

/// The executable.
pub fn image() -> Vec<u8> {
    let mut img = vec![0u8; (OUT - LOAD) as usize];
    let put = |img: &mut Vec<u8>, at: u32, b: &[u8]| {
        let o = (at - LOAD) as usize;
        img[o..o + b.len()].copy_from_slice(b);
    };
    // ELF header (EM_386 executable) and one RWX PT_LOAD; the results and
    // their text are bss.
    let mut eh = vec![0x7F, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for v in [2u16, 3] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1u32, CODE, 52, 0, 0] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    for v in [52u16, 32, 1, 40, 0, 0] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1u32, 0, LOAD, LOAD, OUT - LOAD, SIZE, 7, 0x1000] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    put(&mut img, LOAD, &eh);
    put(&mut img, CODE, &code().expect("sse2_user assembles"));
    let doubles = [1.0f64, 2.5, 0.375, 1.0 / 3.0, 3.0, 0.1];
    let d: Vec<u8> = doubles.iter().flat_map(|v| v.to_le_bytes()).collect();
    put(&mut img, DATA, &d);
    put(&mut img, HEX, b"0123456789abcdef");
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The program runs on the host (when it runs i386 executables) and
    /// prints its digits: what the Linux test compares a guest's run with.
    #[test]
    fn runs_on_the_host_and_prints_its_state_in_hex() {
        use std::os::unix::fs::PermissionsExt;
        if !cfg!(all(target_os = "linux", any(target_arch = "x86", target_arch = "x86_64"))) {
            println!("SKIPPED: not an x86 Linux host");
            return;
        }
        let path = std::env::temp_dir().join(format!("ferrite-sse2-user-{}", std::process::id()));
        std::fs::write(&path, image()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new(&path).output();
        let _ = std::fs::remove_file(&path);
        let Ok(out) = out else {
            println!("SKIPPED: this host does not run i386 executables");
            return;
        };
        assert!(out.status.success(), "{:?}", out.status);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.len(), OUTPUT_LEN);
        assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()), "{text:?}");
        // x advanced 3000 steps from (1.0, 2.5) by (0.375, 1/3).
        let x0 = f64::from_le_bytes(hex_bytes(&text[64..80]).try_into().unwrap());
        assert!((x0 - (1.0 + 3000.0 * 0.375)).abs() < 1e-9, "{x0}");
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|k| u8::from_str_radix(&s[k..k + 2], 16).unwrap()).collect()
    }
}
