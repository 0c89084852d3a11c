//! The physical memory map the BIOS reports (INT 15h E820h, E801h, 88h) and
//! hands to directly booted kernels.

/// E820 range types (ACPI specification, "Address Range Types").
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// Where the extended BIOS data area starts (1 KiB below 640 KiB).
pub const EBDA_BASE: u32 = 0x9_FC00;

/// One range of the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub base: u64,
    pub len: u64,
    pub kind: u32,
}

/// The map of a PC with `ram_bytes` of RAM: conventional memory below the
/// EBDA, the EBDA and the BIOS area reserved, extended memory from 1 MiB, and
/// the BIOS ROM alias below 4 GiB reserved.
pub fn memory_map(ram_bytes: usize) -> Vec<E820Entry> {
    let ram = ram_bytes as u64;
    let mut map = vec![
        E820Entry { base: 0, len: EBDA_BASE as u64, kind: E820_RAM },
        E820Entry { base: EBDA_BASE as u64, len: 0xA_0000 - EBDA_BASE as u64, kind: E820_RESERVED },
        E820Entry { base: 0xF_0000, len: 0x1_0000, kind: E820_RESERVED },
    ];
    if ram > 0x10_0000 {
        map.push(E820Entry { base: 0x10_0000, len: ram - 0x10_0000, kind: E820_RAM });
    }
    map.push(E820Entry { base: 0xFFFC_0000, len: 0x4_0000, kind: E820_RESERVED });
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_covers_low_and_extended_memory_without_overlap() {
        let map = memory_map(32 << 20);
        let ram: u64 = map.iter().filter(|e| e.kind == E820_RAM).map(|e| e.len).sum();
        assert_eq!(ram, EBDA_BASE as u64 + (31 << 20));
        for w in map.windows(2) {
            assert!(w[0].base + w[0].len <= w[1].base, "{:?} overlaps {:?}", w[0], w[1]);
        }
    }
}
