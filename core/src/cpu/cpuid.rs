//! CPUID: a coherent P6 (family 6) feature set that lists only what this core
//! implements. A feature bit is added here in the same change that makes its
//! instructions work.

/// Family 6, model 3 (Pentium II "Klamath"), stepping 3: also what EDX holds
/// after RESET.
pub const SIGNATURE: u32 = 0x0000_0633;

/// Vendor string as EBX, EDX, ECX. The core models an Intel P6, and guests
/// key errata workarounds and whole init paths on the vendor: Linux runs
/// "generic init" for an unknown vendor, warns that the system "may be
/// unstable" and treats its TSC as unsynchronised. So the CPU says what it
/// models, as Bochs and QEMU's TCG CPU models do.
const VENDOR: &[u8; 12] = b"GenuineIntel";

// CPUID.1:EDX feature bits (Intel SDM vol. 2, CPUID, table 3-11).
pub const FEAT_FPU: u32 = 1 << 0;
pub const FEAT_VME: u32 = 1 << 1;
pub const FEAT_DE: u32 = 1 << 2;
pub const FEAT_PSE: u32 = 1 << 3;
pub const FEAT_TSC: u32 = 1 << 4;
pub const FEAT_PAE: u32 = 1 << 6;
pub const FEAT_MSR: u32 = 1 << 5;
pub const FEAT_CX8: u32 = 1 << 8;
pub const FEAT_SEP: u32 = 1 << 11;
pub const FEAT_PGE: u32 = 1 << 13;
pub const FEAT_CMOV: u32 = 1 << 15;
pub const FEAT_CLFSH: u32 = 1 << 19;
pub const FEAT_MMX: u32 = 1 << 23;
pub const FEAT_FXSR: u32 = 1 << 24;
pub const FEAT_SSE: u32 = 1 << 25;
pub const FEAT_SSE2: u32 = 1 << 26;
/// CPUID.80000001h:EDX bit 20: the XD bit (EFER.NXE).
pub const EXT_NX: u32 = 1 << 20;

/// What this core implements today: a Pentium II's set but for DE (CR4.DE,
/// I/O breakpoints), which waits for the debug-register breakpoints, and
/// MTRR/MCE/MCA/PAT, PAE and PSE-36. FPU with CMOV also announces FCMOVcc and
/// FCOMI/FUCOMI; FXSR is FXSAVE/FXRSTOR and CR4.OSFXSR.
pub const FEATURES_EDX: u32 =
    FEAT_FPU | FEAT_PSE | FEAT_TSC | FEAT_MSR | FEAT_CX8 | FEAT_SEP | FEAT_PGE | FEAT_CMOV | FEAT_MMX | FEAT_FXSR;

/// The processor models ferrite offers (QEMU's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuModel {
    /// Pentium II: x87, MMX, FXSAVE (the default).
    #[default]
    Pentium2,
    /// Pentium III ("Katmai"): the Pentium II's set and SSE.
    Pentium3,
    /// Pentium 4 (a Prescott-class model 3): and SSE2, CLFLUSH, PAE and
    /// NX (SSE3 is not implemented, so not announced).
    Pentium4,
}

impl CpuModel {
    /// CPUID.1:EAX (also EDX after RESET).
    pub fn signature(self) -> u32 {
        match self {
            CpuModel::Pentium2 => SIGNATURE,
            CpuModel::Pentium3 => 0x0000_0673,
            CpuModel::Pentium4 => 0x0000_0F34,
        }
    }

    /// CPUID.80000001h:EDX (the extended leaves exist only on models
    /// that have one of these).
    pub fn ext_features(self) -> u32 {
        match self {
            CpuModel::Pentium4 => EXT_NX,
            _ => 0,
        }
    }

    /// CPUID.1:EDX.
    pub fn features(self) -> u32 {
        match self {
            CpuModel::Pentium2 => FEATURES_EDX,
            CpuModel::Pentium3 => FEATURES_EDX | FEAT_SSE,
            CpuModel::Pentium4 => FEATURES_EDX | FEAT_SSE | FEAT_SSE2 | FEAT_PAE | FEAT_CLFSH,
        }
    }
}

/// Result of CPUID for leaf `eax` (sub-leaf ignored) with the default
/// model: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    cpuid_with(leaf, SIGNATURE, FEATURES_EDX)
}

/// CPUID for leaf `eax` of a model with signature `sig` and the leaf-1
/// EDX features `edx` (no extended leaves).
pub fn cpuid_with(leaf: u32, sig: u32, edx: u32) -> (u32, u32, u32, u32) {
    cpuid_ext(leaf, sig, edx, 0)
}

/// CPUID with the extended leaves 80000000h-80000001h when `ext_edx`
/// (CPUID.80000001h:EDX) is not zero.
pub fn cpuid_ext(leaf: u32, sig: u32, edx: u32, ext_edx: u32) -> (u32, u32, u32, u32) {
    let w = |i: usize| u32::from_le_bytes([VENDOR[i], VENDOR[i + 1], VENDOR[i + 2], VENDOR[i + 3]]);
    // CLFLUSH's line size (EBX bits 15:8, in 8-byte units: 64 bytes).
    let ebx1 = if edx & FEAT_CLFSH != 0 { 8 << 8 } else { 0 };
    match leaf {
        0 => (2, w(0), w(8), w(4)),
        1 => (sig, ebx1, 0, edx),
        0x8000_0000 if ext_edx != 0 => (0x8000_0001, 0, 0, 0),
        0x8000_0001 if ext_edx != 0 => (0, 0, 0, ext_edx),
        // Leaf 2: cache descriptors of a Pentium II (16K L1 I/D, 512K L2, TLBs).
        2 => (0x0302_0101, 0, 0, 0x0C04_0843),
        // Past the highest leaf a P6 answers with the highest basic leaf.
        _ => cpuid_ext(2, sig, edx, ext_edx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_string_reads_in_ebx_edx_ecx_order() {
        let (max, b, c, d) = cpuid(0);
        assert!(max >= 1);
        let mut s = Vec::new();
        for r in [b, d, c] {
            s.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(&s, VENDOR);
    }

    #[test]
    fn a_pentium_iii_adds_sse_and_says_model_7() {
        let m = CpuModel::Pentium3;
        let (sig, _, _, edx) = cpuid_with(1, m.signature(), m.features());
        assert_eq!((sig >> 4) & 0xF, 7);
        assert_eq!(edx, FEATURES_EDX | FEAT_SSE);
        assert_eq!(edx & FEAT_SSE2, 0);
        let mut cpu = crate::Cpu::new();
        cpu.set_model(m);
        cpu.reset();
        assert_eq!(cpu.state.regs[crate::cpu::state::EDX], 0x673, "EDX after RESET");
        assert!(cpu.has_sse());
    }

    #[test]
    fn a_pentium_4_announces_sse2_pae_clflush_and_nx() {
        let m = CpuModel::Pentium4;
        let (sig, ebx, _, edx) = cpuid_ext(1, m.signature(), m.features(), m.ext_features());
        assert_eq!((sig >> 8) & 0xF, 0xF, "family 15");
        assert_eq!(edx & (FEAT_SSE2 | FEAT_PAE | FEAT_CLFSH), FEAT_SSE2 | FEAT_PAE | FEAT_CLFSH);
        assert_eq!((ebx >> 8) & 0xFF, 8, "64-byte CLFLUSH lines");
        let (max, ..) = cpuid_ext(0x8000_0000, m.signature(), m.features(), m.ext_features());
        assert!(max >= 0x8000_0001);
        let (.., ext) = cpuid_ext(0x8000_0001, m.signature(), m.features(), m.ext_features());
        assert_eq!(ext, EXT_NX);
        // A Pentium II has no extended leaves: it answers with leaf 2's.
        assert_eq!(cpuid(0x8000_0000), cpuid(2));
    }

    #[test]
    fn family_is_six_with_fpu_cmov_and_mmx() {
        let (sig, _, _, edx) = cpuid(1);
        assert_eq!((sig >> 8) & 0xF, 6);
        assert_ne!(edx & FEAT_FPU, 0, "the x87 FPU is implemented");
        assert_ne!(edx & FEAT_CMOV, 0, "with FPU: FCMOVcc and FCOMI too");
        assert_ne!(edx & FEAT_MMX, 0, "a Pentium II has MMX");
        assert_ne!(edx & FEAT_FXSR, 0, "FXSAVE/FXRSTOR (Pentium II)");
        assert_eq!(edx & (1 << 25), 0, "no SSE yet");
        assert_eq!(edx & FEAT_DE, 0, "no breakpoints yet, so no DE");
    }
}
