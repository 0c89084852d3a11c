//! Looking at a test's instruction bytes: prefixes, opcode, ModRM and the
//! memory the instruction accesses (through iced-x86), as the difference
//! rules and the metadata lookup need them.

use iced_x86::{Decoder, DecoderOptions, Instruction, InstructionInfoFactory, OpKind, Register};

use super::{Reg, TestCase};

/// The 286's prefix bytes: segment overrides, LOCK, REPNE, REP. (64-67 are
/// not prefixes on a 286.)
pub const PREFIXES_286: [u8; 7] = [0x26, 0x2E, 0x36, 0x3E, 0xF0, 0xF2, 0xF3];

/// Offset and value of the opcode after any prefixes; two-byte opcodes are
/// returned as `0x0Fxx`.
pub fn opcode_of(bytes: &[u8]) -> Option<(usize, u32)> {
    let at = bytes.iter().position(|b| !PREFIXES_286.contains(b))?;
    match bytes[at] {
        0x0F => Some((at, 0x0F00 | *bytes.get(at + 1)? as u32)),
        op => Some((at, op as u32)),
    }
}

/// The reg field of the ModRM byte following the opcode (meaningful for
/// opcodes that have one).
pub fn modrm_reg(bytes: &[u8]) -> Option<u8> {
    let (at, opcode) = opcode_of(bytes)?;
    let len = if opcode > 0xFF { 2 } else { 1 };
    bytes.get(at + len).map(|m| (m >> 3) & 7)
}

/// True when a LOCK prefix (F0) precedes the opcode.
pub fn has_lock_prefix(bytes: &[u8]) -> bool {
    bytes.iter().take_while(|b| PREFIXES_286.contains(b)).any(|&b| b == 0xF0)
}

/// Decode the first instruction of the bytes as 16-bit code, accepting
/// encodings a P6 would reject (so LOCK misuse still names the instruction).
pub fn decode(bytes: &[u8]) -> Instruction {
    Decoder::with_ip(16, bytes, 0, DecoderOptions::NO_INVALID_CHECK).decode()
}

/// One memory access of an instruction: the segment and the offset within
/// it, computed from the test's initial registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub segment: Register,
    pub offset: u16,
    /// Bytes accessed (at least 1).
    pub size: u32,
}

impl Access {
    /// True when the access reaches past offset FFFFh, which faults in real
    /// mode (the segment limit is FFFFh; SDM vol. 3, 20.1.1).
    pub fn overruns(&self) -> bool {
        self.offset as u32 + self.size > 0x1_0000
    }
}

/// The memory accesses of a test's instruction as a P6 would make them,
/// implicit stack accesses included, at the offsets the initial registers
/// give. String instructions are taken at their first iteration.
pub fn memory_accesses(test: &TestCase) -> Vec<Access> {
    let instr = decode(&test.bytes);
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(&instr);
    let reg = |r: Register| -> Option<u64> {
        match r {
            // Offsets only: segment bases count as zero.
            Register::ES | Register::CS | Register::SS | Register::DS => Some(0),
            r if r.is_gpr16() => initial_register(test, r).map(u64::from),
            _ => None,
        }
    };
    info.used_memory()
        .iter()
        .filter_map(|m| {
            let offset = m.virtual_address(0, |r, _, _| reg(r))?;
            Some(Access { segment: m.segment(), offset: offset as u16, size: (m.memory_size().size() as u32).max(1) })
        })
        .collect()
}

/// The value of a 16-bit general or segment register, or of an 8-bit
/// register, in the test's initial state.
pub fn initial_register(test: &TestCase, r: Register) -> Option<u16> {
    let word = |which: Reg| test.initial.reg(which);
    let which = match r.full_register32() {
        Register::EAX => Reg::Ax,
        Register::EBX => Reg::Bx,
        Register::ECX => Reg::Cx,
        Register::EDX => Reg::Dx,
        Register::ESP => Reg::Sp,
        Register::EBP => Reg::Bp,
        Register::ESI => Reg::Si,
        Register::EDI => Reg::Di,
        _ => {
            return match r {
                Register::ES => word(Reg::Es),
                Register::CS => word(Reg::Cs),
                Register::SS => word(Reg::Ss),
                Register::DS => word(Reg::Ds),
                _ => None,
            }
        }
    };
    let value = word(which)?;
    Some(match r {
        Register::AL | Register::BL | Register::CL | Register::DL => value & 0xFF,
        Register::AH | Register::BH | Register::CH | Register::DH => value >> 8,
        r if r.is_gpr16() => value,
        _ => return None,
    })
}

/// The value of operand `n` of the test's instruction (`instr`, decoded
/// from its bytes) before it runs: a register, or a byte or word in memory.
/// A memory operand is taken to be the instruction's only memory access.
/// `None` when the bytes are not in the initial RAM or the word would
/// straddle offset FFFFh.
pub fn initial_operand(test: &TestCase, instr: &Instruction, n: u32) -> Option<u16> {
    match instr.op_kind(n) {
        OpKind::Register => initial_register(test, instr.op_register(n)),
        OpKind::Memory => {
            let access = memory_accesses(test).into_iter().next()?;
            let base = (initial_register(test, access.segment)? as u32) << 4;
            let lo = test.initial_byte(base + access.offset as u32)?;
            match access.size {
                1 => Some(lo as u16),
                2 if !access.overruns() => {
                    Some(u16::from_le_bytes([lo, test.initial_byte(base + access.offset as u32 + 1)?]))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlestep::{State, NUM_REGS};

    fn test_with(bytes: &[u8], regs: &[(Reg, u16)]) -> TestCase {
        let mut initial = State::default();
        for &(r, v) in regs {
            initial.regs[r.index()] = Some(v);
        }
        TestCase {
            idx: 0,
            name: String::new(),
            bytes: bytes.to_vec(),
            initial,
            final_: State::default(),
            exception: None,
            hash: String::new(),
            masks: [None; NUM_REGS],
        }
    }

    #[test]
    fn opcode_skips_286_prefixes() {
        assert_eq!(opcode_of(&[0x26, 0xF0, 0x2E, 0x00, 0x07]), Some((3, 0x00)));
        assert_eq!(opcode_of(&[0xF3, 0x0F, 0x01, 0xE0]), Some((1, 0x0F01)));
        assert_eq!(opcode_of(&[0x26, 0x2E]), None);
        assert_eq!(opcode_of(&[0x0F]), None);
    }

    #[test]
    fn modrm_reg_and_lock_prefix() {
        assert_eq!(modrm_reg(&[0x3E, 0xF6, 0x74, 0x02]), Some(6));
        assert_eq!(modrm_reg(&[0x8C, 0xE0]), Some(4));
        assert_eq!(modrm_reg(&[0xF6]), None);
        assert!(has_lock_prefix(&[0x26, 0xF0, 0x00, 0x07]));
        assert!(!has_lock_prefix(&[0x80, 0x07, 0xF0]));
    }

    #[test]
    fn accesses_include_stack_operations() {
        // leave: reads SS:BP.
        let t = test_with(&[0xC9, 0xF4], &[(Reg::Bp, 0xFFFF), (Reg::Sp, 0x100)]);
        let a = memory_accesses(&t);
        assert_eq!(a, vec![Access { segment: Register::SS, offset: 0xFFFF, size: 2 }]);
        assert!(a[0].overruns());

        // push word [bx]: DS:BX read, SS:SP-2 write.
        let t = test_with(&[0xFF, 0x37, 0xF4], &[(Reg::Bx, 0x1234), (Reg::Sp, 0)]);
        let a = memory_accesses(&t);
        assert!(a.contains(&Access { segment: Register::DS, offset: 0x1234, size: 2 }));
        assert!(a.contains(&Access { segment: Register::SS, offset: 0xFFFE, size: 2 }));
        assert!(a.iter().all(|a| !a.overruns()));
    }

    #[test]
    fn initial_registers_and_operands() {
        let mut t = test_with(&[0xF7, 0x3F, 0xF4], &[(Reg::Cx, 0xABCD), (Reg::Ds, 0x1000), (Reg::Bx, 0xFFFE)]);
        assert_eq!(initial_register(&t, Register::CH), Some(0xAB));
        assert_eq!(initial_register(&t, Register::CL), Some(0xCD));
        assert_eq!(initial_register(&t, Register::CX), Some(0xABCD));
        assert_eq!(initial_register(&t, Register::DS), Some(0x1000));
        assert_eq!(initial_register(&t, Register::ECX), None);
        // idiv word [bx]: DS:FFFE.
        let instr = decode(&t.bytes);
        assert_eq!(initial_operand(&t, &instr, 0), None);
        t.initial.ram = vec![(0x1FFFE, 0x34), (0x1FFFF, 0x12)];
        assert_eq!(initial_operand(&t, &instr, 0), Some(0x1234));
        // idiv cl
        let instr = decode(&[0xF6, 0xF9]);
        assert_eq!(initial_operand(&t, &instr, 0), Some(0xCD));
    }

    #[test]
    fn accesses_follow_segment_overrides() {
        // ss: mov ax,[bx+si+2]
        let t = test_with(&[0x36, 0x8B, 0x40, 0x02, 0xF4], &[(Reg::Bx, 0xFFF0), (Reg::Si, 0x000D)]);
        let a = memory_accesses(&t);
        assert_eq!(a, vec![Access { segment: Register::SS, offset: 0xFFFF, size: 2 }]);
    }
}
