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
//! Keys the runner does not use (`queue`, `cycles`, registers of other CPUs)
//! are ignored.

use serde::Deserialize;

use super::{Exception, State, TestCase, NUM_REGS};

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

/// Field order is the suites' register order ([`super::Reg`]).
#[derive(Deserialize, Default)]
struct RawRegs {
    ax: Option<u16>,
    bx: Option<u16>,
    cx: Option<u16>,
    dx: Option<u16>,
    cs: Option<u16>,
    ss: Option<u16>,
    ds: Option<u16>,
    es: Option<u16>,
    sp: Option<u16>,
    bp: Option<u16>,
    si: Option<u16>,
    di: Option<u16>,
    ip: Option<u16>,
    flags: Option<u16>,
}

#[derive(Deserialize)]
struct RawException {
    number: u8,
    flag_address: u32,
}

impl From<RawRegs> for [Option<u16>; NUM_REGS] {
    fn from(r: RawRegs) -> Self {
        [r.ax, r.bx, r.cx, r.dx, r.cs, r.ss, r.ds, r.es, r.sp, r.bp, r.si, r.di, r.ip, r.flags]
    }
}

impl From<RawState> for State {
    fn from(s: RawState) -> Self {
        State { regs: s.regs.into(), ram: s.ram }
    }
}

impl From<RawTest> for TestCase {
    fn from(t: RawTest) -> Self {
        TestCase {
            idx: t.idx,
            name: t.name,
            bytes: t.bytes,
            initial: t.initial.into(),
            final_: t.final_.into(),
            exception: t.exception.map(|e| Exception { number: e.number, flag_address: e.flag_address }),
            hash: t.hash.unwrap_or_default().to_ascii_lowercase(),
            masks: [None; NUM_REGS],
        }
    }
}

/// Parse the (decompressed) contents of a JSON test file.
pub fn parse(data: &[u8]) -> Result<Vec<TestCase>, serde_json::Error> {
    let raw: Vec<RawTest> = serde_json::from_slice(data)?;
    Ok(raw.into_iter().map(TestCase::from).collect())
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

    #[test]
    fn non_array_top_level_is_an_error() {
        assert!(parse(b"{\"idx\": 0}").is_err());
        assert!(parse(b"").is_err());
    }
}
