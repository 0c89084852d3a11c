//! Looking at a test's instruction bytes: prefixes, opcode, ModRM and the
//! memory the instruction accesses (through iced-x86), as the difference
//! rules and the metadata lookup need them.

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, InstructionInfoFactory, OpKind, Register};

use super::{Reg, TestCase};

/// The 286's prefix bytes: segment overrides, LOCK, REPNE, REP. (64-67 are
/// not prefixes on a 286.)
pub const PREFIXES_286: [u8; 7] = [0x26, 0x2E, 0x36, 0x3E, 0xF0, 0xF2, 0xF3];

/// The prefix bytes of the 386 and later: the 286's, FS and GS overrides,
/// and the operand- and address-size prefixes. The 286 suite never places
/// 64-67 before an opcode, so one set serves both suites.
pub const PREFIXES: [u8; 11] = [0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3];

/// Offset and value of the opcode after any prefixes; two-byte opcodes are
/// returned as `0x0Fxx`.
pub fn opcode_of(bytes: &[u8]) -> Option<(usize, u32)> {
    let at = bytes.iter().position(|b| !PREFIXES.contains(b))?;
    match bytes[at] {
        0x0F => Some((at, 0x0F00 | *bytes.get(at + 1)? as u32)),
        op => Some((at, op as u32)),
    }
}

/// The ModRM byte following the opcode (meaningful for opcodes that have
/// one).
pub fn modrm(bytes: &[u8]) -> Option<u8> {
    let (at, opcode) = opcode_of(bytes)?;
    let len = if opcode > 0xFF { 2 } else { 1 };
    bytes.get(at + len).copied()
}

/// The reg field of the ModRM byte following the opcode (meaningful for
/// opcodes that have one).
pub fn modrm_reg(bytes: &[u8]) -> Option<u8> {
    modrm(bytes).map(|m| (m >> 3) & 7)
}

/// True when a LOCK prefix (F0) precedes the opcode.
pub fn has_lock_prefix(bytes: &[u8]) -> bool {
    prefix_bytes(bytes).contains(&0xF0)
}

/// True when the operand-size prefix (66) precedes the opcode.
pub fn has_operand_size_prefix(bytes: &[u8]) -> bool {
    prefix_bytes(bytes).contains(&0x66)
}

/// The prefix bytes before the opcode.
pub fn prefix_bytes(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|b| PREFIXES.contains(b)).count();
    &bytes[..n]
}

/// Decoder options: accept encodings a P6 would reject (so LOCK misuse
/// still names the instruction), the 386's MOV to and from test registers
/// and its UMOV (0F 10-13).
const OPTIONS: u32 = DecoderOptions::NO_INVALID_CHECK | DecoderOptions::MOV_TR | DecoderOptions::UMOV;

/// Decode the first instruction of the bytes as 16-bit code (see
/// [`OPTIONS`]).
pub fn decode(bytes: &[u8]) -> Instruction {
    Decoder::with_ip(16, bytes, 0, OPTIONS).decode()
}

/// Length of the first instruction of the bytes, prefixes included, even
/// past the 15 bytes a decoder accepts: repeated prefixes are counted but
/// decoded once. `None` when the bytes do not hold a whole instruction.
pub fn length(bytes: &[u8]) -> Option<usize> {
    let n = prefix_bytes(bytes).len();
    // The last segment override decides; the others only take room.
    let mut kept: Vec<u8> = Vec::new();
    let segment = bytes[..n].iter().rev().find(|b| matches!(b, 0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65));
    kept.extend(segment);
    for p in [0x66, 0x67, 0xF0] {
        if bytes[..n].contains(&p) {
            kept.push(p);
        }
    }
    // The last of REPNE/REP decides.
    kept.extend(bytes[..n].iter().rev().find(|b| matches!(b, 0xF2 | 0xF3)));
    let k = kept.len();
    kept.extend_from_slice(&bytes[n..]);
    let mut decoder = Decoder::with_ip(16, &kept, 0, OPTIONS);
    let instr = decoder.decode();
    (decoder.last_error() == DecoderError::None).then(|| n + instr.len() - k)
}

/// One memory access of an instruction: the segment and the offset within
/// it, computed from the test's initial registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub segment: Register,
    /// Offset within the segment (16 or 32 bits, by the address size).
    pub offset: u32,
    /// Bytes accessed (at least 1).
    pub size: u32,
}

impl Access {
    /// True when the access reaches past offset FFFFh, which faults in real
    /// mode (the segment limit is FFFFh; SDM vol. 3, 20.1.1).
    pub fn overruns(&self) -> bool {
        self.offset as u64 + self.size as u64 > 0x1_0000
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
            r if r.is_segment_register() => Some(0),
            r if r.is_gpr16() || r.is_gpr32() => initial_register(test, r).map(u64::from),
            _ => None,
        }
    };
    info.used_memory()
        .iter()
        .filter_map(|m| {
            let offset = m.virtual_address(0, |r, _, _| reg(r))?;
            Some(Access { segment: m.segment(), offset: offset as u32, size: (m.memory_size().size() as u32).max(1) })
        })
        .collect()
}

/// The physical address of an access, from the test's initial segment
/// registers (real mode: selector times 16 plus offset).
pub fn physical_address(test: &TestCase, access: &Access) -> Option<u32> {
    let selector = initial_register(test, access.segment)?;
    Some((selector << 4).wrapping_add(access.offset))
}

/// The value of a general (8-, 16- or 32-bit) or segment register in the
/// test's initial state.
pub fn initial_register(test: &TestCase, r: Register) -> Option<u32> {
    let value = |which: Reg| test.initial.reg32(which);
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
            let seg = match r {
                Register::ES => Reg::Es,
                Register::CS => Reg::Cs,
                Register::SS => Reg::Ss,
                Register::DS => Reg::Ds,
                Register::FS => Reg::Fs,
                Register::GS => Reg::Gs,
                _ => return None,
            };
            return value(seg).map(|v| v & 0xFFFF);
        }
    };
    let v = value(which)?;
    Some(match r {
        Register::AL | Register::BL | Register::CL | Register::DL => v & 0xFF,
        Register::AH | Register::BH | Register::CH | Register::DH => (v >> 8) & 0xFF,
        r if r.is_gpr16() => v & 0xFFFF,
        r if r.is_gpr32() => v,
        _ => return None,
    })
}

/// The [`Reg`] slot of a general register of any size.
pub fn gpr_slot(r: Register) -> Option<Reg> {
    Some(match r.full_register32() {
        Register::EAX => Reg::Ax,
        Register::EBX => Reg::Bx,
        Register::ECX => Reg::Cx,
        Register::EDX => Reg::Dx,
        Register::ESP => Reg::Sp,
        Register::EBP => Reg::Bp,
        Register::ESI => Reg::Si,
        Register::EDI => Reg::Di,
        _ => return None,
    })
}

/// The value of operand `n` of the test's instruction (`instr`, decoded
/// from its bytes) before it runs: a register, or a byte, word or dword in
/// memory. A memory operand is taken to be the instruction's only memory
/// access. `None` when the bytes are not in the initial RAM or the access
/// would straddle offset FFFFh.
pub fn initial_operand(test: &TestCase, instr: &Instruction, n: u32) -> Option<u32> {
    match instr.op_kind(n) {
        OpKind::Register => initial_register(test, instr.op_register(n)),
        OpKind::Memory => {
            let access = memory_accesses(test).into_iter().next()?;
            if access.overruns() || !matches!(access.size, 1 | 2 | 4) {
                return None;
            }
            let at = physical_address(test, &access)?;
            let mut bytes = [0u8; 4];
            for (i, b) in bytes.iter_mut().take(access.size as usize).enumerate() {
                *b = test.initial_byte(at.wrapping_add(i as u32))?;
            }
            Some(u32::from_le_bytes(bytes))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlestep::{Arch, State};

    fn test_with(bytes: &[u8], regs: &[(Reg, u16)]) -> TestCase {
        let mut initial = State::default();
        for &(r, v) in regs {
            initial.regs[r.index()] = Some(v.into());
        }
        TestCase { bytes: bytes.to_vec(), initial, ..TestCase::default() }
    }

    #[test]
    fn opcode_skips_386_prefixes_too() {
        assert_eq!(opcode_of(&[0x64, 0x66, 0x67, 0x0F, 0xB6, 0x00]), Some((3, 0x0FB6)));
        assert_eq!(modrm_reg(&[0x66, 0x0F, 0xBA, 0xE0, 0x05]), Some(4));
        assert_eq!(modrm(&[0x67, 0x8B, 0x04, 0x24]), Some(0x04));
        assert!(has_operand_size_prefix(&[0x2E, 0x66, 0x01, 0xD8]));
        assert!(!has_operand_size_prefix(&[0x01, 0x66]));
        assert_eq!(prefix_bytes(&[0xF0, 0x65, 0x00, 0x07]), &[0xF0, 0x65]);
    }

    #[test]
    fn length_counts_every_prefix() {
        // add word [si+1DDFh],7693h: 6 bytes.
        let add = [0x81, 0x84, 0xDF, 0x1D, 0x93, 0x76];
        assert_eq!(length(&add), Some(6));
        let mut long = vec![0x2E; 10];
        long.extend_from_slice(&add);
        long.push(0xF4);
        assert_eq!(length(&long), Some(16));
        // 66 67 with a 32-bit displacement and immediate: 12 bytes, then 5
        // segment prefixes and LOCK.
        let wide = [0x66, 0x67, 0x81, 0x84, 0x24, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(length(&wide), Some(13));
        let mut longer = vec![0x26, 0x36, 0xF0, 0x3E, 0x64, 0x65];
        longer.extend_from_slice(&wide);
        assert_eq!(length(&longer), Some(19));
        assert_eq!(length(&[0x66, 0x81]), None);
    }

    #[test]
    fn accesses_and_operands_of_32_bit_addressing() {
        // mov eax,[ebx+esi*4+10h] with a 67 prefix: 32-bit offsets.
        let mut t = test_with(&[0x66, 0x67, 0x8B, 0x44, 0xB3, 0x10, 0xF4], &[(Reg::Ds, 0x1000)]);
        t.arch = Arch::I386;
        t.initial.regs[Reg::Bx.index()] = Some(0x0001_0000);
        t.initial.regs[Reg::Si.index()] = Some(0x0000_0004);
        let a = memory_accesses(&t);
        assert_eq!(a, vec![Access { segment: Register::DS, offset: 0x0001_0020, size: 4 }]);
        assert!(a[0].overruns());
        t.initial.regs[Reg::Bx.index()] = Some(0x0000_FF00);
        let a = memory_accesses(&t);
        assert_eq!(physical_address(&t, &a[0]), Some(0x1FF20));
        t.initial.ram = vec![(0x1FF20, 0x78), (0x1FF21, 0x56), (0x1FF22, 0x34), (0x1FF23, 0x12)];
        let instr = decode(&t.bytes);
        assert_eq!(initial_operand(&t, &instr, 1), Some(0x1234_5678));
        assert_eq!(initial_register(&t, Register::EBX), Some(0xFF00));
        t.initial.regs[Reg::Fs.index()] = Some(0x2345);
        assert_eq!(initial_register(&t, Register::FS), Some(0x2345));
        assert_eq!(gpr_slot(Register::SI), Some(Reg::Si));
        assert_eq!(gpr_slot(Register::FS), None);
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
        assert_eq!(initial_register(&t, Register::ECX), Some(0xABCD));
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
