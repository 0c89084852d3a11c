//! The binary MOO form of the tests (MOO format 1.1, see `MOO_FORMAT.md` of
//! the suite).
//!
//! A file is a sequence of chunks, each a 4-byte ASCII id, a little-endian
//! `u32` payload length and the payload: a `MOO ` header, a `META` chunk,
//! optionally a file-wide `RMSK`, then one `TEST` chunk per test whose
//! payload is a `u32` index followed by sub-chunks (`NAME`, `BYTS`, `INIT`,
//! `FINA`, `CYCL`, `EXCP`, `HASH`); `INIT` and `FINA` in turn hold `REGS`
//! (the 16-bit register file) or `RG32` (the 386's 32-bit one), the masks
//! `RMSK` or `RM32`, `RAM `, `QUEU` and `EA32` chunks. Chunks are always
//! advanced over by their length and unknown ones (`EA32`, `QUEU`, `CYCL`
//! included: the runner has no use for them) are skipped, as the format
//! requires.

use std::fmt::Write as _;

use super::{Arch, Exception, Reg, State, TestCase, NUM_REGS, NUM_REGS_286};

/// Malformed MOO data: what was wrong and where (offset into the
/// decompressed file).
#[derive(Debug, thiserror::Error)]
#[error("at byte {offset}: {reason}")]
pub struct MooError {
    pub offset: usize,
    pub reason: String,
}

/// A parsed MOO file.
#[derive(Clone, Debug)]
pub struct MooFile {
    /// MOO format version (major, minor).
    pub version: (u8, u8),
    /// CPU id of the header (e.g. `C286`, `386E`), trailing spaces removed.
    pub cpu: String,
    /// Test count the header declares.
    pub declared_tests: u32,
    /// Mnemonic from `META`, trailing spaces removed.
    pub mnemonic: Option<String>,
    /// Opcode from `META` (`None` when the file mixes opcodes).
    pub opcode: Option<u32>,
    /// File-wide masks of defined register bits (top-level `RMSK` or
    /// `RM32`).
    pub masks: [Option<u32>; NUM_REGS],
    pub tests: Vec<TestCase>,
}

/// Bounds-checked little-endian reader over one chunk payload.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// File offset of `data[0]`, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], base: usize) -> Self {
        Reader { data, pos: 0, base }
    }

    fn error(&self, reason: impl Into<String>) -> MooError {
        MooError { offset: self.base + self.pos, reason: reason.into() }
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], MooError> {
        if self.data.len() - self.pos < n {
            return Err(
                self.error(format!("{what}: needs {n} bytes, only {} left in the chunk", self.data.len() - self.pos))
            );
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, MooError> {
        Ok(self.bytes(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, MooError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, MooError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos..];
        self.pos = self.data.len();
        s
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }
}

/// One chunk: id, payload and the file offset of the payload.
struct Chunk<'a> {
    id: [u8; 4],
    data: &'a [u8],
    offset: usize,
}

impl Chunk<'_> {
    fn reader(&self) -> Reader<'_> {
        Reader::new(self.data, self.offset)
    }

    fn id_str(&self) -> String {
        String::from_utf8_lossy(&self.id).into_owned()
    }
}

/// Iterator over the chunks packed in a byte range; stops after the first
/// error.
struct Chunks<'a> {
    reader: Reader<'a>,
    failed: bool,
}

fn chunks(data: &[u8], base: usize) -> Chunks<'_> {
    Chunks { reader: Reader::new(data, base), failed: false }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>, MooError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.pos == self.reader.data.len() {
            return None;
        }
        let r = &mut self.reader;
        let result = (|| {
            let id: [u8; 4] = r.bytes(4, "chunk id")?.try_into().expect("4 bytes");
            let len = r.u32("chunk length")? as usize;
            let offset = r.offset();
            let what = format!("payload of {} chunk", String::from_utf8_lossy(&id));
            let data = r.bytes(len, &what)?;
            Ok(Chunk { id, data, offset })
        })();
        self.failed = result.is_err();
        Some(result)
    }
}

/// Parse the (decompressed) contents of a MOO file.
pub fn parse(data: &[u8]) -> Result<MooFile, MooError> {
    let mut iter = chunks(data, 0);
    let header = match iter.next() {
        Some(Ok(c)) if &c.id == b"MOO " => c,
        Some(Ok(c)) => {
            return Err(MooError {
                offset: 0,
                reason: format!("not a MOO file: first chunk is {:?}, not \"MOO \"", c.id_str()),
            })
        }
        Some(Err(e)) => return Err(e),
        None => return Err(MooError { offset: 0, reason: "empty file".into() }),
    };
    let mut r = header.reader();
    let major = r.u8("MOO major version")?;
    let minor = r.u8("MOO minor version")?;
    r.bytes(2, "MOO reserved bytes")?;
    let declared_tests = r.u32("MOO test count")?;
    let cpu = String::from_utf8_lossy(r.bytes(4, "MOO CPU id")?).trim_end().to_string();
    let arch = Arch::from_moo_cpu_id(&cpu);

    let mut file = MooFile {
        version: (major, minor),
        cpu,
        declared_tests,
        mnemonic: None,
        opcode: None,
        masks: [None; NUM_REGS],
        tests: Vec::with_capacity(declared_tests.min(100_000) as usize),
    };
    for chunk in iter {
        let chunk = chunk?;
        match &chunk.id {
            b"META" => {
                let mut r = chunk.reader();
                r.bytes(3, "META versions and CPU type")?;
                let opcode = r.u32("META opcode")?;
                let mnemonic =
                    String::from_utf8_lossy(r.bytes(8, "META mnemonic")?).trim_end_matches([' ', '\0']).to_string();
                file.opcode = (opcode != u32::MAX).then_some(opcode);
                file.mnemonic = (!mnemonic.is_empty()).then_some(mnemonic);
            }
            b"RMSK" => file.masks = read_masks16(&chunk)?,
            b"RM32" => file.masks = read_regs32(&chunk)?,
            b"TEST" => file.tests.push(parse_test(&chunk, arch)?),
            _ => {}
        }
    }
    if file.tests.len() != declared_tests as usize {
        return Err(MooError {
            offset: data.len(),
            reason: format!(
                "the header declares {declared_tests} tests but the file holds {} (truncated?)",
                file.tests.len()
            ),
        });
    }
    Ok(file)
}

/// A `TEST` chunk. `arch` is the header's; a test whose `INIT` holds an
/// `RG32` chunk is a 386 test whatever the header says.
fn parse_test(chunk: &Chunk, arch: Arch) -> Result<TestCase, MooError> {
    let mut r = chunk.reader();
    let idx = r.u32("TEST index")?;
    let body_offset = r.offset();
    let body = r.rest();
    let mut name = String::new();
    let mut bytes = None;
    let mut initial = None;
    let mut final_ = None;
    let mut masks = [None; NUM_REGS];
    let mut exception = None;
    let mut hash = String::new();
    for sub in chunks(body, body_offset) {
        let sub = sub?;
        let mut r = sub.reader();
        match &sub.id {
            b"NAME" => {
                let len = r.u32("NAME length")? as usize;
                name = String::from_utf8_lossy(r.bytes(len, "NAME string")?).into_owned();
            }
            b"BYTS" => {
                let len = r.u32("BYTS length")? as usize;
                bytes = Some(r.bytes(len, "BYTS bytes")?.to_vec());
            }
            b"INIT" => initial = Some(parse_state(&sub)?),
            b"FINA" => {
                let parsed = parse_state(&sub)?;
                final_ = Some(parsed.state);
                masks = parsed.masks;
            }
            b"EXCP" => {
                let number = r.u8("EXCP number")?;
                let flag_address = r.u32("EXCP flag address")?;
                exception = Some(Exception { number, flag_address });
            }
            b"HASH" => {
                hash.clear();
                for b in r.bytes(20, "HASH")? {
                    let _ = write!(hash, "{b:02x}");
                }
            }
            _ => {}
        }
    }
    let missing = |what: &str| MooError { offset: chunk.offset, reason: format!("TEST {idx} has no {what} chunk") };
    let initial = initial.ok_or_else(|| missing("INIT"))?;
    Ok(TestCase {
        arch: if initial.regs32 { Arch::I386 } else { arch },
        idx,
        name,
        bytes: bytes.ok_or_else(|| missing("BYTS"))?,
        initial: initial.state,
        final_: final_.ok_or_else(|| missing("FINA"))?,
        exception,
        hash,
        masks,
        undefined_ram: Vec::new(),
    })
}

/// What an `INIT` or `FINA` chunk holds.
struct ParsedState {
    state: State,
    /// Per-test register masks (`RMSK` or `RM32`).
    masks: [Option<u32>; NUM_REGS],
    /// The registers came as an `RG32` chunk.
    regs32: bool,
}

/// An `INIT` or `FINA` chunk: the state and any per-test register masks.
fn parse_state(chunk: &Chunk) -> Result<ParsedState, MooError> {
    let mut parsed = ParsedState { state: State::default(), masks: [None; NUM_REGS], regs32: false };
    let state = &mut parsed.state;
    for sub in chunks(chunk.data, chunk.offset) {
        let sub = sub?;
        match &sub.id {
            b"REGS" => state.regs = read_regs16(&sub)?.map(|v| v.map(u32::from)),
            b"RG32" => {
                let mut regs = read_regs32(&sub)?;
                // Selectors are 16 bits; the format says to ignore the rest.
                for r in Reg::ALL.into_iter().filter(|r| r.is_segment()) {
                    if let Some(v) = &mut regs[r.index()] {
                        *v &= 0xFFFF;
                    }
                }
                state.regs = regs;
                parsed.regs32 = true;
            }
            b"RMSK" => parsed.masks = read_masks16(&sub)?,
            b"RM32" => parsed.masks = read_regs32(&sub)?,
            b"RAM " => {
                let mut r = sub.reader();
                let count = r.u32("RAM entry count")? as usize;
                if count > sub.data.len() / 5 {
                    return Err(
                        r.error(format!("RAM entry count {count} does not fit in a {}-byte chunk", sub.data.len()))
                    );
                }
                state.ram.reserve(count);
                for _ in 0..count {
                    let addr = r.u32("RAM address")?;
                    let value = r.u8("RAM value")?;
                    state.ram.push((addr, value));
                }
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// A `REGS` or `RMSK` chunk: a `u16` bitmask in the 286 register order
/// (the first [`NUM_REGS_286`] of [`Reg::ALL`]), then one `u16` per set
/// bit.
fn read_regs16(chunk: &Chunk) -> Result<[Option<u16>; NUM_REGS], MooError> {
    let mut r = chunk.reader();
    let mask = r.u16("register bitmask")?;
    let mut regs = [None; NUM_REGS];
    for (bit, reg) in regs.iter_mut().take(NUM_REGS_286).enumerate() {
        if mask & (1 << bit) != 0 {
            *reg = Some(r.u16("register value")?);
        }
    }
    Ok(regs)
}

/// An `RMSK` chunk: masks of the 16-bit registers, which leave the upper
/// half of a 32-bit register defined.
fn read_masks16(chunk: &Chunk) -> Result<[Option<u32>; NUM_REGS], MooError> {
    Ok(read_regs16(chunk)?.map(|m| m.map(|m| 0xFFFF_0000 | m as u32)))
}

/// An `RG32` or `RM32` chunk: a `u32` bitmask in the 386 register order
/// ([`Reg::ORDER_386`]: cr0, cr3, eax, ebx, ecx, edx, esi, edi, ebp, esp,
/// cs, ds, es, fs, gs, ss, eip, eflags, dr6, dr7), then one `u32` per set
/// bit. Bits past dr7 (none are defined in MOO 1.1) come last in the order;
/// their values are ignored.
fn read_regs32(chunk: &Chunk) -> Result<[Option<u32>; NUM_REGS], MooError> {
    let mut r = chunk.reader();
    let mask = r.u32("register bitmask")?;
    let mut regs = [None; NUM_REGS];
    for (bit, reg) in Reg::ORDER_386.iter().enumerate() {
        if mask & (1 << bit) != 0 {
            regs[reg.index()] = Some(r.u32("register value")?);
        }
    }
    Ok(regs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::singlestep::Reg;

    pub(crate) fn chunk(id: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn regs(mask: u16, values: &[u16]) -> Vec<u8> {
        let mut v = mask.to_le_bytes().to_vec();
        for x in values {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    fn ram(entries: &[(u32, u8)]) -> Vec<u8> {
        let mut v = (entries.len() as u32).to_le_bytes().to_vec();
        for &(a, b) in entries {
            v.extend_from_slice(&a.to_le_bytes());
            v.push(b);
        }
        v
    }

    /// A two-test MOO file: `cmc` (F5 F4), the second with an exception
    /// record, a flags mask and unknown chunks in every position.
    pub(crate) fn sample_moo() -> Vec<u8> {
        let mut header = vec![1, 1, 0, 0];
        header.extend_from_slice(&2u32.to_le_bytes());
        header.extend_from_slice(b"C286");
        let mut meta = vec![1, 0, 6];
        meta.extend_from_slice(&0xF5u32.to_le_bytes());
        meta.extend_from_slice(b"cmc     ");
        meta.extend_from_slice(&[0; 16]);

        let all: Vec<u16> = (0..14).map(|i| 0x100 + i).collect();
        let mut tests = Vec::new();
        for idx in 0..2u32 {
            let mut init = chunk(b"REGS", &regs(0x3FFF, &all));
            init.extend(chunk(b"RAM ", &ram(&[(0x1000, 0xF5), (0x1001, 0xF4)])));
            init.extend(chunk(b"QUEU", &[0, 0, 0, 0]));
            let mut fina = chunk(b"REGS", &regs((1 << 12) | (1 << 13), &[0x10E, 0x0003]));
            if idx == 1 {
                fina.extend(chunk(b"RMSK", &regs(1 << 13, &[0xF7FF])));
            }
            fina.extend(chunk(b"ZZZZ", &[1, 2, 3]));
            fina.extend(chunk(b"RAM ", &ram(&[(0x2000, 0x55)])));

            let mut body = idx.to_le_bytes().to_vec();
            body.extend(chunk(b"GMET", &[0; 10]));
            let mut name = 3u32.to_le_bytes().to_vec();
            name.extend_from_slice(b"cmc");
            body.extend(chunk(b"NAME", &name));
            body.extend(chunk(b"BYTS", &[2, 0, 0, 0, 0xF5, 0xF4]));
            body.extend(chunk(b"INIT", &init));
            body.extend(chunk(b"FINA", &fina));
            body.extend(chunk(b"CYCL", &[0; 19]));
            if idx == 1 {
                let mut excp = vec![6];
                excp.extend_from_slice(&0x3456u32.to_le_bytes());
                body.extend(chunk(b"EXCP", &excp));
            }
            body.extend(chunk(b"HASH", &[0xAB; 20]));
            tests.extend(chunk(b"TEST", &body));
        }
        let mut file = chunk(b"MOO ", &header);
        file.extend(chunk(b"META", &meta));
        file.extend(chunk(b"RMSK", &regs(1, &[0x00FF])));
        file.extend(tests);
        file
    }

    #[test]
    fn reads_header_meta_and_tests() {
        let f = parse(&sample_moo()).unwrap();
        assert_eq!(f.version, (1, 1));
        assert_eq!(f.cpu, "C286");
        assert_eq!(f.declared_tests, 2);
        assert_eq!(f.mnemonic.as_deref(), Some("cmc"));
        assert_eq!(f.opcode, Some(0xF5));
        assert_eq!(f.masks[Reg::Ax.index()], Some(0xFFFF_00FF));
        assert_eq!(f.masks[Reg::Bx.index()], None);
        assert_eq!(f.tests.len(), 2);

        let t = &f.tests[0];
        assert_eq!(t.idx, 0);
        assert_eq!(t.name, "cmc");
        assert_eq!(t.bytes, vec![0xF5, 0xF4]);
        for &r in Arch::I286.registers() {
            assert_eq!(t.initial.reg(r), Some(0x100 + r.index() as u16), "{r:?}");
        }
        assert_eq!(t.initial.reg(Reg::Fs), None);
        assert_eq!(t.initial.ram, vec![(0x1000, 0xF5), (0x1001, 0xF4)]);
        assert_eq!(t.final_.reg(Reg::Ip), Some(0x10E));
        assert_eq!(t.final_.reg(Reg::Flags), Some(3));
        assert_eq!(t.final_.reg(Reg::Ax), None);
        assert_eq!(t.final_.ram, vec![(0x2000, 0x55)]);
        assert_eq!(t.exception, None);
        assert_eq!(t.hash, "ab".repeat(20));
        assert_eq!(t.masks, [None; NUM_REGS]);

        let t = &f.tests[1];
        assert_eq!(t.idx, 1);
        assert_eq!(t.exception, Some(Exception { number: 6, flag_address: 0x3456 }));
        assert_eq!(t.masks[Reg::Flags.index()], Some(0xFFFF_F7FF));
        assert_eq!(t.arch, Arch::I286);
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let data = sample_moo();
        for cut in [0, 3, 7, 9, 20, data.len() / 2, data.len() - 1] {
            let r = parse(&data[..cut]);
            if cut == 0 {
                assert!(r.is_err());
                continue;
            }
            let err = r.expect_err("truncated data must not parse");
            assert!(err.offset <= cut, "offset {} past cut {cut}", err.offset);
        }
    }

    #[test]
    fn wrong_magic_is_reported() {
        let data = chunk(b"JUNK", &[0; 12]);
        let err = parse(&data).unwrap_err();
        assert!(err.reason.contains("not a MOO file"), "{err}");
    }

    #[test]
    fn ram_count_larger_than_chunk_is_an_error() {
        let init = chunk(b"RAM ", &u32::MAX.to_le_bytes());
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend(chunk(b"INIT", &init));
        let mut header = vec![1, 1, 0, 0];
        header.extend_from_slice(&1u32.to_le_bytes());
        header.extend_from_slice(b"C286");
        let mut data = chunk(b"MOO ", &header);
        data.extend(chunk(b"TEST", &body));
        let err = parse(&data).unwrap_err();
        assert!(err.reason.contains("RAM entry count"), "{err}");
    }

    fn regs32(mask: u32, values: &[u32]) -> Vec<u8> {
        let mut v = mask.to_le_bytes().to_vec();
        for x in values {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    /// A one-test 386 file: `RG32` states, a file-wide and a per-test
    /// `RM32`, an `EA32` chunk, selectors with junk in their upper half and
    /// a mask bit past dr7 (whose value is never read).
    #[test]
    fn reads_the_386_register_file() {
        let mut header = vec![1, 1, 0, 0];
        header.extend_from_slice(&1u32.to_le_bytes());
        header.extend_from_slice(b"386E");
        // All twenty registers: value = 0x1000_0000 + bit.
        let all: Vec<u32> = (0..20).map(|i| 0x1000_0000 + i).collect();
        let mut init = chunk(b"RG32", &regs32(0x000F_FFFF, &all));
        init.extend(chunk(b"EA32", &[0; 23]));
        init.extend(chunk(b"RAM ", &ram(&[(0x10100, 0x66)])));
        // Final: eax (bit 2), eflags (bit 17), and an unknown bit 20.
        let mut fina = chunk(b"RG32", &regs32((1 << 2) | (1 << 17) | (1 << 20), &[7, 0xFFFC_0046, 9]));
        fina.extend(chunk(b"RM32", &regs32(1 << 17, &[0xFFFF_F72A])));
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend(chunk(b"BYTS", &[2, 0, 0, 0, 0x90, 0xF4]));
        body.extend(chunk(b"INIT", &init));
        body.extend(chunk(b"FINA", &fina));
        let mut data = chunk(b"MOO ", &header);
        data.extend(chunk(b"RM32", &regs32(1 << 2, &[0x0000_FFFF])));
        data.extend(chunk(b"TEST", &body));

        let f = parse(&data).unwrap();
        assert_eq!(f.cpu, "386E");
        assert_eq!(f.masks[Reg::Ax.index()], Some(0x0000_FFFF));
        let t = &f.tests[0];
        assert_eq!(t.arch, Arch::I386);
        for (bit, r) in Reg::ORDER_386.iter().enumerate() {
            let v = 0x1000_0000 + bit as u32;
            let want = if r.is_segment() { v & 0xFFFF } else { v };
            assert_eq!(t.initial.reg32(*r), Some(want), "{r:?}");
        }
        assert_eq!(t.final_.reg32(Reg::Ax), Some(7));
        assert_eq!(t.final_.reg32(Reg::Flags), Some(0xFFFC_0046));
        assert_eq!(t.final_.reg32(Reg::Bx), None);
        assert_eq!(t.masks[Reg::Flags.index()], Some(0xFFFF_F72A));
        assert_eq!(t.initial.ram, vec![(0x10100, 0x66)]);
    }

    #[test]
    fn header_cpu_id_names_the_architecture_of_16_bit_tests() {
        // A 386E header with 16-bit REGS still makes a 386 test; a C286
        // header with RG32 too.
        let mut f = sample_moo();
        let at = f.windows(4).position(|w| w == b"C286").unwrap();
        f[at..at + 4].copy_from_slice(b"386E");
        assert!(parse(&f).unwrap().tests.iter().all(|t| t.arch == Arch::I386));
    }

    #[test]
    fn short_rg32_chunk_is_an_error() {
        let init = chunk(b"RG32", &regs32(0b111, &[1, 2]));
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend(chunk(b"INIT", &init));
        let mut header = vec![1, 1, 0, 0];
        header.extend_from_slice(&1u32.to_le_bytes());
        header.extend_from_slice(b"386E");
        let mut data = chunk(b"MOO ", &header);
        data.extend(chunk(b"TEST", &body));
        let err = parse(&data).unwrap_err();
        assert!(err.reason.contains("register value"), "{err}");
    }

    #[test]
    fn test_without_init_is_an_error() {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend(chunk(b"BYTS", &[1, 0, 0, 0, 0xF4]));
        let mut header = vec![1, 1, 0, 0];
        header.extend_from_slice(&1u32.to_le_bytes());
        header.extend_from_slice(b"C286");
        let mut data = chunk(b"MOO ", &header);
        data.extend(chunk(b"TEST", &body));
        let err = parse(&data).unwrap_err();
        assert!(err.reason.contains("no INIT"), "{err}");
    }
}
