//! The SingleStepTests 80386 (386EX) real-mode suite, run through the
//! library API.
//!
//! The suite is not available on every machine, so most of this file runs
//! synthetic tests in the suite's forms: MOO files with `RG32` chunks and
//! the `moo2json` JSON form, with an `80386.csv` beside them, built here and
//! run end to end on ferrite's CPU. When the real suite is found in
//! `$FERRITE_SHARED/conformance/80386` (by default `../shared` beside the
//! workspace), [`real_mode_suite_passes`] runs all of it too; without it
//! that test prints `SKIPPED: ... not found` and passes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ferrite_test_roms::singlestep::suite::SuiteEvent;
use ferrite_test_roms::singlestep::{
    collect_inputs, run_suite, Arch, Format, Outcome, Reg, RunOptions, SuiteSummary, TestFile,
};

/// Share of the tests run (not skipped) that must pass on the real suite.
const MIN_PASS_RATE: f64 = 0.999;
/// Share of the real suite that may be skipped.
const MAX_SKIP_RATE: f64 = 0.015;

/// The 386 suite's register names in the MOO `RG32` order.
const NAMES: [&str; 20] = [
    "cr0", "cr3", "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "cs", "ds", "es", "fs", "gs", "ss", "eip",
    "eflags", "dr6", "dr7",
];

const HLT: u8 = 0xF4;

/// One synthetic test in the 386 suite's terms: what the 386EX would have
/// recorded.
#[derive(Clone, Debug)]
struct Synth {
    name: &'static str,
    /// Instruction bytes and the HLT after them (placed at CS:EIP).
    bytes: Vec<u8>,
    regs: BTreeMap<&'static str, u32>,
    /// Initial RAM besides the instruction bytes.
    ram: Vec<(u32, u8)>,
    final_regs: BTreeMap<&'static str, u32>,
    final_ram: Vec<(u32, u8)>,
    exception: Option<(u8, u32)>,
}

impl Synth {
    /// A test with the suite's typical initial state: CR0 with the 386EX's
    /// reserved ones, EFLAGS with its reserved upper bits, code at
    /// 1000:0100, stack at 6000:0100 (ESP's upper half set).
    fn new(name: &'static str, bytes: &[u8]) -> Synth {
        let regs: BTreeMap<&str, u32> = [
            ("cr0", 0x7FFE_FFF0),
            ("cr3", 0),
            ("eax", 0x0102_0304),
            ("ebx", 0x1112_1314),
            ("ecx", 0x2122_2324),
            ("edx", 0x3132_3334),
            ("esi", 0x4142_4344),
            ("edi", 0x5152_5354),
            ("ebp", 0x6162_6364),
            ("esp", 0x1234_0100),
            ("cs", 0x1000),
            ("ds", 0x2000),
            ("es", 0x3000),
            ("fs", 0x4000),
            ("gs", 0x5000),
            ("ss", 0x6000),
            ("eip", 0x0100),
            ("eflags", 0xFFFC_0002),
            ("dr6", 0xFFFF_0FF0),
            ("dr7", 0),
        ]
        .into_iter()
        .collect();
        Synth {
            name,
            bytes: bytes.to_vec(),
            regs,
            ram: Vec::new(),
            final_regs: BTreeMap::new(),
            final_ram: Vec::new(),
            exception: None,
        }
    }

    fn set(mut self, reg: &'static str, v: u32) -> Synth {
        assert!(NAMES.contains(&reg), "{reg}");
        self.regs.insert(reg, v);
        self
    }

    fn ram(mut self, entries: &[(u32, u8)]) -> Synth {
        self.ram.extend_from_slice(entries);
        self
    }

    fn fin(mut self, reg: &'static str, v: u32) -> Synth {
        assert!(NAMES.contains(&reg), "{reg}");
        self.final_regs.insert(reg, v);
        self
    }

    fn fin_ram(mut self, entries: &[(u32, u8)]) -> Synth {
        self.final_ram.extend_from_slice(entries);
        self
    }

    /// EIP after the HLT that follows the instruction.
    fn completes(self) -> Synth {
        let eip = self.regs["eip"] + self.bytes.len() as u32;
        self.fin("eip", eip)
    }

    fn raises(mut self, number: u8, flag_address: u32) -> Synth {
        self.exception = Some((number, flag_address));
        self
    }

    /// The initial RAM: the instruction bytes at CS:EIP, then the rest.
    fn initial_ram(&self) -> Vec<(u32, u8)> {
        let code = (self.regs["cs"] << 4) + self.regs["eip"];
        let mut ram: Vec<(u32, u8)> = self.bytes.iter().enumerate().map(|(i, &b)| (code + i as u32, b)).collect();
        ram.extend_from_slice(&self.ram);
        ram
    }

    fn hash(idx: usize) -> [u8; 20] {
        let mut h = [0x38u8; 20];
        h[0] = idx as u8;
        h
    }
}

fn chunk(id: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// An `RG32` (or `RM32`) payload: the bitmask, then the listed values.
fn rg32(regs: &BTreeMap<&str, u32>) -> Vec<u8> {
    let mut mask = 0u32;
    let mut values = Vec::new();
    for (bit, name) in NAMES.iter().enumerate() {
        if let Some(v) = regs.get(name) {
            mask |= 1 << bit;
            values.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut out = mask.to_le_bytes().to_vec();
    out.extend(values);
    out
}

fn ram_payload(entries: &[(u32, u8)]) -> Vec<u8> {
    let mut v = (entries.len() as u32).to_le_bytes().to_vec();
    for &(a, b) in entries {
        v.extend_from_slice(&a.to_le_bytes());
        v.push(b);
    }
    v
}

/// A MOO 1.1 file of the tests as the 386 suite writes them: CPU id
/// `386E`, `RG32` register chunks, an `EA32` chunk and an empty queue in
/// every `INIT`, an empty `CYCL`.
fn moo_file(tests: &[Synth], opcode: u32, mnemonic: &str) -> Vec<u8> {
    let mut header = vec![1, 1, 0, 0];
    header.extend_from_slice(&(tests.len() as u32).to_le_bytes());
    header.extend_from_slice(b"386E");
    let mut meta = vec![1, 0, 3];
    meta.extend_from_slice(&opcode.to_le_bytes());
    meta.extend_from_slice(format!("{mnemonic:<8}").as_bytes());
    meta.extend_from_slice(&(tests.len() as u32).to_le_bytes());
    meta.extend_from_slice(&0x1234_5678_9ABC_DEF0u64.to_le_bytes());
    meta.extend_from_slice(&[0, 0, 0, 0]);
    let mut file = chunk(b"MOO ", &header);
    file.extend(chunk(b"META", &meta));
    for (idx, t) in tests.iter().enumerate() {
        let mut ea = vec![2];
        ea.extend_from_slice(&0x2000u16.to_le_bytes());
        for v in [0x20000u32, 0xFFFF, 0x12, 0x20012, 0x20012] {
            ea.extend_from_slice(&v.to_le_bytes());
        }
        let mut init = chunk(b"RG32", &rg32(&t.regs));
        init.extend(chunk(b"EA32", &ea));
        init.extend(chunk(b"RAM ", &ram_payload(&t.initial_ram())));
        init.extend(chunk(b"QUEU", &0u32.to_le_bytes()));
        let mut fina = chunk(b"RG32", &rg32(&t.final_regs));
        fina.extend(chunk(b"RAM ", &ram_payload(&t.final_ram)));

        let mut body = (idx as u32).to_le_bytes().to_vec();
        let mut name = (t.name.len() as u32).to_le_bytes().to_vec();
        name.extend_from_slice(t.name.as_bytes());
        body.extend(chunk(b"NAME", &name));
        let mut byts = (t.bytes.len() as u32).to_le_bytes().to_vec();
        byts.extend_from_slice(&t.bytes);
        body.extend(chunk(b"BYTS", &byts));
        body.extend(chunk(b"INIT", &init));
        body.extend(chunk(b"FINA", &fina));
        body.extend(chunk(b"CYCL", &0u32.to_le_bytes()));
        if let Some((number, flag_address)) = t.exception {
            let mut excp = vec![number];
            excp.extend_from_slice(&flag_address.to_le_bytes());
            body.extend(chunk(b"EXCP", &excp));
        }
        body.extend(chunk(b"HASH", &Synth::hash(idx)));
        file.extend(chunk(b"TEST", &body));
    }
    file
}

/// The same tests in the `moo2json` form (with the `ea` record and the
/// `queue` and `cycles` keys the runner ignores).
fn json_file(tests: &[Synth]) -> String {
    let regs = |m: &BTreeMap<&str, u32>| {
        NAMES.iter().filter_map(|n| m.get(n).map(|v| format!("\"{n}\": {v}"))).collect::<Vec<_>>().join(", ")
    };
    let ram = |r: &[(u32, u8)]| r.iter().map(|(a, b)| format!("[{a}, {b}]")).collect::<Vec<_>>().join(", ");
    let items: Vec<String> = tests
        .iter()
        .enumerate()
        .map(|(idx, t)| {
            let hash: String = Synth::hash(idx).iter().map(|b| format!("{b:02X}")).collect();
            let exception = t
                .exception
                .map(|(n, a)| format!(", \"exception\": {{\"number\": {n}, \"flag_address\": {a}}}"))
                .unwrap_or_default();
            format!(
                "{{\"idx\": {idx}, \"name\": \"{}\", \"bytes\": {:?},\n \
                 \"initial\": {{\"regs\": {{{}}}, \"ea\": {{\"seg\": \"DS\", \"sel\": 8192, \"base\": 131072, \
                 \"limit\": 65535, \"offset\": 18, \"l_addr\": 131090, \"p_addr\": 131090}}, \"ram\": [{}], \
                 \"queue\": []}},\n \"final\": {{\"regs\": {{{}}}, \"ram\": [{}], \"queue\": []}},\n \
                 \"cycles\": [[9, 156864, 4, 0, 0, \"CODE\", 4, \"T1\"]]{exception}, \"hash\": \"{hash}\"}}",
                t.name,
                t.bytes,
                regs(&t.regs),
                ram(&t.initial_ram()),
                regs(&t.final_regs),
                ram(&t.final_ram)
            )
        })
        .collect();
    format!("[\n{}\n]", items.join(",\n"))
}

/// An `80386.csv` excerpt in the suite's layout: quoted descriptions with
/// commas and quotes, CRLF line ends.
const OPCODE_DB: &str = "op,re,g,ex,ud,pf,66,67,fc,pm,lck,rep,so,reg,m,mnemonic,f_umask,desc\r\n\
    00,0,,,0,0,0,1,0,0,1,0,1,1,1,ADD,,\"Add r8 to r/m8, store in r/m8\"\r\n\
    01,0,,,0,0,1,1,0,0,1,0,1,1,1,ADD,,\"Add r16/32 to r/m16/32\"\r\n\
    0F01,0,7,4,0,0,1,1,0,0,0,0,1,1,1,SMSW,,\"Store machine status word\"\r\n\
    0FB6,0,,,0,0,1,1,0,0,0,0,1,1,1,MOVZX,,\"Move with zero-extend\"\r\n\
    0FBC,0,,,0,0,1,1,0,0,0,0,1,1,1,BSF,0895,\"Bit scan forward (\"\"ZF\"\" defined)\"\r\n\
    8B,0,,,0,0,1,1,0,0,0,0,1,1,1,MOV,,\"Move r/m16/32 to r16/32\"\r\n\
    F7,0,3,6,0,0,1,1,0,0,0,0,1,1,1,DIV,08D5,\"Unsigned divide, EDX:EAX by r/m32\"\r\n";

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrite-ss386-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// `add eax,ebx` with a 66 prefix: every register of the 32-bit file.
fn add_eax_ebx() -> Synth {
    Synth::new("add eax,ebx", &[0x66, 0x01, 0xD8, HLT])
        .set("eax", 0x8000_0001)
        .set("ebx", 0x8000_0002)
        .completes()
        .fin("eax", 3)
        // CF, PF and OF; the upper EFLAGS bits as the 386EX reports them.
        .fin("eflags", 0xFFFC_0807)
}

/// `movzx eax,byte [bx+2]`: 0F B6 with a 66 prefix, 16-bit addressing (BX
/// out of EBX).
fn movzx_eax() -> Synth {
    Synth::new("movzx eax,byte [bx+2]", &[0x66, 0x0F, 0xB6, 0x47, 0x02, HLT])
        .set("eax", 0xFFFF_FFFF)
        .set("ebx", 0xABCD_0010)
        .ram(&[(0x20012, 0x9C)])
        .completes()
        .fin("eax", 0x9C)
}

/// `mov eax,[ebx+esi*4+8]` with 66 and 67: 32-bit addressing.
fn mov_eax_sib() -> Synth {
    Synth::new("mov eax,[ebx+esi*4+8]", &[0x66, 0x67, 0x8B, 0x44, 0xB3, 0x08, HLT])
        .set("ebx", 0x0000_1000)
        .set("esi", 0x0000_0010)
        .ram(&[(0x21048, 0x78), (0x21049, 0x56), (0x2104A, 0x34), (0x2104B, 0x12)])
        .completes()
        .fin("eax", 0x1234_5678)
}

/// `div ebx` by zero: the divide error's real-mode frame. The FLAGS image
/// the "386" pushed and left has SF, ZF and PF changed, which `f_umask`
/// (08D5 for F7.6) declares undefined. With an odd SP the suite's flag
/// address is one below the pushed word.
fn div_by_zero(sp: u32) -> Synth {
    let (ss, ivt_handler) = (0x6000u32, 0x8040u32);
    let frame = |off: u32| (ss << 4) + ((sp - off) & 0xFFFF);
    let mut t = Synth::new("div ebx", &[0x66, 0xF7, 0xF3, HLT])
        .set("eax", 5)
        .set("edx", 0)
        .set("ebx", 0)
        .set("esp", 0x1234_0000 | sp)
        // IF and CF set.
        .set("eflags", 0xFFFC_0203)
        // IVT entry 0 -> 0800:0040, where the injected HLT is.
        .ram(&[(0, 0x40), (1, 0x00), (2, 0x00), (3, 0x08), (ivt_handler, HLT)])
        .fin("cs", 0x0800)
        .fin("eip", 0x0041)
        .fin("esp", 0x1234_0000 | (sp - 6))
        // IF cleared by the interrupt; SF ZF PF as the 386 left them.
        .fin("eflags", 0xFFFC_00C7)
        .fin_ram(&[
            (frame(6), 0x00),
            (frame(5), 0x01),
            (frame(4), 0x00),
            (frame(3), 0x10),
            (frame(2), 0xC7),
            (frame(1), 0x02),
        ]);
    // Stack bytes the frame overwrites, as the test lists them initially.
    t = t.ram(&(1..=6).map(|k| (frame(k), 0xEE)).collect::<Vec<_>>());
    t.raises(0, frame(2) & !1)
}

/// `add [bp+60h],bl`: 16-bit addressing through SS, in the JSON form.
fn add_bp_bl() -> Synth {
    Synth::new("add [ss:bp+60h],bl", &[0x00, 0x5E, 0x60, HLT])
        .set("cs", 0x2345)
        .set("eip", 0x1200)
        .set("ss", 0xE000)
        .set("ebp", 0x0003_0002)
        .set("ebx", 0x1234_5678)
        .set("eflags", 0xFFFC_0C93)
        .ram(&[(0xE0062, 0x0B)])
        .completes()
        // 0Bh + 78h = 83h: OF SF AF set, CF ZF PF clear; DF kept.
        .fin("eflags", 0xFFFC_0C92)
        .fin_ram(&[(0xE0062, 0x83)])
}

/// Run the files and return the summary with one line per failed test.
fn run(files: &[PathBuf], opts: &RunOptions) -> (SuiteSummary, Vec<String>) {
    let mut problems = Vec::new();
    let summary = run_suite(files, opts, |event| {
        let SuiteEvent::File { result, .. } = event else { return };
        match result {
            Err(e) => problems.push(format!("error: {}", e.full_message())),
            Ok(report) => {
                for t in &report.tests {
                    match &t.outcome {
                        Outcome::Failed(f) => {
                            let adjusted =
                                report.adjustment_of(t).map(|a| format!(" [P6 rule {}]", a.name)).unwrap_or_default();
                            problems.push(format!("{}: {}{adjusted}: {:?}", report.name, t.name, f))
                        }
                        Outcome::Skipped(s) => {
                            problems.push(format!("{}: {} skipped: {}", report.name, t.name, s.name()))
                        }
                        Outcome::Passed => {}
                    }
                }
            }
        }
    })
    .expect("suite set-up");
    (summary, problems)
}

#[test]
fn moo_and_json_forms_of_386_tests_agree() {
    let tests = [add_eax_ebx(), movzx_eax(), div_by_zero(0x0100)];
    let moo = TestFile::parse(Path::new("6601.MOO"), Format::Moo, &moo_file(&tests, 0x6601, "add")).unwrap();
    let json = TestFile::parse(Path::new("6601.json"), Format::Json, json_file(&tests).as_bytes()).unwrap();
    assert_eq!(moo.arch, Arch::I386);
    assert_eq!(json.arch, Arch::I386);
    assert_eq!(moo.tests, json.tests);
    let key = moo.opcode.as_ref().unwrap();
    assert_eq!((key.opcode.as_str(), key.prefixes.as_str()), ("01", "66"));
    assert_eq!(moo.mnemonic.as_deref(), Some("add"));

    let t = &moo.tests[0];
    assert_eq!(t.arch, Arch::I386);
    assert_eq!(t.initial.reg32(Reg::Ax), Some(0x8000_0001));
    assert_eq!(t.initial.reg32(Reg::Sp), Some(0x1234_0100));
    assert_eq!(t.initial.reg32(Reg::Cr0), Some(0x7FFE_FFF0));
    assert_eq!(t.initial.reg32(Reg::Dr6), Some(0xFFFF_0FF0));
    assert_eq!(t.initial.reg32(Reg::Fs), Some(0x4000));
    assert_eq!(t.final_.reg32(Reg::Ax), Some(3));
    assert_eq!(t.final_.reg32(Reg::Bx), None);
    assert_eq!(t.expected_reg32(Reg::Flags), Some(0xFFFC_0807));
    assert_eq!(moo.tests[2].exception.map(|e| (e.number, e.flag_address)), Some((0, 0x600FE)));
    assert_eq!(t.hash, format!("00{}", "38".repeat(19)));
}

/// A 386 suite directory as upstream lays it out (`80386.csv` and the
/// revocation list one level above the test files), with MOO, gzipped MOO
/// and JSON files: everything passes on ferrite's CPU. Without the opcode
/// database the divide error's undefined flags are compared and fail.
#[test]
fn synthetic_386_suite_runs_end_to_end() {
    let dir = temp_dir("suite");
    let tests = dir.join("v1_ex_real_mode");
    std::fs::create_dir(&tests).unwrap();
    std::fs::write(tests.join("6601.MOO"), moo_file(&[add_eax_ebx()], 0x6601, "add")).unwrap();
    std::fs::write(tests.join("660FB6.MOO.gz"), gzip(&moo_file(&[movzx_eax()], 0x660FB6, "movzx"))).unwrap();
    std::fs::write(tests.join("67668B.MOO"), moo_file(&[mov_eax_sib()], 0xFFFF_FFFF, "mov")).unwrap();
    let divs = [div_by_zero(0x0100), div_by_zero(0x0101)];
    std::fs::write(tests.join("66F7.6.MOO"), moo_file(&divs, 0x66F7, "div")).unwrap();
    std::fs::write(tests.join("00.json"), json_file(&[add_bp_bl()])).unwrap();
    std::fs::write(dir.join("80386.csv"), OPCODE_DB).unwrap();
    std::fs::write(dir.join("revocation_list.txt"), "# none\n").unwrap();

    let files = collect_inputs(std::slice::from_ref(&dir)).unwrap();
    let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["00.json", "6601.MOO", "660FB6.MOO.gz", "66F7.6.MOO", "67668B.MOO"]);
    let (summary, problems) = run(&files, &RunOptions::default());
    assert_eq!(summary.final_line(), "6 passed, 0 failed", "{problems:#?}");
    assert_eq!(summary.adjusted, 0);

    // The same files with an opcode table that has no DIV row: the pushed
    // and final FLAGS differ in the flags the 386 left undefined.
    let other = dir.join("other.csv");
    std::fs::write(&other, "op,f_umask\n00,\n").unwrap();
    let opts = RunOptions { metadata: Some(other), ..RunOptions::default() };
    let (summary, problems) = run(&files, &opts);
    assert_eq!(summary.final_line(), "4 passed, 2 failed", "{problems:#?}");
    assert!(problems.iter().all(|p| p.contains("div ebx") && p.contains("PushedFlags")), "{problems:#?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Tests of the 386-versus-P6 rules: each holds what a 386 would record,
/// and passes on ferrite's CPU only as the P6 rule rewrites it.
fn adjusted_tests() -> Vec<(&'static str, Synth)> {
    let stack = |off: u32| 0x60000 + 0x0100 - off;
    vec![
        // LOCK BT: the 386 accepts it and sets CF from bit 1 of [bx]; a P6
        // raises #UD.
        (
            "lock-on-non-lockable",
            Synth::new("lock bt [bx],ax", &[0xF0, 0x0F, 0xA3, 0x07, HLT])
                .set("eax", 1)
                .set("ebx", 0x0040)
                .ram(&[(0x20040, 0x02), (0x20041, 0x00)])
                .completes()
                .fin("eflags", 0xFFFC_0003),
        ),
        // PUSHFD: the 386EX's image carries its reserved upper ones.
        (
            "pushf-reserved-bits",
            Synth::new("pushfd", &[0x66, 0x9C, HLT])
                .set("eflags", 0xFFFC_0893)
                .completes()
                .fin("esp", 0x1234_00FC)
                .fin_ram(&[(stack(4), 0x93), (stack(3), 0x08), (stack(2), 0xFC), (stack(1), 0xFF)]),
        ),
        // SMSW: the 386EX reads CR0's reserved bits as ones.
        ("cr-dr-reserved-bits", Synth::new("smsw ax", &[0x0F, 0x01, 0xE0, HLT]).completes().fin("eax", 0x0102_FFF0)),
        (
            "cr-dr-reserved-bits",
            Synth::new("mov eax,cr0", &[0x0F, 0x20, 0xC0, HLT]).completes().fin("eax", 0x7FFE_FFF0),
        ),
        // DR7 bit 10 reads as 0 on the 386, 1 on a P6.
        ("cr-dr-reserved-bits", Synth::new("mov eax,dr7", &[0x0F, 0x21, 0xF8, HLT]).completes().fin("eax", 0)),
        // SMSW to memory.
        (
            "cr-dr-reserved-bits",
            Synth::new("smsw [bx]", &[0x0F, 0x01, 0x27, HLT])
                .set("ebx", 0x0080)
                .ram(&[(0x20080, 0x11), (0x20081, 0x22)])
                .completes()
                .fin_ram(&[(0x20080, 0xF0), (0x20081, 0xFF)]),
        ),
        // MOV r32,Sreg: the 386 left the upper half as it was.
        ("mov-sreg-r32-upper", Synth::new("mov eax,cs", &[0x66, 0x8C, 0xC8, HLT]).completes().fin("eax", 0x0102_1000)),
        // BSF of zero: the 386 wrote something to AX.
        (
            "bit-scan-zero-source",
            Synth::new("bsf ax,cx", &[0x0F, 0xBC, 0xC1, HLT])
                .set("ecx", 0xFFFF_0000)
                .completes()
                .fin("eax", 0x0102_0010)
                .fin("eflags", 0xFFFC_0046),
        ),
        // SGDT: the 386EX's own GDTR.
        (
            "descriptor-table-store",
            Synth::new("sgdt [bx]", &[0x0F, 0x01, 0x07, HLT])
                .set("ebx", 0x0200)
                .ram(&(0x20200..0x20206).map(|a| (a, 0x55)).collect::<Vec<_>>())
                .completes()
                .fin_ram(&[
                    (0x20200, 0x27),
                    (0x20201, 0x00),
                    (0x20202, 0x45),
                    (0x20203, 0x23),
                    (0x20204, 0x01),
                    (0x20205, 0x00),
                ]),
        ),
        // MOV from TR6: the 386 reads its TLB test register.
        ("mov-test-register", Synth::new("mov eax,tr6", &[0x0F, 0x24, 0xF0, HLT]).completes().fin("eax", 0xDEAD_BEEF)),
        // UMOV: the 386 stores AL at [bx].
        (
            "umov",
            Synth::new("umov [bx],al", &[0x0F, 0x10, 0x07, HLT])
                .set("ebx", 0x0300)
                .ram(&[(0x20300, 0x55)])
                .completes()
                .fin_ram(&[(0x20300, 0x04)]),
        ),
        // MOV from CR4: #UD on the 386 (its frame and handler recorded).
        (
            "mov-cr4",
            Synth::new("mov eax,cr4", &[0x0F, 0x20, 0xE0, HLT])
                .ram(&[(0x18, 0x40), (0x19, 0x00), (0x1A, 0x00), (0x1B, 0x08), (0x8040, HLT)])
                .ram(&(1..=6).map(|k| (stack(k), 0xEE)).collect::<Vec<_>>())
                .fin("cs", 0x0800)
                .fin("eip", 0x0041)
                .fin("esp", 0x1234_00FA)
                .fin_ram(&[
                    (stack(6), 0x00),
                    (stack(5), 0x01),
                    (stack(4), 0x00),
                    (stack(3), 0x10),
                    (stack(2), 0x02),
                    (stack(1), 0x00),
                ])
                .raises(6, stack(2)),
        ),
        // PUSH FS with a 32-bit operand size: the 386 zero-filled the slot.
        (
            "segment-push-padding",
            Synth::new("push fs", &[0x66, 0x0F, 0xA0, HLT])
                .ram(&(1..=4).map(|k| (stack(k), 0xAA)).collect::<Vec<_>>())
                .completes()
                .fin("esp", 0x1234_00FC)
                .fin_ram(&[(stack(4), 0x00), (stack(3), 0x40), (stack(2), 0x00), (stack(1), 0x00)]),
        ),
        // MOV CR0 with NW set and CD clear: reserved bits on the 386.
        (
            "mov-cr0-cache-bits",
            Synth::new("mov cr0,eax", &[0x0F, 0x22, 0xC0, HLT])
                .set("eax", 0x2000_0010)
                .completes()
                .fin("cr0", 0x2000_0010),
        ),
        // SHLD by 20: the 386's result is undefined.
        (
            "shift-double-over-16",
            Synth::new("shld ax,bx,14h", &[0x0F, 0xA4, 0xD8, 0x14, HLT])
                .completes()
                .fin("eax", 0x0102_1234)
                .fin("eflags", 0xFFFC_08D7),
        ),
    ]
}

/// Every 386 rule whose P6 outcome ferrite's CPU implements: run as the
/// 386 recorded them they fail; checked against the P6 rule they pass.
#[test]
fn adjusted_386_tests_pass_against_the_p6_rules() {
    let dir = temp_dir("adjusted");
    let cases = adjusted_tests();
    let tests: Vec<Synth> = cases.iter().map(|(_, t)| t.clone()).collect();
    let file = dir.join("tests.MOO");
    std::fs::write(&file, moo_file(&tests, u32::MAX, "")).unwrap();
    std::fs::write(dir.join("80386.csv"), OPCODE_DB).unwrap();
    let (summary, problems) = run(std::slice::from_ref(&file), &RunOptions::default());
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(summary.passed, cases.len());
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, _) in &cases {
        *expected.entry(name).or_default() += 1;
    }
    let got: BTreeMap<&str, usize> = summary.adjustments.iter().map(|(n, (_, c))| (*n, *c)).collect();
    assert_eq!(got, expected);

    // As the 386 recorded them, they fail on a P6 (except where the rule
    // only leaves bytes or bits undefined that ferrite happens to match).
    let mut machine = ferrite_test_roms::singlestep::Machine::new().unwrap();
    let parsed = TestFile::load(&file).unwrap();
    for ((name, _), test) in cases.iter().zip(&parsed.tests) {
        let fails = machine.run(test, &[u32::MAX; ferrite_test_roms::singlestep::NUM_REGS]).is_err();
        assert!(fails, "{name}: {} passes unadjusted", test.name);
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn suite_dir() -> PathBuf {
    let shared = std::env::var_os("FERRITE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("conformance/80386")
}

/// The whole real-mode suite, when it is present.
#[test]
fn real_mode_suite_passes() {
    let dir = suite_dir();
    let tests = dir.join("v1_ex_real_mode");
    if !tests.is_dir() {
        println!("SKIPPED: {} not found (set FERRITE_SHARED to the shared data directory)", tests.display());
        return;
    }
    let jobs = std::thread::available_parallelism().map(|n| n.get().min(2)).unwrap_or(1);
    let start = std::time::Instant::now();
    let files = collect_inputs(&[tests]).expect("list v1_ex_real_mode");
    let (summary, problems) = run(&files, &RunOptions { jobs, ..RunOptions::default() });
    let skips: Vec<String> = summary.skips.iter().map(|(n, (_, c))| format!("{c} {n}")).collect();
    let adjusted: Vec<String> = summary.adjustments.iter().map(|(n, (_, c))| format!("{c} {n}")).collect();
    println!(
        "80386 real mode: {} files in {:.1} s: {} ({}); {} checked against the P6 rule ({})",
        summary.files.len(),
        start.elapsed().as_secs_f64(),
        summary.final_line(),
        skips.join(", "),
        summary.adjusted,
        adjusted.join(", ")
    );
    assert_eq!(summary.file_errors(), 0, "unreadable files:\n{}", problems.join("\n"));
    let (passed, failed) = (summary.passed, summary.failed);
    assert!(passed + failed > 0, "no tests ran");
    let pass_rate = passed as f64 / (passed + failed) as f64;
    let failures: Vec<&String> = problems.iter().filter(|p| !p.contains(" skipped: ")).take(50).collect();
    assert!(
        pass_rate >= MIN_PASS_RATE,
        "pass rate {:.3}% is below {:.1}%: {}\n{failures:#?}",
        pass_rate * 100.0,
        MIN_PASS_RATE * 100.0,
        summary.final_line()
    );
    let skip_rate = summary.skipped as f64 / summary.total() as f64;
    assert!(skip_rate < MAX_SKIP_RATE, "{:.2}% skipped: {}", skip_rate * 100.0, skips.join(", "));
}
