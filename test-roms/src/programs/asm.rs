//! A small image builder over iced-x86's `CodeAssembler`: named labels
//! shared by several code chunks (16- and 32-bit code placed at fixed
//! physical addresses), data blobs such as descriptor tables, and a
//! fixed-point loop so code can use the address of any named label as an
//! immediate or displacement (the first pass assembles with a placeholder,
//! later passes with the addresses the previous pass produced, until the
//! layout stops moving).

use iced_x86::code_asm::{CodeAssembler, CodeLabel};
use iced_x86::{BlockEncoderOptions, IcedError};
use std::collections::{BTreeMap, BTreeSet};

/// Result of emitting code.
pub(crate) type R<T = ()> = Result<T, IcedError>;

/// Address handed out for a label the previous pass did not know yet: it
/// fits a 16-bit immediate and is too big for a sign-extended imm8, so the
/// encodings chosen on the first pass rarely change later.
const PLACEHOLDER: u32 = 0x7FF0;

/// One chunk of code assembled at a fixed address.
pub(crate) struct Code {
    pub a: CodeAssembler,
    base: u32,
    labels: BTreeMap<String, CodeLabel>,
    /// Program name used in failure messages.
    pub prog: &'static str,
    anon: u32,
}

impl std::ops::Deref for Code {
    type Target = CodeAssembler;
    fn deref(&self) -> &CodeAssembler {
        &self.a
    }
}

impl std::ops::DerefMut for Code {
    fn deref_mut(&mut self) -> &mut CodeAssembler {
        &mut self.a
    }
}

impl Code {
    /// An empty chunk of `bitness`-bit code that will live at `base`.
    pub fn new(bitness: u32, base: u32, prog: &'static str) -> R<Code> {
        Ok(Code { a: CodeAssembler::new(bitness)?, base, labels: BTreeMap::new(), prog, anon: 0 })
    }

    /// The label called `name` (created on first use).
    pub fn lbl(&mut self, name: &str) -> CodeLabel {
        if let Some(l) = self.labels.get(name) {
            return *l;
        }
        let l = self.a.create_label();
        self.labels.insert(name.to_string(), l);
        l
    }

    /// Define `name` at the next emitted instruction or data.
    pub fn here(&mut self, name: &str) -> R {
        let mut l = self.lbl(name);
        self.a.set_label(&mut l)?;
        self.labels.insert(name.to_string(), l);
        Ok(())
    }

    /// A fresh label with a generated name.
    pub fn fresh(&mut self) -> CodeLabel {
        self.anon += 1;
        let name = format!(".anon{}", self.anon);
        self.lbl(&name)
    }

    /// Define an anonymous label (from [`Code::fresh`]) here.
    pub fn set(&mut self, l: &mut CodeLabel) -> R {
        self.a.set_label(l)
    }

    /// A unique name for a label that must be addressable by value.
    pub fn unique(&mut self, stem: &str) -> String {
        self.anon += 1;
        format!("{stem}.{}", self.anon)
    }
}

/// The image being built in one pass.
pub(crate) struct Image {
    prev: BTreeMap<String, u32>,
    syms: BTreeMap<String, u32>,
    wanted: BTreeSet<String>,
    chunks: Vec<(u32, Vec<u8>)>,
}

impl Image {
    /// Address of label `name` as the previous pass placed it.
    pub fn addr(&mut self, name: &str) -> u32 {
        self.wanted.insert(name.to_string());
        self.prev.get(name).copied().unwrap_or(PLACEHOLDER)
    }

    /// Assemble `code` at its base and record its labels.
    pub fn place(&mut self, mut code: Code) -> R {
        let res = code.a.assemble_options(code.base as u64, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
        for (name, l) in code.labels.iter().filter(|(n, _)| !n.starts_with(".anon")) {
            let Ok(ip) = res.label_ip(l) else {
                panic!("label {name} is used but not defined in its chunk");
            };
            if self.syms.insert(name.clone(), ip as u32).is_some() {
                panic!("label {name} defined twice");
            }
        }
        self.chunks.push((code.base, res.inner.code_buffer));
        Ok(())
    }

    /// Put raw bytes at physical `addr`.
    pub fn data(&mut self, addr: u32, bytes: Vec<u8>) {
        self.chunks.push((addr, bytes));
    }

    fn flatten(mut self, load: u32) -> Vec<u8> {
        self.chunks.sort_by_key(|c| c.0);
        let end = self.chunks.iter().map(|(a, b)| a + b.len() as u32).max().unwrap_or(load);
        let mut out = vec![0u8; (end - load) as usize];
        let mut last_end = load;
        for (a, b) in &self.chunks {
            assert!(*a >= last_end, "image chunks overlap at {a:#x} (previous ends at {last_end:#x})");
            out[(a - load) as usize..(a - load) as usize + b.len()].copy_from_slice(b);
            last_end = a + b.len() as u32;
        }
        out
    }
}

/// Build an image loaded at `load` by running `gen` until every label
/// address it uses is stable.
pub(crate) fn build(load: u32, gen: impl Fn(&mut Image) -> R) -> Vec<u8> {
    let mut prev = BTreeMap::new();
    for _ in 0..8 {
        let mut img = Image { prev: prev.clone(), syms: BTreeMap::new(), wanted: BTreeSet::new(), chunks: Vec::new() };
        if let Err(e) = gen(&mut img) {
            panic!("test program failed to assemble: {e}");
        }
        if img.syms == prev {
            if let Some(missing) = img.wanted.iter().find(|w| !img.syms.contains_key(*w)) {
                panic!("test program uses undefined label {missing}");
            }
            return img.flatten(load);
        }
        prev = img.syms;
    }
    panic!("test program layout did not converge");
}
