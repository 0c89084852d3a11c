//! Where the 286's result is not what a P6 must do, but the P6's result can
//! still be stated exactly: instead of skipping such a test (see
//! [`differences`](super::differences)), its expected outcome is rewritten
//! into the P6's architected one and the test runs like any other, counted
//! as passed or failed.
//!
//! Each adjustment shares its name with the entry of
//! [`DIFFERENCES`](super::DIFFERENCES) that describes the 286's behaviour.
//! A test the adjustment selects but cannot rewrite (its `adjust` returns
//! `None`) falls through to that entry and is skipped under it.

use super::runner::INITIAL_FLAGS_MASK;
use super::{differences, insn, Exception, OpcodeKey, Reg, State, TestCase, NUM_REGS};

/// One rewrite of the 286's expected outcome into the P6's.
#[derive(Debug)]
pub struct Adjustment {
    /// Short stable name: the name of the [`Difference`](super::Difference)
    /// it checks instead of skipping.
    pub name: &'static str,
    /// One sentence: what a P6 must do instead, and where that is
    /// documented.
    pub reason: &'static str,
    /// True for the tests this adjustment applies to.
    pub selects: fn(&TestCase, &OpcodeKey) -> bool,
    /// The test as a P6 must complete it, or `None` when the rewrite cannot
    /// express it (the test is then skipped under the difference).
    pub adjust: fn(&TestCase) -> Option<TestCase>,
    /// Which register bits the adjusted test compares.
    pub masks: AdjustedMasks,
}

/// The register masks an adjusted test is compared under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdjustedMasks {
    /// As for the unadjusted test: the suite's masks and the metadata's
    /// undefined flags for the opcode.
    Suite,
    /// Every bit: the instruction did not run, so nothing it leaves
    /// undefined applies.
    AllBits,
}

/// The list, checked in order; the first that selects and can rewrite the
/// test applies.
pub static ADJUSTMENTS: &[Adjustment] = &[
    Adjustment {
        name: "lock-on-non-lockable",
        reason: "a P6 raises #UD (interrupt 6) before executing anything for LOCK on an instruction \
                 other than a read-modify-write of a memory destination by ADD ADC AND BTC BTR BTS \
                 CMPXCHG CMPXCHG8B DEC INC NEG NOT OR SBB SUB XOR XADD XCHG (SDM vol. 2, LOCK; \
                 vol. 3, 6.15 interrupt 6), so the test expects that interrupt's real-mode frame and \
                 a planted handler's HLT",
        selects: differences::lock_on_non_lockable,
        adjust: invalid_opcode_frame,
        masks: AdjustedMasks::AllBits,
    },
    Adjustment {
        name: "popf-iret-iopl-nt",
        reason: "a P6 in real mode loads IOPL and NT from the FLAGS image POPF and IRET pop \
                 (SDM vol. 2, POPF and IRET operation, real-address mode: all non-reserved bits of \
                 the 16-bit image), so the test expects the 286's FLAGS with bits 12-14 taken from \
                 the popped image",
        selects: differences::popf_iret_sets_iopl_nt,
        adjust: popped_iopl_nt,
        masks: AdjustedMasks::Suite,
    },
];

/// The first adjustment that selects the test and can rewrite it, with the
/// rewritten test.
pub fn apply(test: &TestCase, key: &OpcodeKey) -> Option<(&'static Adjustment, TestCase)> {
    ADJUSTMENTS.iter().filter(|a| (a.selects)(test, key)).find_map(|a| Some((a, (a.adjust)(test)?)))
}

/// The adjustment of this name.
pub fn by_name(name: &str) -> Option<&'static Adjustment> {
    ADJUSTMENTS.iter().find(|a| a.name == name)
}

/// Physical address of IVT entry 6 (offset word, then segment word).
const IVT_UD: u32 = 6 * 4;

/// HLT, which ends every test.
const HLT: u8 = 0xF4;

/// FLAGS bits an interrupt clears in real mode: TF and IF (SDM vol. 2, INT n
/// operation, real-address mode).
const INTERRUPT_CLEARS: u16 = 0x0300;

/// Where the planted #UD handler (a single HLT) may go, tried in order: the
/// first whose byte collides with nothing the test lists is taken.
const HANDLER_CANDIDATES: [(u16, u16); 5] =
    [(0x0050, 0x0000), (0x0070, 0x0100), (0x1000, 0x0010), (0x7000, 0xABCD), (0xE000, 0x5555)];

/// FLAGS as the runner leaves them in the CPU before the first instruction:
/// the suite's initial value with bits 12-15 cleared ([`INITIAL_FLAGS_MASK`]),
/// as a P6 holds it (bits 3 and 5 clear, bit 1 set).
pub fn loaded_flags(initial: u16) -> u16 {
    (initial & INITIAL_FLAGS_MASK & !0x0028) | 0x0002
}

/// Real-mode linear address of `seg:off`.
fn linear(seg: u16, off: u16) -> u32 {
    ((seg as u32) << 4) + off as u32
}

/// lock-on-non-lockable: the instruction raises #UD at its first byte. A
/// handler (one HLT) is planted and IVT entry 6 pointed at it; the P6 pushes
/// FLAGS, CS and IP (the address of the first prefix) below SS:SP, clears IF
/// and TF, and halts at the handler. Nothing the 286 wrote is expected.
///
/// Not expressible (`None`): IVT entry 6 is already in the test's RAM, the
/// instruction is over 15 bytes (#GP on a P6) or runs past CS:FFFF (a P6
/// faults on the code fetch first; SDM vol. 3, 6.9 priorities), a
/// push word would straddle offset FFFFh (SP 1, 3 or 5), a pushed byte lands
/// in IVT entry 6 (the order of the pushes and the vector read would
/// matter), or no handler address is free.
fn invalid_opcode_frame(test: &TestCase) -> Option<TestCase> {
    let reg = |r| test.initial.reg(r);
    let (cs, ip, ss, sp, flags) = (reg(Reg::Cs)?, reg(Reg::Ip)?, reg(Reg::Ss)?, reg(Reg::Sp)?, reg(Reg::Flags)?);
    let ivt = IVT_UD..IVT_UD + 4;
    if test.initial.ram.iter().any(|&(a, _)| ivt.contains(&a)) {
        return None;
    }
    let len = insn::decode(&test.bytes).len() as u32;
    if len > 15 || ip as u32 + len > 0x1_0000 {
        return None;
    }
    // SP-6 (IP), SP-4 (CS), SP-2 (FLAGS), each wrapping within SS.
    let slot = |k: u16| sp.wrapping_sub(k);
    if [2, 4, 6].into_iter().any(|k| slot(k) == 0xFFFF) {
        return None;
    }
    let pushed_flags = loaded_flags(flags);
    let mut pushes = Vec::with_capacity(6);
    for (k, value) in [(6, ip), (4, cs), (2, pushed_flags)] {
        let [lo, hi] = value.to_le_bytes();
        pushes.push((linear(ss, slot(k)), lo));
        pushes.push((linear(ss, slot(k) + 1), hi));
    }
    if pushes.iter().any(|(a, _)| ivt.contains(a)) {
        return None;
    }

    let taken = |addr: u32| {
        ivt.contains(&addr)
            || pushes.iter().any(|&(a, _)| a == addr)
            || test.initial.ram.iter().chain(&test.final_.ram).any(|&(a, _)| a == addr)
    };
    let &(handler_cs, handler_ip) = HANDLER_CANDIDATES.iter().find(|&&(s, o)| !taken(linear(s, o)))?;

    let mut initial = test.initial.clone();
    let [ip_lo, ip_hi] = handler_ip.to_le_bytes();
    let [cs_lo, cs_hi] = handler_cs.to_le_bytes();
    initial.ram.extend([
        (IVT_UD, ip_lo),
        (IVT_UD + 1, ip_hi),
        (IVT_UD + 2, cs_lo),
        (IVT_UD + 3, cs_hi),
        (linear(handler_cs, handler_ip), HLT),
    ]);

    let mut final_ = State::default();
    final_.regs[Reg::Cs.index()] = Some(handler_cs);
    final_.regs[Reg::Ip.index()] = Some(handler_ip.wrapping_add(1));
    final_.regs[Reg::Sp.index()] = Some(slot(6));
    final_.regs[Reg::Flags.index()] = Some(pushed_flags & !INTERRUPT_CLEARS);
    final_.ram = pushes;

    Some(TestCase {
        idx: test.idx,
        name: test.name.clone(),
        bytes: test.bytes.clone(),
        initial,
        final_,
        exception: Some(Exception { number: 6, flag_address: linear(ss, slot(2)) }),
        hash: test.hash.clone(),
        masks: [None; NUM_REGS],
    })
}

/// popf-iret-iopl-nt: the 286's final FLAGS with bits 12-14 (IOPL, NT)
/// replaced by the popped image's; bit 15 stays clear.
///
/// Not expressible (`None`): the image is not in the test's RAM, or the
/// 286's FLAGS disagree with the image in a bit both load (then something
/// else is going on than the IOPL/NT difference).
fn popped_iopl_nt(test: &TestCase) -> Option<TestCase> {
    let image = differences::popped_flags_image(test)?;
    let flags = test.expected_reg(Reg::Flags)?;
    // The bits a 286 and a P6 both load from the image in real mode:
    // everything but bits 1, 3, 5 and 12-15.
    const BOTH_LOAD: u16 = 0x0FD5;
    if (flags ^ image) & BOTH_LOAD != 0 || flags & 0xF02A != 0x0002 {
        return None;
    }
    let mut adjusted = test.clone();
    adjusted.final_.regs[Reg::Flags.index()] = Some((flags & !0x7000) | (image & 0x7000));
    Some(adjusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(op: &str) -> OpcodeKey {
        OpcodeKey { opcode: op.into(), reg: None }
    }

    fn test_with(bytes: &[u8], regs: &[(Reg, u16)], ram: &[(u32, u8)]) -> TestCase {
        let mut initial = State::default();
        for r in Reg::ALL {
            initial.regs[r.index()] = Some(0);
        }
        for &(r, v) in regs {
            initial.regs[r.index()] = Some(v);
        }
        initial.ram = ram.to_vec();
        TestCase {
            idx: 7,
            name: "test".into(),
            bytes: bytes.to_vec(),
            initial,
            final_: State::default(),
            exception: None,
            hash: "abcdef0123".into(),
            masks: [None; NUM_REGS],
        }
    }

    #[test]
    fn every_adjustment_has_a_reason_and_a_difference_to_fall_back_on() {
        for a in ADJUSTMENTS {
            assert!(a.reason.len() > 40 && a.reason.contains("SDM"), "{a:?}");
            assert!(differences::by_name(a.name).is_some(), "{} has no difference", a.name);
            assert!(by_name(a.name).is_some());
        }
    }

    /// `lock mov [bx],al` at 1000:0100 with SS:SP = 2000:0010: the 286
    /// stored AL; a P6 raises #UD at the LOCK prefix.
    fn lock_mov() -> TestCase {
        let code = linear(0x1000, 0x0100);
        let regs = [
            (Reg::Ax, 0x1234),
            (Reg::Bx, 0x0040),
            (Reg::Cs, 0x1000),
            (Reg::Ip, 0x0100),
            (Reg::Ss, 0x2000),
            (Reg::Sp, 0x0010),
            (Reg::Ds, 0x3000),
            // IOPL, NT and bit 15 set (the runner clears them), IF, TF, CF.
            (Reg::Flags, 0xF303),
        ];
        let ram = [(code, 0xF0), (code + 1, 0x88), (code + 2, 0x07), (code + 3, HLT), (0x30040, 0x99)];
        let mut t = test_with(&[0xF0, 0x88, 0x07, HLT], &regs, &ram);
        t.final_.regs[Reg::Ip.index()] = Some(0x0104);
        t.final_.ram = vec![(0x30040, 0x34)];
        t.masks[Reg::Flags.index()] = Some(0x00FF);
        t
    }

    #[test]
    fn lock_test_becomes_an_invalid_opcode_frame() {
        let t = lock_mov();
        let (a, adj) = apply(&t, &key("88")).expect("lock mov is adjusted");
        assert_eq!(a.name, "lock-on-non-lockable");
        assert_eq!(a.masks, AdjustedMasks::AllBits);

        // IVT entry 6 -> 0050:0000, where a HLT is planted; the rest of the
        // initial state is the test's.
        let mut ram = t.initial.ram.clone();
        ram.extend([(0x18, 0x00), (0x19, 0x00), (0x1A, 0x50), (0x1B, 0x00), (0x500, HLT)]);
        assert_eq!(adj.initial.ram, ram);
        assert_eq!(adj.initial.regs, t.initial.regs);

        // Halted after the handler's HLT, three words pushed, IF and TF clear.
        let mut regs = [None; NUM_REGS];
        regs[Reg::Cs.index()] = Some(0x0050);
        regs[Reg::Ip.index()] = Some(0x0001);
        regs[Reg::Sp.index()] = Some(0x000A);
        regs[Reg::Flags.index()] = Some(0x0003);
        assert_eq!(adj.final_.regs, regs);
        let frame = [
            (0x2000A, 0x00), // IP: the LOCK prefix
            (0x2000B, 0x01),
            (0x2000C, 0x00), // CS
            (0x2000D, 0x10),
            (0x2000E, 0x03), // FLAGS as loaded: F303 & 0FFF
            (0x2000F, 0x03),
        ];
        assert_eq!(adj.final_.ram, frame);
        // The 286's store to DS:BX is not expected: 0x30040 keeps 0x99.
        assert_eq!(adj.expected_reg(Reg::Ax), Some(0x1234));
        assert_eq!(adj.exception, Some(Exception { number: 6, flag_address: 0x2000E }));
        assert_eq!(super::super::runner::pushed_flags_address(&adj), Some(0x2000E));
        assert_eq!(adj.masks, [None; NUM_REGS]);
        assert_eq!((adj.idx, adj.hash.as_str(), adj.bytes.as_slice()), (7, "abcdef0123", t.bytes.as_slice()));
    }

    #[test]
    fn lock_frame_wraps_sp_and_avoids_taken_handler_addresses() {
        let mut t = lock_mov();
        t.initial.regs[Reg::Sp.index()] = Some(0x0002);
        // The first candidate handler byte is taken by the test.
        t.initial.ram.push((0x500, 0x11));
        let (_, adj) = apply(&t, &key("88")).unwrap();
        assert_eq!(adj.final_.regs[Reg::Sp.index()], Some(0xFFFC));
        let addrs: Vec<u32> = adj.final_.ram.iter().map(|&(a, _)| a).collect();
        assert_eq!(addrs, [0x2FFFC, 0x2FFFD, 0x2FFFE, 0x2FFFF, 0x20000, 0x20001]);
        assert_eq!(adj.final_.regs[Reg::Cs.index()], Some(0x0070));
        assert_eq!(adj.final_.regs[Reg::Ip.index()], Some(0x0101));
        assert!(adj.initial.ram.contains(&(0x800, HLT)) && adj.initial.ram.contains(&(0x500, 0x11)));
        assert_eq!(adj.exception.map(|e| e.flag_address), Some(0x20000));
    }

    #[test]
    fn lock_frame_overrides_initial_bytes_it_pushes_over() {
        let mut t = lock_mov();
        t.initial.ram.push((0x2000F, 0x55));
        let (_, adj) = apply(&t, &key("88")).unwrap();
        assert!(adj.final_.ram.contains(&(0x2000F, 0x03)));
    }

    #[test]
    fn inexpressible_lock_tests_fall_back_to_the_skip() {
        // IVT entry 6 is part of the test.
        let mut t = lock_mov();
        t.initial.ram.push((0x1A, 0x00));
        assert!(apply(&t, &key("88")).is_none());
        assert_eq!(differences::find(&t, &key("88")).map(|d| d.name), Some("lock-on-non-lockable"));
        // A push word would straddle SS:FFFF.
        for sp in [1, 3, 5] {
            let mut t = lock_mov();
            t.initial.regs[Reg::Sp.index()] = Some(sp);
            assert!(apply(&t, &key("88")).is_none(), "sp {sp}");
        }
        // The pushes would overwrite IVT entry 6.
        let mut t = lock_mov();
        t.initial.regs[Reg::Ss.index()] = Some(0x0000);
        t.initial.regs[Reg::Sp.index()] = Some(0x001E);
        assert!(apply(&t, &key("88")).is_none());
        // The instruction runs past CS:FFFF.
        let mut t = lock_mov();
        t.initial.regs[Reg::Ip.index()] = Some(0xFFFE);
        assert!(apply(&t, &key("88")).is_none());
    }

    #[test]
    fn lockable_instructions_are_not_adjusted() {
        // lock add [bx],al
        let t = test_with(&[0xF0, 0x00, 0x07, HLT], &[(Reg::Bx, 0x10)], &[]);
        assert!(apply(&t, &key("00")).is_none());
    }

    /// POPF at SS:SP = 1000:FFFE popping `image`; the 286 loads it without
    /// bits 12-15.
    fn popf(image: u16) -> TestCase {
        let [lo, hi] = image.to_le_bytes();
        let regs = [(Reg::Ss, 0x1000), (Reg::Sp, 0xFFFE), (Reg::Flags, 0x0002)];
        let mut t = test_with(&[0x9D, HLT], &regs, &[(0x1FFFE, lo), (0x1FFFF, hi)]);
        t.final_.regs[Reg::Sp.index()] = Some(0x0000);
        t.final_.regs[Reg::Flags.index()] = Some((image & 0x0FD5) | 2);
        t
    }

    #[test]
    fn popf_expects_iopl_and_nt_from_the_image() {
        let t = popf(0xB2C1); // bit 15, IOPL 3, IF, SF, ZF, CF
        let (a, adj) = apply(&t, &key("9D")).expect("popf is adjusted");
        assert_eq!(a.name, "popf-iret-iopl-nt");
        assert_eq!(a.masks, AdjustedMasks::Suite);
        assert_eq!(adj.expected_reg(Reg::Flags), Some(0x32C3));
        assert_eq!(adj.expected_reg(Reg::Sp), Some(0x0000));
        assert_eq!((&adj.initial, &adj.final_.ram), (&t.initial, &t.final_.ram));
        let (_, adj) = apply(&popf(0x4000), &key("9D")).unwrap();
        assert_eq!(adj.expected_reg(Reg::Flags), Some(0x4002));
        // Nothing to adjust without IOPL or NT in the image.
        assert!(apply(&popf(0x8FFF), &key("9D")).is_none());
    }

    #[test]
    fn iret_expects_iopl_and_nt_from_the_image_after_ip_and_cs() {
        // SP=FFFC: FLAGS at offset 0000 (SP wraps).
        let regs = [(Reg::Ss, 0x0200), (Reg::Sp, 0xFFFC)];
        let mut t = test_with(&[0xCF], &regs, &[(0x2000, 0x01), (0x2001, 0x50)]);
        t.final_.regs[Reg::Flags.index()] = Some(0x0003);
        let (_, adj) = apply(&t, &key("CF")).unwrap();
        assert_eq!(adj.expected_reg(Reg::Flags), Some(0x5003));
    }

    #[test]
    fn popf_whose_286_flags_disagree_elsewhere_is_not_adjusted() {
        let mut t = popf(0x3001);
        t.final_.regs[Reg::Flags.index()] = Some(0x0002); // CF lost: not the IOPL/NT difference
        assert!(apply(&t, &key("9D")).is_none());
        assert_eq!(differences::find(&t, &key("9D")).map(|d| d.name), Some("popf-iret-iopl-nt"));
    }

    #[test]
    fn loaded_flags_are_what_a_p6_holds() {
        assert_eq!(loaded_flags(0xF02A), 0x0002);
        assert_eq!(loaded_flags(0x0FD5), 0x0FD7);
    }
}
