//! What the host-CPU oracle tests share: a deterministic RNG, the
//! hand-built static i386 ELF executable, and running it natively.
//!
//! An oracle test lays out one image (code and data at fixed addresses),
//! runs it on the host (x86-64 Linux runs i386 executables) and in ferrite,
//! and compares the output records both write.

#![allow(dead_code)]

pub mod integer;
pub mod x87;

/// What an oracle does to ferrite's CPU before running it: nothing (the
/// interpreter) or installing a translator (`jit/tests/host_oracle.rs`).
pub type Accel = fn(&mut ferrite_core::Cpu);

/// xorshift64*: deterministic, so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * n as u64) >> 32) as u32
    }
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        self.below(den) < num
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u32) as usize]
    }
    /// A value of `bits` bits biased toward the edges where flags change.
    pub fn special(&mut self, bits: u32) -> u32 {
        let m = bits_mask(bits);
        let s = 1u32 << (bits - 1);
        match self.below(12) {
            0 => 0,
            1 => m,
            2 => s,
            3 => s - 1,
            4 => 1,
            5 => self.below(16),
            6 => m - self.below(16),
            7 => s.wrapping_add(self.below(8)) & m,
            8 => 1 << self.below(bits),
            9 => self.u32() & self.u32() & m,
            _ => self.u32() & m,
        }
    }
}

pub fn bits_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1 << bits) - 1
    }
}

/// ELF header (EM_386 executable, entry `entry`) with one RWX PT_LOAD of
/// `filesz` bytes from the file start at `base`, `memsz` in memory.
pub fn elf_header(entry: u32, base: u32, filesz: u32, memsz: u32) -> Vec<u8> {
    let mut eh = Vec::new();
    eh.extend_from_slice(&[0x7F, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for v in [2u16, 3] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1u32, entry, 52, 0, 0] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    for v in [52u16, 32, 1, 40, 0, 0] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1u32, 0, base, base, filesz, memsz, 7, 0x1000] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    eh
}

#[derive(Debug)]
pub enum HostError {
    /// The host cannot execute i386 binaries.
    NoExec,
    Failed(String),
}

/// Run the image natively; its stdout (which must be `out_len` bytes) on
/// success.
#[cfg(target_os = "linux")]
pub fn run_host(bytes: &[u8], out_len: usize) -> Result<Vec<u8>, HostError> {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    if !cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
        return Err(HostError::NoExec);
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("host_oracle_{}_{}.elf", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, bytes).map_err(|e| HostError::Failed(format!("write {}: {e}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| HostError::Failed(format!("chmod: {e}")))?;
    let mut tries = 0;
    let out = loop {
        match std::process::Command::new(&path).output() {
            // ETXTBSY: another thread forked while the file was open.
            Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => break r,
        }
    };
    let _ = std::fs::remove_file(&path);
    let out = match out {
        Ok(o) => o,
        Err(e) if e.raw_os_error() == Some(8) => return Err(HostError::NoExec),
        Err(e) => return Err(HostError::Failed(format!("exec: {e}"))),
    };
    if !out.status.success() {
        return Err(HostError::Failed(format!("host run ended with {}", out.status)));
    }
    if out.stdout.len() != out_len {
        return Err(HostError::Failed(format!("host wrote {} bytes", out.stdout.len())));
    }
    Ok(out.stdout)
}

#[cfg(not(target_os = "linux"))]
pub fn run_host(_: &[u8], _: usize) -> Result<Vec<u8>, HostError> {
    Err(HostError::NoExec)
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Emit the driver's end at label `done`: `write(1, out, out_len)` until all
/// is written, then `exit(0)`; `exit(2)` when a write fails (i386 Linux
/// system calls through INT 80h).
pub fn write_out_and_exit(
    a: &mut iced_x86::code_asm::CodeAssembler,
    done: &mut iced_x86::code_asm::CodeLabel,
    out: u32,
    out_len: u32,
) -> Result<(), iced_x86::IcedError> {
    use iced_x86::code_asm::*;
    let mut wloop = a.create_label();
    let mut exit = a.create_label();
    let mut fail = a.create_label();
    a.set_label(done)?;
    a.mov(ecx, out)?;
    a.mov(edx, out_len)?;
    a.set_label(&mut wloop)?;
    a.test(edx, edx)?;
    a.jz(exit)?;
    a.mov(eax, 4)?;
    a.mov(ebx, 1)?;
    a.int(0x80)?;
    a.test(eax, eax)?;
    a.jle(fail)?;
    a.add(ecx, eax)?;
    a.sub(edx, eax)?;
    a.jmp(wloop)?;
    a.set_label(&mut exit)?;
    a.mov(eax, 1)?;
    a.xor(ebx, ebx)?;
    a.int(0x80)?;
    a.set_label(&mut fail)?;
    a.mov(eax, 1)?;
    a.mov(ebx, 2)?;
    a.int(0x80)
}
