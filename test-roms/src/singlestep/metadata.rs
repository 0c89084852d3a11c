//! What the suite says about its files: the 286 suite's `metadata.json`
//! (status and the mask of defined flags per opcode, optionally per ModRM
//! reg field) or the 386 suite's `80386.csv` (one row per opcode and reg
//! field, with the mask of *undefined* flags), the revocation list, and the
//! opcode key a file name encodes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{insn, Error};

/// The opcode (and ModRM reg extension) a test file covers, as its name
/// spells it: `F6.4.json.gz` is opcode `F6` with reg 4, `0F01.MOO.gz` is the
/// two-byte opcode `0F 01`. The 386 suite puts the operand- and
/// address-size prefixes its tests carry before the opcode: `676601.MOO` is
/// opcode `01` under `67` and `66`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpcodeKey {
    /// Upper-case hex as the metadata keys spell it ("F6", "0F01"), without
    /// the size prefixes.
    pub opcode: String,
    pub reg: Option<u8>,
    /// The size prefixes of the name ("", "66", "67", "6766", ...), in the
    /// name's order, upper-case.
    pub prefixes: String,
}

/// The operand-size and address-size prefixes.
const SIZE_PREFIXES: [&str; 2] = ["66", "67"];

impl OpcodeKey {
    /// A key without size prefixes.
    pub fn new(opcode: &str, reg: Option<u8>) -> OpcodeKey {
        OpcodeKey { opcode: opcode.to_ascii_uppercase(), reg, prefixes: String::new() }
    }

    /// Split leading `66`/`67` pairs off upper-case hex digits, as long as
    /// an opcode remains.
    fn split_prefixes(hex: &str) -> (String, String) {
        let mut rest = hex;
        let mut prefixes = String::new();
        while rest.len() > 2 && SIZE_PREFIXES.contains(&&rest[..2]) {
            prefixes.push_str(&rest[..2]);
            rest = &rest[2..];
        }
        (prefixes, rest.to_string())
    }

    /// The key a file name encodes, if it follows the suites' naming: an
    /// even number (2 to 8) of hex digits, optionally `.` and a reg digit.
    pub fn from_file_name(path: &Path) -> Option<OpcodeKey> {
        let name = path.file_name()?.to_str()?;
        let mut parts = name.split('.');
        let hex = parts.next()?;
        let valid = matches!(hex.len(), 2 | 4 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return None;
        }
        let reg = parts.next().filter(|p| p.len() == 1).and_then(|p| p.parse::<u8>().ok()).filter(|&r| r < 8);
        let (prefixes, opcode) = Self::split_prefixes(&hex.to_ascii_uppercase());
        Some(OpcodeKey { opcode, reg, prefixes })
    }

    /// The key of a MOO `META` opcode field (`0x0F01` for a two-byte one,
    /// `0x660FB6` with a size prefix).
    pub fn from_moo_opcode(opcode: u32) -> Option<OpcodeKey> {
        let hex = match opcode {
            0..=0xFF => format!("{opcode:02X}"),
            0x100..=0xFFFF => format!("{opcode:04X}"),
            0x1_0000..=0xFF_FFFF => format!("{opcode:06X}"),
            _ => return None,
        };
        let (prefixes, opcode) = Self::split_prefixes(&hex);
        Some(OpcodeKey { opcode, reg: None, prefixes })
    }

    /// The key of an instruction's bytes: legacy prefixes skipped (the size
    /// prefixes recorded), `0F` opcodes taken as two bytes. For tests in
    /// files whose name carries no key.
    pub fn from_bytes(bytes: &[u8]) -> Option<OpcodeKey> {
        let (at, opcode) = insn::opcode_of(bytes)?;
        let mut prefixes = String::new();
        for p in [0x67, 0x66] {
            if bytes[..at].contains(&p) {
                prefixes.push_str(&format!("{p:02X}"));
            }
        }
        Some(OpcodeKey {
            opcode: if opcode > 0xFF { format!("{opcode:04X}") } else { format!("{opcode:02X}") },
            reg: None,
            prefixes,
        })
    }

    /// The opcode as a number (`0x0F01` for "0F01"), size prefixes left
    /// out.
    pub fn value(&self) -> u32 {
        u32::from_str_radix(&self.opcode, 16).unwrap_or(u32::MAX)
    }

    /// The name carries the operand-size prefix `66`.
    pub fn operand_prefix(&self) -> bool {
        self.prefixes.as_bytes().chunks(2).any(|p| p == b"66")
    }

    /// The name carries the address-size prefix `67`.
    pub fn address_prefix(&self) -> bool {
        self.prefixes.as_bytes().chunks(2).any(|p| p == b"67")
    }
}

impl fmt::Display for OpcodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.prefixes, self.opcode)?;
        match self.reg {
            Some(r) => write!(f, ".{r}"),
            None => Ok(()),
        }
    }
}

/// What the metadata says about one opcode (or opcode and reg field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpcodeInfo {
    /// "normal", "alias", "undocumented", "undefined", "fpu", "prefix", ...
    pub status: Option<String>,
    /// Undefined flags spelled out ("o..szapc" style), for listings.
    pub flags: Option<String>,
    /// Mask of the defined FLAGS bits (the low 16 bits of EFLAGS); `None`
    /// means all bits are defined.
    pub flags_mask: Option<u32>,
    /// The mnemonic, where the source names it (`80386.csv`).
    pub mnemonic: Option<String>,
}

/// The entries of one opcode: one for all reg fields and/or one per reg
/// field (the 286 metadata uses one or the other; a CSV row without `ex`
/// gives the first, rows with `ex` the second).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    plain: Option<OpcodeInfo>,
    by_reg: BTreeMap<u8, OpcodeInfo>,
}

/// The opcode table of a suite: its `metadata.json` (286) or `80386.csv`
/// (386).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    opcodes: HashMap<String, Entry>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    opcodes: HashMap<String, RawEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawEntry {
    ByReg { reg: BTreeMap<String, RawInfo> },
    Plain(RawInfo),
}

#[derive(Deserialize)]
struct RawInfo {
    status: Option<String>,
    flags: Option<String>,
    #[serde(rename = "flags-mask")]
    flags_mask: Option<u32>,
}

impl From<RawInfo> for OpcodeInfo {
    fn from(r: RawInfo) -> Self {
        OpcodeInfo { status: r.status, flags: r.flags, flags_mask: r.flags_mask, mnemonic: None }
    }
}

/// A malformed `80386.csv`: the line (1-based, of the record's start) and
/// what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

/// Split CSV text into records of fields (RFC 4180): fields separated by
/// commas, records by LF or CRLF; a field in double quotes may hold commas,
/// line breaks and doubled quotes (`""` for one). Blank lines are skipped.
/// Each record comes with the line it starts on.
pub fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut start_line = 1;
    let mut in_quotes = false;
    // A quoted field just ended: only a separator may follow.
    let mut after_quote = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    in_quotes = false;
                    after_quote = true;
                }
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                after_quote = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                let record = std::mem::take(&mut fields);
                if !(record.len() == 1 && record[0].trim().is_empty()) {
                    records.push((start_line, record));
                }
                line += 1;
                start_line = line;
                after_quote = false;
            }
            '"' if field.trim().is_empty() && !after_quote => {
                field.clear();
                in_quotes = true;
            }
            c if after_quote && !c.is_whitespace() => {
                return Err(CsvError { line, reason: format!("{c:?} after the closing quote of a field") });
            }
            _ if after_quote => {}
            c => field.push(c),
        }
    }
    if in_quotes {
        return Err(CsvError { line: start_line, reason: "a quoted field is not closed".into() });
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        if !(fields.len() == 1 && fields[0].trim().is_empty()) {
            records.push((start_line, fields));
        }
    }
    Ok(records)
}

/// A CSV bool: `1` (or `true`, `y`, `yes`, `x`) is true; `0` or empty false.
fn csv_bool(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "y" | "yes" | "x")
}

/// A hex field, with or without `0x`.
fn csv_hex(v: &str) -> Option<u32> {
    let v = v.trim();
    let v = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")).unwrap_or(v);
    u32::from_str_radix(v, 16).ok()
}

/// The undefined flags of a mask, "o..szapc" style (OF DF IF SF ZF AF PF
/// CF, a dot where the flag is defined), as `metadata.json` spells them.
fn undefined_flag_letters(undefined: u32) -> String {
    const LETTERS: [(u32, char); 8] = [
        (1 << 11, 'o'),
        (1 << 10, 'd'),
        (1 << 9, 'i'),
        (1 << 7, 's'),
        (1 << 6, 'z'),
        (1 << 4, 'a'),
        (1 << 2, 'p'),
        (1 << 0, 'c'),
    ];
    LETTERS.iter().map(|&(bit, c)| if undefined & bit != 0 { c } else { '.' }).collect()
}

impl Metadata {
    /// Parse the text of a `metadata.json`.
    pub fn parse(text: &str) -> Result<Metadata, serde_json::Error> {
        let raw: RawMetadata = serde_json::from_str(text)?;
        let mut opcodes = HashMap::new();
        for (key, entry) in raw.opcodes {
            let entry = match entry {
                RawEntry::Plain(info) => Entry { plain: Some(info.into()), by_reg: BTreeMap::new() },
                RawEntry::ByReg { reg } => Entry {
                    plain: None,
                    by_reg: reg
                        .into_iter()
                        .filter_map(|(r, info)| Some((r.parse::<u8>().ok()?, info.into())))
                        .collect(),
                },
            };
            opcodes.insert(key.to_ascii_uppercase(), entry);
        }
        Ok(Metadata { opcodes })
    }

    /// Parse the text of the 386 suite's `80386.csv`: a header row naming
    /// the columns, then one row per opcode (`op`, two or four hex digits)
    /// and ModRM extension (`ex`, 0-7 or empty). Of the columns only `op`
    /// is required; `ex`, `f_umask` (hex mask of the flags the instruction
    /// leaves undefined, the inverse of the 286 metadata's `flags-mask`),
    /// `mnemonic`, `ud` and `pf` are used; unknown ones are ignored. Rows
    /// repeating an opcode and extension (forms differing only in operand
    /// size) are merged: a flag undefined in any of them is undefined.
    pub fn parse_csv(text: &str) -> Result<Metadata, CsvError> {
        let mut records = csv_records(text)?.into_iter();
        let Some((_, header)) = records.next() else {
            return Err(CsvError { line: 1, reason: "empty file: no header row".into() });
        };
        let column = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
        let Some(op_col) = column("op") else {
            return Err(CsvError { line: 1, reason: "the header row has no `op` column".into() });
        };
        let (ex_col, umask_col, mnemonic_col) = (column("ex"), column("f_umask"), column("mnemonic"));
        let (ud_col, pf_col) = (column("ud"), column("pf"));

        let mut opcodes: HashMap<String, Entry> = HashMap::new();
        for (line, row) in records {
            let get = |col: Option<usize>| col.and_then(|c| row.get(c)).map(|v| v.trim()).unwrap_or("");
            let op = get(Some(op_col));
            let op = op.strip_prefix("0x").or_else(|| op.strip_prefix("0X")).unwrap_or(op);
            if !matches!(op.len(), 2 | 4) || !op.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(CsvError { line, reason: format!("op {op:?} is not two or four hex digits") });
            }
            let ex = match get(ex_col) {
                "" => None,
                v => match v.parse::<u8>() {
                    Ok(r) if r < 8 => Some(r),
                    _ => return Err(CsvError { line, reason: format!("ex {v:?} is not a reg field 0-7") }),
                },
            };
            let undefined = match get(umask_col) {
                "" => 0,
                v => csv_hex(v)
                    .filter(|&m| m <= 0xFFFF)
                    .ok_or_else(|| CsvError { line, reason: format!("f_umask {v:?} is not a 16-bit hex mask") })?,
            };
            let status = if csv_bool(get(ud_col)) {
                "undefined"
            } else if csv_bool(get(pf_col)) {
                "prefix"
            } else {
                "normal"
            };
            let mnemonic = Some(get(mnemonic_col)).filter(|m| !m.is_empty()).map(str::to_string);
            let info = OpcodeInfo {
                status: Some(status.into()),
                flags: Some(undefined_flag_letters(undefined)),
                flags_mask: (undefined != 0).then_some(0xFFFF & !undefined),
                mnemonic,
            };
            let entry = opcodes.entry(op.to_ascii_uppercase()).or_default();
            let existing = match ex {
                None => entry.plain.get_or_insert_with(|| info.clone()),
                Some(r) => entry.by_reg.entry(r).or_insert_with(|| info.clone()),
            };
            if *existing != info {
                let defined = existing.flags_mask.unwrap_or(0xFFFF) & info.flags_mask.unwrap_or(0xFFFF);
                existing.flags_mask = (defined != 0xFFFF).then_some(defined);
                existing.flags = Some(undefined_flag_letters(0xFFFF & !defined));
            }
        }
        Ok(Metadata { opcodes })
    }

    /// Read a `metadata.json`, or an `80386.csv` (any name ending in
    /// `.csv`).
    pub fn load(path: &Path) -> Result<Metadata, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv {
            Self::parse_csv(&text).map_err(|source| Error::OpcodeDb { path: path.to_path_buf(), source })
        } else {
            Self::parse(&text).map_err(|source| Error::Metadata { path: path.to_path_buf(), source })
        }
    }

    /// The entry for an opcode (size prefixes play no part). For opcodes
    /// listed per reg field, the reg of the key is used, else `modrm_reg`
    /// (read from the test's bytes); an entry for all reg fields serves
    /// where there is none for the reg.
    pub fn lookup(&self, key: &OpcodeKey, modrm_reg: Option<u8>) -> Option<&OpcodeInfo> {
        let entry = self.opcodes.get(&key.opcode)?;
        let by_reg = key.reg.or(modrm_reg).and_then(|r| entry.by_reg.get(&r));
        by_reg.or(entry.plain.as_ref())
    }

    /// Number of opcodes listed.
    pub fn len(&self) -> usize {
        self.opcodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.opcodes.is_empty()
    }
}

/// Hashes of tests found to be bad after publication.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationList {
    hashes: HashSet<String>,
}

impl RevocationList {
    /// Parse the list: one hex hash per line; blank lines and lines starting
    /// with `#` are ignored.
    pub fn parse(text: &str) -> RevocationList {
        let hashes = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_ascii_lowercase)
            .collect();
        RevocationList { hashes }
    }

    /// Read a `revocation_list.txt`.
    pub fn load(path: &Path) -> Result<RevocationList, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Ok(Self::parse(&text))
    }

    /// True when the test with this (hex) hash is revoked.
    pub fn contains(&self, hash: &str) -> bool {
        !hash.is_empty() && self.hashes.contains(&hash.to_ascii_lowercase())
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// `name` beside the test file, or in the directory above (the upstream
/// layout keeps `revocation_list.txt` one level above the test files).
pub fn find_beside(test_file: &Path, name: &str) -> Option<PathBuf> {
    find_nearest(test_file, &[name])
}

/// The first of `names` beside the test file, else the first of them in
/// the directory above.
pub fn find_nearest(test_file: &Path, names: &[&str]) -> Option<PathBuf> {
    let dir = test_file.parent()?;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    for dir in [dir.to_path_buf(), dir.join("..")] {
        if let Some(found) = names.iter().map(|name| dir.join(name)).find(|p| p.is_file()) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
        "version": "1.0.0",
        "opcodes": {
            "00": {"status": "normal", "arch": "86"},
            "08": {"status": "normal", "arch": "86", "flags": ".....a..", "flags-mask": 65519},
            "f6": {"reg": {
                "4": {"status": "normal", "flags": "...szap.", "flags-mask": 65323},
                "6": {"status": "normal", "flags": "o..szapc", "flags-mask": 63274}
            }},
            "0F01": {"reg": {"0": {"status": "normal"}}}
        }
    }"#;

    #[test]
    fn file_names_give_opcode_and_reg() {
        let k = OpcodeKey::from_file_name(Path::new("dir/F6.4.json.gz")).unwrap();
        assert_eq!((k.opcode.as_str(), k.reg), ("F6", Some(4)));
        assert_eq!(k.to_string(), "F6.4");
        let k = OpcodeKey::from_file_name(Path::new("00.MOO.gz")).unwrap();
        assert_eq!((k.opcode.as_str(), k.reg), ("00", None));
        let k = OpcodeKey::from_file_name(Path::new("0f01.json")).unwrap();
        assert_eq!((k.opcode.as_str(), k.reg), ("0F01", None));
        assert_eq!(k.value(), 0x0F01);
        assert_eq!(OpcodeKey::from_file_name(Path::new("metadata.json")), None);
        assert_eq!(OpcodeKey::from_file_name(Path::new("add.json")), None);
    }

    #[test]
    fn file_names_of_the_386_suite_carry_size_prefixes() {
        let key = |name: &str| OpcodeKey::from_file_name(Path::new(name)).unwrap();
        let k = key("v1_ex_real_mode/6601.MOO.gz");
        assert_eq!((k.opcode.as_str(), k.prefixes.as_str(), k.reg), ("01", "66", None));
        assert!(k.operand_prefix() && !k.address_prefix());
        assert_eq!(k.value(), 0x01);
        let k = key("676601.MOO");
        assert_eq!((k.opcode.as_str(), k.prefixes.as_str()), ("01", "6766"));
        assert!(k.operand_prefix() && k.address_prefix());
        assert_eq!(k.to_string(), "676601");
        let k = key("660FB6.MOO.gz");
        assert_eq!((k.opcode.as_str(), k.prefixes.as_str()), ("0FB6", "66"));
        let k = key("67660FBA.5.MOO.gz");
        assert_eq!((k.opcode.as_str(), k.prefixes.as_str(), k.reg), ("0FBA", "6766", Some(5)));
        assert_eq!(k.to_string(), "67660FBA.5");
        let k = key("80.4.MOO");
        assert_eq!((k.opcode.as_str(), k.prefixes.as_str(), k.reg), ("80", "", Some(4)));
        let k = key("0FA0.MOO");
        assert_eq!((k.opcode.as_str(), k.value()), ("0FA0", 0x0FA0));
        // A lone 66 or 67 is an opcode, not a prefix.
        assert_eq!(key("66.json").opcode, "66");
        assert_eq!(OpcodeKey::from_file_name(Path::new("0102030405.MOO")), None);
    }

    #[test]
    fn keys_from_moo_opcode_and_bytes() {
        let k = OpcodeKey::from_moo_opcode(0x660FB6).unwrap();
        assert_eq!((k.opcode.as_str(), k.prefixes.as_str()), ("0FB6", "66"));
        let k = OpcodeKey::from_bytes(&[0x26, 0x66, 0x67, 0x01, 0x00, 0xF4]).unwrap();
        assert_eq!((k.opcode.as_str(), k.prefixes.as_str()), ("01", "6766"));
        assert_eq!(OpcodeKey::from_moo_opcode(0xD4).unwrap().opcode, "D4");
        assert_eq!(OpcodeKey::from_moo_opcode(0x0F01).unwrap().opcode, "0F01");
        assert_eq!(OpcodeKey::from_moo_opcode(u32::MAX), None);
        assert_eq!(OpcodeKey::from_bytes(&[0x2E, 0xF0, 0x9D, 0xF4]).unwrap().opcode, "9D");
        assert_eq!(OpcodeKey::from_bytes(&[0x0F, 0x01, 0xE0]).unwrap().opcode, "0F01");
    }

    #[test]
    fn lookup_plain_and_per_reg_entries() {
        let m = Metadata::parse(SAMPLE).unwrap();
        assert_eq!(m.len(), 4);
        let key = |op: &str, reg| OpcodeKey::new(op, reg);
        assert_eq!(m.lookup(&key("00", None), None).unwrap().flags_mask, None);
        assert_eq!(m.lookup(&key("08", None), Some(3)).unwrap().flags_mask, Some(65519));
        // Per-reg entries: the file's reg wins, else the test's ModRM reg.
        assert_eq!(m.lookup(&key("F6", Some(4)), Some(6)).unwrap().flags_mask, Some(65323));
        assert_eq!(m.lookup(&key("F6", None), Some(6)).unwrap().flags_mask, Some(63274));
        assert_eq!(m.lookup(&key("F6", None), None), None);
        assert_eq!(m.lookup(&key("F6", Some(1)), None), None);
        assert_eq!(m.lookup(&key("0F01", Some(0)), None).unwrap().status.as_deref(), Some("normal"));
        assert_eq!(m.lookup(&key("FF", None), None), None);
    }

    /// An `80386.csv` excerpt: extra and reordered columns, quoted fields
    /// with commas, doubled quotes and a line break, CRLF line ends, a
    /// blank line, a duplicated opcode, an opcode with and without `ex`.
    const CSV: &str = "op,re,g,ex,ud,pf,66,67,fc,pm,lck,rep,so,reg,m,mnemonic,f_umask,desc,extra\r\n\
        00,0,,,0,0,0,1,0,0,1,0,1,1,1,ADD,,\"Add r8 to r/m8\",x\r\n\
        \r\n\
        F6,0,3,4,0,0,0,1,,,,,1,1,1,MUL,0x08D4,\"Unsigned multiply (AX = AL * r/m8), \"\"MUL\"\"\"\r\n\
        F6,0,3,6,0,0,0,1,,,,,1,1,1,DIV,08d5,\"Unsigned divide,\nsecond line\"\r\n\
        0fbc,0,,,0,0,1,1,,,,,1,1,1,BSF,08D5,Bit scan forward\r\n\
        0FBA,0,8,4,0,0,1,1,,,,,1,1,1,BT,08D4,\r\n\
        0FBA,0,8,,1,0,1,1,,,,,1,1,1,,,\"(bad)\"\r\n\
        D4,0,,,0,0,0,0,,,,,0,0,0,AAM,0811,\r\n\
        D4,0,,,0,0,0,0,,,,,0,0,0,AAM,0001,second form\r\n\
        66,0,,,0,1,0,0,,,,,,,,OPSIZE,,prefix";

    #[test]
    fn csv_records_follow_rfc_4180_quoting() {
        let records = csv_records("a,\"b,c\",\"d\"\"e\"\r\n\n\"multi\nline\",,\n last").unwrap();
        let fields: Vec<Vec<&str>> = records.iter().map(|(_, r)| r.iter().map(String::as_str).collect()).collect();
        assert_eq!(fields, vec![vec!["a", "b,c", "d\"e"], vec!["multi\nline", "", ""], vec![" last"]]);
        let lines: Vec<usize> = records.iter().map(|&(l, _)| l).collect();
        assert_eq!(lines, [1, 3, 5]);
        let err = csv_records("a,\"open\n").unwrap_err();
        assert!(err.reason.contains("not closed"), "{err}");
        let err = csv_records("a,\"b\"c\n").unwrap_err();
        assert!(err.to_string().starts_with("line 1: "), "{err}");
    }

    #[test]
    fn opcode_database_gives_undefined_flags_per_opcode_and_extension() {
        let m = Metadata::parse_csv(CSV).unwrap();
        assert_eq!(m.len(), 6);
        let key = |op: &str, reg| OpcodeKey::new(op, reg);
        let add = m.lookup(&key("00", None), None).unwrap();
        assert_eq!((add.flags_mask, add.mnemonic.as_deref()), (None, Some("ADD")));
        assert_eq!(add.flags.as_deref(), Some("........"));
        // f_umask is the undefined flags: the defined mask is its inverse.
        let mul = m.lookup(&key("F6", Some(4)), None).unwrap();
        assert_eq!(mul.flags_mask, Some(0xFFFF & !0x08D4));
        assert_eq!(mul.flags.as_deref(), Some("o..szap."));
        let div = m.lookup(&key("F6", None), Some(6)).unwrap();
        assert_eq!(div.flags_mask, Some(0xFFFF & !0x08D5));
        assert_eq!(m.lookup(&key("F6", Some(5)), None), None);
        // Lower-case hex, and size prefixes play no part.
        let k = OpcodeKey::from_file_name(Path::new("67660FBC.MOO")).unwrap();
        assert_eq!(m.lookup(&k, None).unwrap().mnemonic.as_deref(), Some("BSF"));
        // A reg-specific row wins; the row without ex covers the others.
        assert_eq!(m.lookup(&key("0FBA", Some(4)), None).unwrap().mnemonic.as_deref(), Some("BT"));
        let bad = m.lookup(&key("0FBA", Some(1)), None).unwrap();
        assert_eq!((bad.status.as_deref(), bad.flags_mask), (Some("undefined"), None));
        // Duplicate rows: a flag undefined in either is undefined.
        assert_eq!(m.lookup(&key("D4", None), None).unwrap().flags_mask, Some(0xFFFF & !0x0811));
        assert_eq!(m.lookup(&key("66", None), None).unwrap().status.as_deref(), Some("prefix"));
    }

    #[test]
    fn malformed_opcode_database_is_an_error_naming_the_line() {
        let err = Metadata::parse_csv("mnemonic,f_umask\nADD,0\n").unwrap_err();
        assert!(err.reason.contains("no `op` column"), "{err}");
        let err = Metadata::parse_csv("op,f_umask\n00,\n0G,0\n").unwrap_err();
        assert_eq!(err.line, 3);
        let err = Metadata::parse_csv("op,f_umask\n00,zz\n").unwrap_err();
        assert!(err.reason.contains("f_umask"), "{err}");
        let err = Metadata::parse_csv("op,ex\n80,9\n").unwrap_err();
        assert!(err.reason.contains("ex"), "{err}");
        assert!(Metadata::parse_csv("").is_err());
        // Only the header: an empty table.
        assert!(Metadata::parse_csv("op,ex,f_umask\n").unwrap().is_empty());
    }

    #[test]
    fn the_nearest_table_wins() {
        let dir = std::env::temp_dir().join(format!("ferrite-nearest-{}", std::process::id()));
        let sub = dir.join("v1_ex_real_mode");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.join("metadata.json"), "{}").unwrap();
        std::fs::write(sub.join("80386.csv"), "op\n").unwrap();
        let names = ["metadata.json", "80386.csv"];
        assert_eq!(find_nearest(&sub.join("01.MOO"), &names), Some(sub.join("80386.csv")));
        std::fs::remove_file(sub.join("80386.csv")).unwrap();
        assert_eq!(find_nearest(&sub.join("01.MOO"), &names), Some(sub.join("..").join("metadata.json")));
        assert_eq!(find_nearest(&sub.join("01.MOO"), &["none.csv"]), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn load_picks_the_parser_by_extension() {
        let dir = std::env::temp_dir().join(format!("ferrite-metadata-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("80386.csv"), CSV).unwrap();
        std::fs::write(dir.join("metadata.json"), SAMPLE).unwrap();
        assert_eq!(Metadata::load(&dir.join("80386.csv")).unwrap().len(), 6);
        assert_eq!(Metadata::load(&dir.join("metadata.json")).unwrap().len(), 4);
        std::fs::write(dir.join("bad.csv"), "op\nxyz\n").unwrap();
        let err = Metadata::load(&dir.join("bad.csv")).unwrap_err();
        assert!(err.full_message().contains("bad.csv: invalid opcode database: line 2: "), "{}", err.full_message());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        assert!(Metadata::parse("{\"opcodes\": {\"00\": 5}}").is_err());
        assert!(Metadata::parse("not json").is_err());
    }

    #[test]
    fn revocation_list_skips_comments_and_blank_lines() {
        let list = RevocationList::parse(
            "# Revocation list.\n# Hopefully this list stays empty!\n\n  ABCDEF0123  \n626be508\n",
        );
        assert_eq!(list.len(), 2);
        assert!(list.contains("abcdef0123"));
        assert!(list.contains("626BE508"));
        assert!(!list.contains("# Revocation list."));
        assert!(!list.contains(""));
    }
}
