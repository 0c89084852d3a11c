//! The JSON form of the tests: one array of test objects per file.
//!
//! ```json
//! { "idx": 0, "name": "add [bx+0Eh],bl", "bytes": [0, 95, 14, 244],
//!   "initial": { "regs": { "ax": 715, ... }, "ram": [[1086632, 0], ...], "queue": [] },
//!   "final":   { "regs": { "ip": 38076, "flags": 19 }, "ram": [[1075233, 1]], "queue": [] },
//!   "exception": { "number": 13, "flag_address": 461420 },
//!   "hash": "626be5084b331080eb08256c12a62d24afdf2a03" }
//! ```
//!
//! The 386 suite's form (from its `moo2json` script) gives the 32-bit
//! register file instead: `cr0`, `cr3`, `eax` ... `edi`, `ebp`, `esp`, the
//! six segment registers, `eip`, `eflags`, `dr6` and `dr7`; a test whose
//! initial state names any of those is a 386 test.
//!
//! Keys the runner does not use (`queue`, `cycles`, the 386 `ea` record)
//! are ignored.

use serde::de::Error as _;
use serde::Deserialize;

use super::{Arch, Exception, Reg, State, TestCase, NUM_REGS};

#[derive(Deserialize)]
struct RawTest {
    idx: u32,
    name: String,
    bytes: Vec<u8>,
    initial: RawState,
    #[serde(rename = "final")]
    final_: RawState,
    #[serde(default)]
    exception: Option<RawException>,
    #[serde(default)]
    hash: Option<String>,
}

#[derive(Deserialize)]
struct RawState {
    #[serde(default)]
    regs: RawRegs,
    #[serde(default)]
    ram: Vec<(u32, u8)>,
}

/// Both suites' register keys. The 16-bit ones are range-checked by their
/// type; selectors are read as 32 bits (the 386 format leaves the upper
/// half undefined) and checked per suite.
#[derive(Deserialize, Default)]
struct RawRegs {
    ax: Option<u16>,
    bx: Option<u16>,
    cx: Option<u16>,
    dx: Option<u16>,
    cs: Option<u32>,
    ss: Option<u32>,
    ds: Option<u32>,
    es: Option<u32>,
    sp: Option<u16>,
    bp: Option<u16>,
    si: Option<u16>,
    di: Option<u16>,
    ip: Option<u16>,
    flags: Option<u16>,
    fs: Option<u32>,
    gs: Option<u32>,
    eax: Option<u32>,
    ebx: Option<u32>,
    ecx: Option<u32>,
    edx: Option<u32>,
    esp: Option<u32>,
    ebp: Option<u32>,
    esi: Option<u32>,
    edi: Option<u32>,
    eip: Option<u32>,
    eflags: Option<u32>,
    cr0: Option<u32>,
    cr3: Option<u32>,
    dr6: Option<u32>,
    dr7: Option<u32>,
}

impl RawRegs {
    /// True when a key only the 386 suite has is present.
    fn has_386_keys(&self) -> bool {
        [
            self.eax,
            self.ebx,
            self.ecx,
            self.edx,
            self.esp,
            self.ebp,
            self.esi,
            self.edi,
            self.eip,
            self.eflags,
            self.cr0,
            self.cr3,
            self.dr6,
            self.dr7,
            self.fs,
            self.gs,
        ]
        .iter()
        .any(Option::is_some)
    }

    /// The registers in [`Reg`] order, for a test of `arch`: a 286 test
    /// takes the 16-bit keys (and rejects selectors over 16 bits), a 386
    /// test the 32-bit ones (selectors cut to 16 bits).
    fn into_regs(self, arch: Arch) -> Result<[Option<u32>; NUM_REGS], serde_json::Error> {
        let w = |v: Option<u16>| v.map(u32::from);
        let mut regs = match arch {
            Arch::I286 => [
                w(self.ax),
                w(self.bx),
                w(self.cx),
                w(self.dx),
                self.cs,
                self.ss,
                self.ds,
                self.es,
                w(self.sp),
                w(self.bp),
                w(self.si),
                w(self.di),
                w(self.ip),
                w(self.flags),
                None,
                None,
                None,
                None,
                None,
                None,
            ],
            Arch::I386 => [
                self.eax,
                self.ebx,
                self.ecx,
                self.edx,
                self.cs,
                self.ss,
                self.ds,
                self.es,
                self.esp,
                self.ebp,
                self.esi,
                self.edi,
                self.eip,
                self.eflags,
                self.fs,
                self.gs,
                self.cr0,
                self.cr3,
                self.dr6,
                self.dr7,
            ],
        };
        for r in Reg::ALL.into_iter().filter(|r| r.is_segment()) {
            if let Some(v) = &mut regs[r.index()] {
                if arch == Arch::I286 && *v > 0xFFFF {
                    return Err(serde_json::Error::custom(format!(
                        "{} value {v} is out of range for a 16-bit register",
                        r.name()
                    )));
                }
                *v &= 0xFFFF;
            }
        }
        Ok(regs)
    }
}

#[derive(Deserialize)]
struct RawException {
    number: u8,
    flag_address: u32,
}

impl RawState {
    fn into_state(self, arch: Arch) -> Result<State, serde_json::Error> {
        Ok(State { regs: self.regs.into_regs(arch)?, ram: self.ram })
    }
}

impl RawTest {
    fn into_test(self) -> Result<TestCase, serde_json::Error> {
        let arch = if self.initial.regs.has_386_keys() { Arch::I386 } else { Arch::I286 };
        Ok(TestCase {
            arch,
            idx: self.idx,
            name: self.name,
            bytes: self.bytes,
            initial: self.initial.into_state(arch)?,
            final_: self.final_.into_state(arch)?,
            exception: self.exception.map(|e| Exception { number: e.number, flag_address: e.flag_address }),
            hash: self.hash.unwrap_or_default().to_ascii_lowercase(),
            masks: [None; NUM_REGS],
            undefined_ram: Vec::new(),
        })
    }
}

/// Parse the (decompressed) contents of a JSON test file.
pub fn parse(data: &[u8]) -> Result<Vec<TestCase>, serde_json::Error> {
    let raw: Vec<RawTest> = serde_json::from_slice(data)?;
    raw.into_iter().map(RawTest::into_test).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlestep::Reg;

    const SAMPLE: &str = r#"[
      {
        "idx": 0,
        "name": "div cl",
        "bytes": [246, 241, 244],
        "initial": {
          "regs": {"ax": 38154, "bx": 36188, "cx": 65535, "dx": 7553, "cs": 53609,
                   "ss": 25231, "ds": 42553, "es": 13690, "sp": 65534, "bp": 49953,
                   "si": 65535, "di": 65535, "ip": 5232, "flags": 35971},
          "ram": [[862976, 246], [862977, 241], [862978, 244]],
          "queue": []
        },
        "final": {"regs": {"ax": 40853, "ip": 5235, "flags": 3223}, "ram": [], "queue": []},
        "cycles": [[13, 862976, 0, 0, 65535, "CODE", 13, "Ts"]],
        "hash": "6288D2B35ABB5D2D2C6E4F762AA8F9B28CA71D3A"
      },
      {
        "idx": 1,
        "name": "div byte [bx+di]",
        "bytes": [246, 49, 244],
        "initial": {"regs": {"ax": 1}, "ram": []},
        "final": {"regs": {"sp": 42434}, "ram": [[108342, 70], [108343, 0]]},
        "exception": {"number": 0, "flag_address": 108342},
        "hash": "300adf4cea965a5e9c6fbaebabede13018af22dd"
      }
    ]"#;

    #[test]
    fn parses_registers_ram_exception_and_hash() {
        let tests = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(tests.len(), 2);

        let t = &tests[0];
        assert_eq!(t.idx, 0);
        assert_eq!(t.name, "div cl");
        assert_eq!(t.bytes, vec![0xF6, 0xF1, 0xF4]);
        assert_eq!(t.initial.reg(Reg::Ax), Some(38154));
        assert_eq!(t.initial.reg(Reg::Di), Some(65535));
        assert_eq!(t.initial.reg(Reg::Flags), Some(35971));
        assert_eq!(t.initial.ram, vec![(862976, 246), (862977, 241), (862978, 244)]);
        assert_eq!(t.final_.reg(Reg::Ax), Some(40853));
        assert_eq!(t.final_.reg(Reg::Bx), None);
        assert_eq!(t.exception, None);
        assert_eq!(t.hash, "6288d2b35abb5d2d2c6e4f762aa8f9b28ca71d3a");

        let t = &tests[1];
        assert_eq!(t.exception, Some(Exception { number: 0, flag_address: 108342 }));
        assert_eq!(t.final_.ram, vec![(108342, 70), (108343, 0)]);
    }

    #[test]
    fn out_of_range_register_is_an_error() {
        let bad = r#"[{"idx":0,"name":"x","bytes":[],"initial":{"regs":{"ax":65536},"ram":[]},
                       "final":{"regs":{},"ram":[]}}]"#;
        let err = parse(bad.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("65536"), "{err}");
    }

    /// The `moo2json` form of a 386 test: 32-bit registers, the `ea`
    /// record, selectors given as 32-bit values.
    const SAMPLE_386: &str = r#"[{
        "idx": 0, "name": "add [ss:bp+60h],bl", "bytes": [0, 94, 96, 244],
        "initial": {
          "regs": {"cr0": 2147418096, "cr3": 0, "eax": 305419896, "ebx": 2882400001, "ecx": 1,
                   "edx": 2, "esi": 3, "edi": 4, "ebp": 196610, "esp": 4660,
                   "cs": 9029, "ds": 1024, "es": 20480, "fs": 0, "gs": 4294905615, "ss": 57344,
                   "eip": 4608, "eflags": 4294708371, "dr6": 4294905840, "dr7": 0},
          "ea": {"seg": "SS", "sel": 57344, "base": 917504, "limit": 65535, "offset": 98,
                 "l_addr": 917602, "p_addr": 917602},
          "ram": [[149072, 0], [917602, 11]], "queue": []
        },
        "final": {"regs": {"eip": 4612, "eflags": 4294708370}, "ram": [[917602, 131]], "queue": []},
        "exception": {"number": 13, "flag_address": 123456},
        "hash": "0123456789ABCDEF0123456789ABCDEF01234567"
    }]"#;

    #[test]
    fn parses_the_386_register_file() {
        let t = &parse(SAMPLE_386.as_bytes()).unwrap()[0];
        assert_eq!(t.arch, Arch::I386);
        assert_eq!(t.initial.reg32(Reg::Cr0), Some(0x7FFE_FFF0));
        assert_eq!(t.initial.reg32(Reg::Ax), Some(0x1234_5678));
        assert_eq!(t.initial.reg(Reg::Ax), Some(0x5678));
        assert_eq!(t.initial.reg32(Reg::Bx), Some(0xABCD_EF01));
        assert_eq!(t.initial.reg32(Reg::Sp), Some(0x1234));
        assert_eq!(t.initial.reg32(Reg::Dr6), Some(0xFFFF_0FF0));
        // Upper half of a selector ignored.
        assert_eq!(t.initial.reg32(Reg::Gs), Some(0x0F0F));
        assert_eq!(t.initial.reg32(Reg::Ss), Some(0xE000));
        assert_eq!(t.initial.ram, vec![(0x24650, 0x00), (0xE0062, 0x0B)]);
        assert_eq!(t.final_.reg32(Reg::Ip), Some(0x1204));
        assert_eq!(t.final_.reg32(Reg::Flags), Some(0xFFFC_0C92));
        assert_eq!(t.final_.reg32(Reg::Ax), None);
        assert_eq!(t.final_.ram, vec![(0xE0062, 0x83)]);
        assert_eq!(t.exception, Some(Exception { number: 13, flag_address: 123456 }));
        assert_eq!(t.hash, "0123456789abcdef0123456789abcdef01234567");
    }

    #[test]
    fn a_286_selector_over_16_bits_is_an_error() {
        let bad = r#"[{"idx":0,"name":"x","bytes":[],"initial":{"regs":{"cs":65536},"ram":[]},
                       "final":{"regs":{},"ram":[]}}]"#;
        let err = parse(bad.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("cs value 65536"), "{err}");
        // 32-bit keys make it a 386 test, where only 16 bits count.
        let ok = r#"[{"idx":0,"name":"x","bytes":[],"initial":{"regs":{"cs":65537,"eax":1},"ram":[]},
                      "final":{"regs":{},"ram":[]}}]"#;
        assert_eq!(parse(ok.as_bytes()).unwrap()[0].initial.reg32(Reg::Cs), Some(1));
    }

    #[test]
    fn non_array_top_level_is_an_error() {
        assert!(parse(b"{\"idx\": 0}").is_err());
        assert!(parse(b"").is_err());
    }
}
