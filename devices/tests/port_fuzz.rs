//! A guest that writes garbage to every port, reads back and programs the
//! devices nonsensically must not crash or hang the host. These tests drive
//! the board with seeded random port traffic (biased towards the ports the
//! devices decode) while the CPU runs between bursts, with disks, a CD and a
//! floppy attached so the storage controllers and DMA see it too.

use ferrite_core::cpu::state::SegReg;
use ferrite_core::{AccessSize, Bus, GuestMemory, PhysAddr};
use ferrite_devices::block::MemBackend;
use ferrite_devices::ide::{DrivePosition, IdeChannel, IdeDevice};
use ferrite_devices::pc::{Machine, PcConfig, RunExit};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Port ranges the board decodes; most of the traffic goes here.
const DECODED: &[(u16, u16)] = &[
    (0x00, 0x0F),
    (0x20, 0x21),
    (0x40, 0x43),
    (0x60, 0x64),
    (0x70, 0x71),
    (0x80, 0x8F),
    (0x92, 0x92),
    (0xA0, 0xA1),
    (0xC0, 0xDF),
    (0xE9, 0xE9),
    (0x170, 0x177),
    (0x1F0, 0x1F7),
    (0x2F8, 0x2FF),
    (0x376, 0x376),
    (0x3F0, 0x3F7),
    (0x3F8, 0x3FF),
    (0x4D0, 0x4D1),
    (0xC000, 0xC00F),
    (0xCF8, 0xCFF),
];

fn machine() -> Machine {
    let mem = GuestMemory::new(8 << 20).unwrap();
    let mut m = Machine::new(mem, &PcConfig { debug_exit: false, ..PcConfig::default() });
    let disk: Vec<u8> = (0..64 * 512).map(|i| i as u8).collect();
    m.pc.ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Disk(Box::new(MemBackend::new(disk))));
    let iso = vec![0x5Au8; 32 * 2048];
    m.pc.ide.attach(
        IdeChannel::Secondary,
        DrivePosition::Master,
        IdeDevice::Cdrom(Some(Box::new(MemBackend::new(iso)))),
    );
    let floppy = vec![0xF6u8; 1_474_560];
    m.pc.fdc.insert(0, Box::new(MemBackend::new(floppy))).unwrap();
    m
}

/// Point the CPU at a small real-mode loop that keeps interrupts enabled
/// and touches a few ports itself, so interrupts and DMA get delivered.
fn park_cpu(m: &mut Machine) {
    // sti; in al,0x61; out 0x80,al; hlt; jmp short start
    let code = [0xFB, 0xE4, 0x61, 0xE6, 0x80, 0xF4, 0xEB, 0xF8];
    m.mem.load(PhysAddr(0x7C00), &code);
    // Every interrupt vector points at an IRET at 0x7BF0.
    m.mem.load(PhysAddr(0x7BF0), &[0xCF]);
    let ivt: Vec<u8> = (0..256).flat_map(|_| [0xF0, 0x7B, 0x00, 0x00]).collect();
    m.mem.load(PhysAddr(0), &ivt);
    m.cpu.state.load_seg_real(SegReg::Cs, 0);
    m.cpu.state.eip = 0x7C00;
    m.cpu.state.halted = false;
}

fn fuzz(seed: u64, ops: usize) {
    let mut rng = Rng(seed | 1);
    let mut m = machine();
    park_cpu(&mut m);
    for i in 0..ops {
        let port = if rng.below(4) == 0 {
            rng.next() as u16
        } else {
            let (lo, hi) = DECODED[rng.below(DECODED.len() as u64) as usize];
            lo + rng.below((hi - lo + 1) as u64) as u16
        };
        let size = match rng.below(8) {
            0 => AccessSize::Dword,
            1 => AccessSize::Word,
            _ => AccessSize::Byte,
        };
        let value = match rng.below(4) {
            0 => 0,
            1 => u32::MAX,
            _ => rng.next() as u32,
        };
        if rng.below(3) == 0 {
            let v = m.pc.io_read(port, size);
            assert_eq!(v & !size.all_ones(), 0, "port {port:#x} returned bits beyond its width");
        } else {
            m.pc.io_write(port, size, value);
        }
        if i % 32 == 31 {
            // Let the board apply chipset changes, reset requests and DMA,
            // and let the CPU take whatever interrupts are now pending.
            park_cpu(&mut m);
            let exit = m.run(2_000);
            assert!(matches!(exit, RunExit::Budget | RunExit::HaltedForever), "{exit:?}");
            m.pc.take_debugcon();
            for c in m.pc.com.iter_mut() {
                c.take_output();
            }
        }
    }
    // The machine is still usable: a reset brings back a sane board.
    m.reset();
    m.pc.io_write(0x70, AccessSize::Byte, 0x0F);
    m.pc.io_read(0x71, AccessSize::Byte);
    m.pc.io_write(0xCF8, AccessSize::Dword, 0x8000_0000);
    assert_eq!(m.pc.io_read(0xCFC, AccessSize::Dword), 0x1237_8086);
}

#[test]
fn random_port_traffic_cannot_crash_or_hang_the_board() {
    for seed in 1..=6u64 {
        fuzz(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 40_000);
    }
}

#[test]
fn the_storage_controllers_survive_nonsense_commands() {
    // Every ATA/ATAPI command byte on both channels with random registers,
    // with bus-master DMA armed at random addresses, and every floppy
    // command byte followed by random parameters.
    let mut rng = Rng(0xDEAD_BEEF);
    let mut m = machine();
    m.pc.io_write(0xCF8, AccessSize::Dword, 0x8000_0920);
    m.pc.io_write(0xCFC, AccessSize::Dword, 0xC001);
    m.pc.io_write(0xCF8, AccessSize::Dword, 0x8000_0904);
    m.pc.io_write(0xCFC, AccessSize::Word, 0x0005);
    for cmd in 0..=255u32 {
        for (base, bm) in [(0x1F0u16, 0xC000u16), (0x170, 0xC008)] {
            m.pc.io_write(bm + 4, AccessSize::Dword, rng.next() as u32 & 0x00FF_FFFC);
            for r in 1..=6 {
                m.pc.io_write(base + r, AccessSize::Byte, rng.next() as u32);
            }
            m.pc.io_write(base + 7, AccessSize::Byte, cmd);
            m.pc.io_write(bm, AccessSize::Byte, rng.below(16) as u32);
            for _ in 0..8 {
                m.pc.io_write(base, AccessSize::Word, rng.next() as u32);
                m.pc.io_read(base, AccessSize::Dword);
            }
            m.pc.service_dma(&mut m.mem);
            m.pc.io_read(base + 7, AccessSize::Byte);
        }
        m.pc.io_write(0x3F5, AccessSize::Byte, cmd);
        for _ in 0..9 {
            m.pc.io_write(0x3F5, AccessSize::Byte, rng.next() as u32);
            m.pc.io_read(0x3F4, AccessSize::Byte);
        }
        m.pc.io_write(0x0A, AccessSize::Byte, 0x02); // unmask DMA channel 2
        m.pc.service_dma(&mut m.mem);
        park_cpu(&mut m);
        m.run(500);
    }
}
