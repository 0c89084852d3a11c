//! What the suite says about its files: `metadata.json` (status and the mask
//! of defined flags per opcode, optionally per ModRM reg field), the
//! revocation list, and the opcode key a file name encodes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{insn, Error};

/// The opcode (and ModRM reg extension) a test file covers, as its name
/// spells it: `F6.4.json.gz` is opcode `F6` with reg 4, `0F01.MOO.gz` is the
/// two-byte opcode `0F 01`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpcodeKey {
    /// Upper-case hex as the metadata keys spell it ("F6", "0F01").
    pub opcode: String,
    pub reg: Option<u8>,
}

impl OpcodeKey {
    /// The key a file name encodes, if it follows the suite's naming.
    pub fn from_file_name(path: &Path) -> Option<OpcodeKey> {
        let name = path.file_name()?.to_str()?;
        let mut parts = name.split('.');
        let opcode = parts.next()?;
        let valid_opcode = matches!(opcode.len(), 2 | 4 | 6) && opcode.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid_opcode {
            return None;
        }
        let reg = parts.next().filter(|p| p.len() == 1).and_then(|p| p.parse::<u8>().ok()).filter(|&r| r < 8);
        Some(OpcodeKey { opcode: opcode.to_ascii_uppercase(), reg })
    }

    /// The key of a MOO `META` opcode field (`0x0F01` for a two-byte one).
    pub fn from_moo_opcode(opcode: u32) -> Option<OpcodeKey> {
        let opcode = match opcode {
            0..=0xFF => format!("{opcode:02X}"),
            0x100..=0xFFFF => format!("{opcode:04X}"),
            _ => return None,
        };
        Some(OpcodeKey { opcode, reg: None })
    }

    /// The key of an instruction's bytes: legacy prefixes skipped, `0F`
    /// opcodes taken as two bytes. For tests in files whose name carries no
    /// key.
    pub fn from_bytes(bytes: &[u8]) -> Option<OpcodeKey> {
        let (_, opcode) = insn::opcode_of(bytes)?;
        Some(OpcodeKey {
            opcode: if opcode > 0xFF { format!("{opcode:04X}") } else { format!("{opcode:02X}") },
            reg: None,
        })
    }

    /// The opcode as a number (`0x0F01` for "0F01").
    pub fn value(&self) -> u32 {
        u32::from_str_radix(&self.opcode, 16).unwrap_or(u32::MAX)
    }
}

impl fmt::Display for OpcodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reg {
            Some(r) => write!(f, "{}.{r}", self.opcode),
            None => f.write_str(&self.opcode),
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
    /// Mask of the defined FLAGS bits; `None` means all bits are defined.
    pub flags_mask: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Plain(OpcodeInfo),
    ByReg(BTreeMap<u8, OpcodeInfo>),
}

/// The `opcodes` table of a suite's `metadata.json`.
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
        OpcodeInfo { status: r.status, flags: r.flags, flags_mask: r.flags_mask }
    }
}

impl Metadata {
    /// Parse the text of a `metadata.json`.
    pub fn parse(text: &str) -> Result<Metadata, serde_json::Error> {
        let raw: RawMetadata = serde_json::from_str(text)?;
        let mut opcodes = HashMap::new();
        for (key, entry) in raw.opcodes {
            let entry = match entry {
                RawEntry::Plain(info) => Entry::Plain(info.into()),
                RawEntry::ByReg { reg } => Entry::ByReg(
                    reg.into_iter().filter_map(|(r, info)| Some((r.parse::<u8>().ok()?, info.into()))).collect(),
                ),
            };
            opcodes.insert(key.to_ascii_uppercase(), entry);
        }
        Ok(Metadata { opcodes })
    }

    /// Read a `metadata.json` file.
    pub fn load(path: &Path) -> Result<Metadata, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|source| Error::Metadata { path: path.to_path_buf(), source })
    }

    /// The entry for an opcode. For opcodes listed per reg field, the reg of
    /// the key is used, else `modrm_reg` (read from the test's bytes).
    pub fn lookup(&self, key: &OpcodeKey, modrm_reg: Option<u8>) -> Option<&OpcodeInfo> {
        match self.opcodes.get(&key.opcode)? {
            Entry::Plain(info) => Some(info),
            Entry::ByReg(map) => map.get(&key.reg.or(modrm_reg)?),
        }
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
    let dir = test_file.parent()?;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let here = dir.join(name);
    if here.is_file() {
        return Some(here);
    }
    let up = dir.join("..").join(name);
    up.is_file().then_some(up)
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
    fn keys_from_moo_opcode_and_bytes() {
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
        let key = |op: &str, reg| OpcodeKey { opcode: op.into(), reg };
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
