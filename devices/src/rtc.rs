//! MC146818A-compatible real-time clock and CMOS RAM, as on the IBM PC/AT:
//! index port 0x70 (bit 7 masks NMI), data port 0x71, interrupt on IRQ 8.
//!
//! References: Motorola MC146818A datasheet ("MC146818A Real-Time Clock Plus
//! RAM", sections "Address map", "Time, calendar and alarm locations",
//! "Update cycle", "Interrupts", "Registers A-D") and the Dallas DS12887
//! datasheet (the PC-compatible descendant, for the divider-control values a
//! PC uses). The century byte at 0x32 follows the IBM AT CMOS layout.
//!
//! Model:
//! - All 128 bytes, time registers included, are raw bytes as the guest sees
//!   them (BCD or binary, 12- or 24-hour, exactly as written). The update
//!   cycle decodes them in the *current* register B format, increments, and
//!   writes back the fields that changed, as the chip's own counters do; a
//!   guest that switches format without rewriting the time gets what real
//!   hardware gives it.
//! - Time is virtual and computed lazily: the divider chain is described by
//!   the instant of the next once-per-second update and the origin of the
//!   32.768 kHz tick count, so catching up after any amount of virtual time is
//!   a handful of integer operations (plus one loop per elapsed month).
//! - The start time comes from the board ([`Rtc::new`]); the host clock is
//!   never read.

use serde::{Deserialize, Serialize};

use crate::{AccessSize, DevCtx, Nanos, PortIo, Timed};

/// Index (address) port. Write-only on the AT; bit 7 masks NMI.
pub const RTC_INDEX_PORT: u16 = 0x70;
/// Data port for the register selected through [`RTC_INDEX_PORT`].
pub const RTC_DATA_PORT: u16 = 0x71;
/// The ISA interrupt line the RTC drives on a PC.
pub const RTC_IRQ: u8 = 8;

/// Register indexes (MC146818A address map).
pub const REG_SECONDS: u8 = 0x00;
pub const REG_SECONDS_ALARM: u8 = 0x01;
pub const REG_MINUTES: u8 = 0x02;
pub const REG_MINUTES_ALARM: u8 = 0x03;
pub const REG_HOURS: u8 = 0x04;
pub const REG_HOURS_ALARM: u8 = 0x05;
pub const REG_DAY_OF_WEEK: u8 = 0x06;
pub const REG_DAY_OF_MONTH: u8 = 0x07;
pub const REG_MONTH: u8 = 0x08;
pub const REG_YEAR: u8 = 0x09;
pub const REG_A: u8 = 0x0A;
pub const REG_B: u8 = 0x0B;
pub const REG_C: u8 = 0x0C;
pub const REG_D: u8 = 0x0D;
/// IBM AT CMOS layout: the century, in the same BCD/binary format as the year.
pub const REG_CENTURY: u8 = 0x32;
/// IBM AT CMOS layout: the checksum covers 0x10..=0x2D and is stored
/// big-endian at 0x2E (high byte) and 0x2F (low byte).
pub const CHECKSUM_RANGE: std::ops::RangeInclusive<usize> = 0x10..=0x2D;
pub const REG_CHECKSUM_HIGH: u8 = 0x2E;
pub const REG_CHECKSUM_LOW: u8 = 0x2F;

/// Register A bits.
pub const A_UIP: u8 = 0x80;
const A_DV_MASK: u8 = 0x70;
const A_RS_MASK: u8 = 0x0F;
/// Register B bits.
pub const B_SET: u8 = 0x80;
pub const B_PIE: u8 = 0x40;
pub const B_AIE: u8 = 0x20;
pub const B_UIE: u8 = 0x10;
pub const B_SQWE: u8 = 0x08;
pub const B_DM_BINARY: u8 = 0x04;
pub const B_24H: u8 = 0x02;
pub const B_DSE: u8 = 0x01;
/// Register C bits.
pub const C_IRQF: u8 = 0x80;
pub const C_PF: u8 = 0x40;
pub const C_AF: u8 = 0x20;
pub const C_UF: u8 = 0x10;
/// Register D bit 7: valid RAM and time (the battery is good).
pub const D_VRT: u8 = 0x80;

/// Power-on values a PC BIOS programs: 32.768 kHz time base (DV = 010) and
/// 1024 Hz periodic rate (RS = 0110); 24-hour BCD.
const DEFAULT_A: u8 = 0x26;
const DEFAULT_B: u8 = B_24H;

const NS_PER_SEC: u64 = 1_000_000_000;
/// MC146818A "UIP bit": set t_BUC = 244 µs before the update transfer, so a
/// guest that reads UIP = 0 has at least that long to read the time.
pub const UIP_LEAD_NS: u64 = 244_000;
/// DS12887 "Register A": after the divider leaves reset (DV = 11x) and
/// returns to 010, the first update occurs 500 ms later.
const FIRST_UPDATE_AFTER_RESET_NS: u64 = 500_000_000;
/// One tick of the 32.768 kHz time base is 1e9 / 32768 = 1953125 / 64 ns.
const TICK_NS_NUM: i128 = 1_953_125;
const TICK_NS_DEN: i128 = 64;
/// The longest periodic rate (2 Hz) is 16384 ticks = exactly 500 ms; every
/// other rate divides it, so the divider phase is kept modulo this.
const DIVIDER_PHASE_MODULUS_NS: u64 = 500_000_000;

/// A calendar date and time of day, what the board passes as the start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcDateTime {
    /// Full year, e.g. 1999.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
}

impl RtcDateTime {
    /// The UTC date and time `secs` seconds after 1970-01-01 00:00:00.
    /// Times after 9999-12-31 23:59:59 are clamped to it.
    pub fn from_unix_seconds(secs: u64) -> RtcDateTime {
        let secs = secs.min(253_402_300_799);
        let mut days = secs / 86_400;
        let tod = secs % 86_400;
        let mut year: u32 = 1970;
        loop {
            let len = if is_leap(year) { 366 } else { 365 };
            if days < len {
                break;
            }
            days -= len;
            year += 1;
        }
        let mut month: u8 = 1;
        loop {
            let len = u64::from(month_length(month, year));
            if days < len {
                break;
            }
            days -= len;
            month += 1;
        }
        RtcDateTime {
            year: year.min(u32::from(u16::MAX)) as u16,
            month,
            day: days as u8 + 1,
            hour: (tod / 3600) as u8,
            minute: (tod / 60 % 60) as u8,
            second: (tod % 60) as u8,
        }
    }

    /// Day of the week as the MC146818A counts it: 1 = Sunday .. 7 = Saturday.
    pub fn day_of_week(&self) -> u8 {
        let days = days_from_year_zero(u32::from(self.year), self.month, self.day);
        // 0000-03-01 (proleptic Gregorian) was a Wednesday; day 0 here is
        // 0000-01-01, a Saturday. Saturday = 7, so day 0 maps to 7.
        ((days + 6) % 7) as u8 + 1
    }
}

/// Gregorian leap-year rule, century rule included (2000 is leap, 2100 is
/// not). The original MC146818A only tests year % 4 == 0; PC chipset RTCs
/// with a century byte and every OS reading them use the full rule.
fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days in `month` (1..=12) of `year`; an invalid month counts as 31 days so
/// that garbage written by a guest still rolls over.
fn month_length(month: u8, year: u32) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days from 0000-01-01 to `year-month-day` (proleptic Gregorian).
fn days_from_year_zero(year: u32, month: u8, day: u8) -> u64 {
    let y = u64::from(year);
    // Leap years strictly before `year` (year 0 is leap).
    let leaps = if y == 0 { 0 } else { (y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400 + 1 };
    let mut days = y * 365 + leaps;
    for m in 1..month.clamp(1, 13) {
        days += u64::from(month_length(m, year));
    }
    days + u64::from(day.max(1)) - 1
}

/// Decoded time/date fields. Values may be out of range when the guest wrote
/// nonsense; hours are canonical 0..=23 (0xFF when undecodable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fields {
    sec: u8,
    min: u8,
    hour: u8,
    dow: u8,
    dom: u8,
    mon: u8,
    year: u8,
    cent: u8,
}

impl Fields {
    fn full_year(&self) -> u32 {
        u32::from(self.cent) * 100 + u32::from(self.year)
    }

    /// One day later, as the chip's day, month, year (and century) counters
    /// step at midnight. Out-of-range values roll over on their next carry.
    fn step_day(&mut self) {
        self.dow = if self.dow >= 7 { 1 } else { self.dow + 1 };
        self.step_date();
    }

    /// The date part of [`Fields::step_day`], without day of week.
    fn step_date(&mut self) {
        if self.dom >= month_length(self.mon, self.full_year()) {
            self.dom = 1;
            self.step_month();
        } else {
            self.dom += 1;
        }
    }

    fn step_month(&mut self) {
        if self.mon >= 12 {
            self.mon = 1;
            if self.year >= 99 {
                self.year = 0;
                self.cent = if self.cent >= 99 { 0 } else { self.cent + 1 };
            } else {
                self.year += 1;
            }
        } else {
            self.mon += 1;
        }
    }

    /// `days` days later, one month per loop iteration once the date is valid.
    fn advance_days(&mut self, days: u64) {
        if days == 0 {
            return;
        }
        // Day of week counts 1..7 independently of the date; an invalid
        // value behaves as 7 (its next step gives 1).
        let dow0 = if (1..=7).contains(&self.dow) { self.dow } else { 7 };
        self.dow = ((u64::from(dow0) - 1 + days % 7) % 7) as u8 + 1;
        let mut left = days;
        while left > 0 {
            let len = month_length(self.mon, self.full_year());
            let valid =
                (1..=12).contains(&self.mon) && (1..=len).contains(&self.dom) && self.year <= 99 && self.cent <= 99;
            if valid {
                let rest = u64::from(len - self.dom);
                if left <= rest {
                    self.dom += left as u8;
                    left = 0;
                } else {
                    left -= rest + 1;
                    self.dom = 1;
                    self.step_month();
                }
            } else {
                self.step_date();
                left -= 1;
            }
        }
    }
}

/// What an alarm register asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AlarmField {
    /// 0xC0..=0xFF: "don't care" (MC146818A "Time, calendar and alarm
    /// locations": an alarm byte with both high bits set matches any value).
    Any,
    Exact(u8),
    /// A value no time register can hold: never matches.
    Never,
}

impl AlarmField {
    fn matches(self, v: u8) -> bool {
        match self {
            AlarmField::Any => true,
            AlarmField::Exact(x) => x == v,
            AlarmField::Never => false,
        }
    }

    /// The smallest matching value in `from..limit`.
    fn first_from(self, from: u8, limit: u8) -> Option<u8> {
        match self {
            AlarmField::Any if from < limit => Some(from),
            AlarmField::Exact(x) if x >= from && x < limit => Some(x),
            _ => None,
        }
    }
}

/// Everything a snapshot must carry to resume the RTC exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcState {
    /// The 128 CMOS bytes, time registers and registers A/B included (A
    /// without UIP, which is derived; C and D live elsewhere).
    pub ram: Vec<u8>,
    /// Register C interrupt flags (PF, AF, UF); IRQF is derived.
    pub flags: u8,
    /// Last value written to the index port, bits 0-6.
    pub index: u8,
    /// Bit 7 of the last index write (NMI masked on the AT).
    pub nmi_masked: bool,
    /// Virtual time the state has been advanced to, ns.
    pub now: u64,
    /// When the next once-per-second update happens, ns.
    pub next_update: u64,
    /// Virtual time at which the 32.768 kHz tick count was zero, ns.
    pub periodic_origin: i64,
    /// While the divider is stopped: time left to the next update, ns.
    pub stopped_update_left: u64,
    /// While the divider is stopped: tick phase, ns modulo 500 ms.
    pub stopped_periodic_phase: u64,
}

/// The MC146818A RTC and its 128 bytes of CMOS RAM.
#[derive(Clone, Debug)]
pub struct Rtc {
    ram: [u8; 128],
    flags: u8,
    index: u8,
    nmi_masked: bool,
    now: u64,
    next_update: u64,
    periodic_origin: i64,
    stopped_update_left: u64,
    stopped_periodic_phase: u64,
}

impl Rtc {
    /// An RTC showing `start` at virtual time zero, in the format a PC BIOS
    /// leaves it (24-hour BCD, 32.768 kHz time base, 1024 Hz periodic rate,
    /// no interrupts enabled). The first update happens one second later.
    /// Fields of `start` out of range are stored as given (clamped to a byte).
    pub fn new(start: RtcDateTime) -> Rtc {
        let mut rtc = Rtc {
            ram: [0; 128],
            flags: 0,
            index: 0,
            nmi_masked: false,
            now: 0,
            next_update: NS_PER_SEC,
            periodic_origin: 0,
            stopped_update_left: FIRST_UPDATE_AFTER_RESET_NS,
            stopped_periodic_phase: 0,
        };
        rtc.ram[REG_A as usize] = DEFAULT_A;
        rtc.ram[REG_B as usize] = DEFAULT_B;
        rtc.set_datetime(start);
        rtc
    }

    /// An RTC starting at `secs` seconds after the Unix epoch (UTC).
    pub fn from_unix_seconds(secs: u64) -> Rtc {
        Rtc::new(RtcDateTime::from_unix_seconds(secs))
    }

    /// Write `dt` into the time registers in the current register B format
    /// (what a BIOS setup program does with SET = 1).
    pub fn set_datetime(&mut self, dt: RtcDateTime) {
        let f = Fields {
            sec: dt.second,
            min: dt.minute,
            hour: dt.hour,
            dow: dt.day_of_week(),
            dom: dt.day,
            mon: dt.month,
            year: (dt.year % 100) as u8,
            cent: (dt.year / 100).min(255) as u8,
        };
        self.store_all(&f);
    }

    /// The date and time the registers hold now, decoded in the current
    /// format (None if the guest left them undecodable).
    pub fn datetime(&self) -> Option<RtcDateTime> {
        let f = self.fields();
        let valid = self.tod_valid()
            && (1..=12).contains(&f.mon)
            && (1..=month_length(f.mon, f.full_year())).contains(&f.dom)
            && f.year <= 99
            && f.cent <= 99;
        valid.then(|| RtcDateTime {
            year: (f.full_year()) as u16,
            month: f.mon,
            day: f.dom,
            hour: f.hour,
            minute: f.min,
            second: f.sec,
        })
    }

    /// The raw CMOS bytes, for the board to fill the BIOS fields (memory
    /// size, equipment, drive types...). Bytes 0x00-0x0D are the clock's own
    /// registers; writing them here bypasses the datasheet's rules.
    pub fn nvram_mut(&mut self) -> &mut [u8; 128] {
        &mut self.ram
    }

    /// The raw CMOS bytes.
    pub fn nvram(&self) -> &[u8; 128] {
        &self.ram
    }

    /// IBM AT checksum: the 16-bit sum of bytes 0x10..=0x2D.
    pub fn checksum(&self) -> u16 {
        self.ram[CHECKSUM_RANGE].iter().fold(0u16, |s, &b| s.wrapping_add(u16::from(b)))
    }

    /// Store [`Rtc::checksum`] at 0x2E (high byte) and 0x2F (low byte), as
    /// IBM AT BIOSes expect after the board filled the NVRAM fields.
    pub fn update_checksum(&mut self) {
        let [hi, lo] = self.checksum().to_be_bytes();
        self.ram[REG_CHECKSUM_HIGH as usize] = hi;
        self.ram[REG_CHECKSUM_LOW as usize] = lo;
    }

    /// Whether the last index write had bit 7 set (NMI disabled on the AT).
    /// Remembered for the board; the RTC itself does nothing with it.
    pub fn nmi_masked(&self) -> bool {
        self.nmi_masked
    }

    /// The current level of the interrupt output (register C IRQF).
    pub fn irq_level(&self) -> bool {
        self.irqf()
    }

    /// Snapshot.
    pub fn state(&self) -> RtcState {
        RtcState {
            ram: self.ram.to_vec(),
            flags: self.flags,
            index: self.index,
            nmi_masked: self.nmi_masked,
            now: self.now,
            next_update: self.next_update,
            periodic_origin: self.periodic_origin,
            stopped_update_left: self.stopped_update_left,
            stopped_periodic_phase: self.stopped_periodic_phase,
        }
    }

    /// Load a snapshot. A RAM image of the wrong length is truncated or
    /// zero-padded; out-of-range fields are masked, never trusted.
    pub fn restore(&mut self, state: &RtcState) {
        self.ram = [0; 128];
        let n = state.ram.len().min(128);
        self.ram[..n].copy_from_slice(&state.ram[..n]);
        self.ram[REG_A as usize] &= !A_UIP;
        self.flags = state.flags & (C_PF | C_AF | C_UF);
        self.index = state.index & 0x7F;
        self.nmi_masked = state.nmi_masked;
        self.now = state.now;
        self.next_update = state.next_update;
        self.periodic_origin = state.periodic_origin;
        self.stopped_update_left = state.stopped_update_left;
        self.stopped_periodic_phase = state.stopped_periodic_phase % DIVIDER_PHASE_MODULUS_NS;
    }

    // ---- register access -------------------------------------------------

    fn read_register(&mut self, index: u8) -> u8 {
        match index {
            REG_A => (self.ram[REG_A as usize] & !A_UIP) | if self.uip() { A_UIP } else { 0 },
            REG_C => {
                // Register C: "all flag bits are cleared after register C is
                // read", which also deasserts IRQ.
                let v = self.flags | if self.irqf() { C_IRQF } else { 0 };
                self.flags = 0;
                v
            }
            REG_D => D_VRT,
            _ => self.ram[(index & 0x7F) as usize],
        }
    }

    fn write_register(&mut self, index: u8, value: u8) {
        match index {
            REG_A => self.write_a(value),
            REG_B => {
                let old = self.ram[REG_B as usize];
                let mut v = value;
                // Register B, UIE: "the SET bit going high clears UIE".
                if v & B_SET != 0 && old & B_SET == 0 {
                    v &= !B_UIE;
                }
                self.ram[REG_B as usize] = v;
            }
            // Registers C and D are read-only.
            REG_C | REG_D => {}
            _ => self.ram[(index & 0x7F) as usize] = value,
        }
    }

    /// Register A: UIP is read-only; DV2-0 start, stop or reset the divider.
    fn write_a(&mut self, value: u8) {
        let was_running = self.running();
        self.ram[REG_A as usize] = value & !A_UIP;
        let dv = value & A_DV_MASK;
        let now = self.now;
        if was_running && !Self::dv_running(dv) {
            // Leaving normal operation: freeze the divider phase.
            self.stopped_update_left = self.next_update.saturating_sub(now);
            let elapsed = i128::from(now) - i128::from(self.periodic_origin);
            self.stopped_periodic_phase = elapsed.rem_euclid(i128::from(DIVIDER_PHASE_MODULUS_NS)) as u64;
        }
        if Self::dv_reset(dv) {
            // DS12887: "11X enables the oscillator but holds the countdown
            // chain in reset. The next update occurs at 500 ms after a
            // pattern of 010 is written."
            self.stopped_update_left = FIRST_UPDATE_AFTER_RESET_NS;
            self.stopped_periodic_phase = 0;
        }
        if !was_running && Self::dv_running(dv) {
            self.next_update = now.saturating_add(self.stopped_update_left);
            self.periodic_origin =
                i64::try_from(now).unwrap_or(i64::MAX).saturating_sub(self.stopped_periodic_phase as i64);
        }
    }

    // ---- time keeping ----------------------------------------------------

    /// DS12887: "a pattern of 010 is the only combination that turns the
    /// oscillator on and allows the RTC to keep time".
    fn dv_running(dv: u8) -> bool {
        dv == 0x20
    }

    fn dv_reset(dv: u8) -> bool {
        dv & 0x60 == 0x60
    }

    fn running(&self) -> bool {
        Self::dv_running(self.ram[REG_A as usize] & A_DV_MASK)
    }

    fn reg_b(&self) -> u8 {
        self.ram[REG_B as usize]
    }

    fn uip(&self) -> bool {
        // Writing SET = 1 "inhibits any update transfer and clears UIP".
        self.running() && self.reg_b() & B_SET == 0 && self.now >= self.next_update.saturating_sub(UIP_LEAD_NS)
    }

    /// IRQF = PF·PIE + AF·AIE + UF·UIE (register C).
    fn irqf(&self) -> bool {
        let b = self.reg_b();
        (self.flags & C_PF != 0 && b & B_PIE != 0)
            || (self.flags & C_AF != 0 && b & B_AIE != 0)
            || (self.flags & C_UF != 0 && b & B_UIE != 0)
    }

    /// Periodic interrupt period in 32.768 kHz ticks for rate select `rs`
    /// (register A table: 1 and 2 give 256 and 128 Hz on this time base,
    /// 3..=15 give 8192 Hz down to 2 Hz).
    fn period_ticks(rs: u8) -> Option<i128> {
        match rs {
            0 => None,
            1 => Some(128),
            2 => Some(256),
            _ => Some(1i128 << (rs - 1)),
        }
    }

    fn tick_at(&self, t: u64) -> i128 {
        let elapsed = i128::from(t) - i128::from(self.periodic_origin);
        (elapsed * TICK_NS_DEN).div_euclid(TICK_NS_NUM)
    }

    /// First instant after `self.now` at which the periodic flag is set.
    fn next_periodic(&self) -> Option<u64> {
        let p = Self::period_ticks(self.ram[REG_A as usize] & A_RS_MASK)?;
        let k = self.tick_at(self.now).div_euclid(p) + 1;
        let ticks = k * p;
        // ceil(ticks * 1953125 / 64) ns after the origin.
        let ns = (ticks * TICK_NS_NUM + TICK_NS_DEN - 1).div_euclid(TICK_NS_DEN) + i128::from(self.periodic_origin);
        u64::try_from(ns.max(0)).ok()
    }

    /// Bring the clock to virtual time `t`.
    fn advance(&mut self, t: u64) {
        if t <= self.now {
            return;
        }
        if self.running() {
            // Register C, PF: set on every edge of the selected divider tap,
            // whatever PIE says.
            if let Some(p) = Self::period_ticks(self.ram[REG_A as usize] & A_RS_MASK) {
                if self.tick_at(t).div_euclid(p) > self.tick_at(self.now).div_euclid(p) {
                    self.flags |= C_PF;
                }
            }
            if t >= self.next_update {
                let n = (t - self.next_update) / NS_PER_SEC + 1;
                // SET = 1 inhibits the update transfer; the divider keeps
                // running, so the skipped seconds are simply lost.
                if self.reg_b() & B_SET == 0 {
                    self.run_updates(n);
                }
                self.next_update = self.next_update.saturating_add(n.saturating_mul(NS_PER_SEC));
            }
        }
        self.now = t;
    }

    /// Perform `n` once-per-second updates (n >= 1): advance the calendar,
    /// set UF, and AF if any of the intermediate times matched the alarm.
    fn run_updates(&mut self, n: u64) {
        let mut left = n;
        // Single steps while the time of day holds garbage (it becomes valid
        // within an hour of carries) or when only one step is due.
        while left > 0 && (left == 1 || !self.tod_valid()) {
            self.step_one_second();
            if self.alarm_matches_now() {
                self.flags |= C_AF;
            }
            left -= 1;
        }
        if left > 0 {
            if let Some(d) = self.next_alarm_delta() {
                if d <= left {
                    self.flags |= C_AF;
                }
            }
            let orig = self.fields();
            let mut f = orig;
            let tod = u64::from(f.hour) * 3600 + u64::from(f.min) * 60 + u64::from(f.sec);
            let total = tod + left;
            let secs = total % 86_400;
            f.hour = (secs / 3600) as u8;
            f.min = (secs / 60 % 60) as u8;
            f.sec = (secs % 60) as u8;
            f.advance_days(total / 86_400);
            self.store_changed(&orig, &f);
        }
        // Register C, UF: set after each update cycle.
        self.flags |= C_UF;
    }

    /// The chip's one-second increment with its carries.
    fn step_one_second(&mut self) {
        let orig = self.fields();
        let mut f = orig;
        if f.sec >= 59 {
            f.sec = 0;
            if f.min >= 59 {
                f.min = 0;
                if f.hour >= 23 {
                    f.hour = 0;
                    f.step_day();
                } else {
                    f.hour += 1;
                }
            } else {
                f.min += 1;
            }
        } else {
            f.sec += 1;
        }
        self.store_changed(&orig, &f);
    }

    /// Alarm check of the update cycle: each of the three alarm bytes equals
    /// its time byte or is a don't-care code.
    fn alarm_matches_now(&self) -> bool {
        [(REG_SECONDS_ALARM, REG_SECONDS), (REG_MINUTES_ALARM, REG_MINUTES), (REG_HOURS_ALARM, REG_HOURS)].iter().all(
            |&(a, t)| {
                let a = self.ram[a as usize];
                a & 0xC0 == 0xC0 || a == self.ram[t as usize]
            },
        )
    }

    /// Seconds until the time of day next matches the alarm (1..=86400), for
    /// a valid time of day.
    fn next_alarm_delta(&self) -> Option<u64> {
        let hs = self.alarm_field(REG_HOURS_ALARM, true);
        let ms = self.alarm_field(REG_MINUTES_ALARM, false);
        let ss = self.alarm_field(REG_SECONDS_ALARM, false);
        if [hs, ms, ss].contains(&AlarmField::Never) {
            return None;
        }
        let f = self.fields();
        let start = i64::from(f.min) * 60 + i64::from(f.sec);
        for dh in 0..=24u8 {
            let h = (f.hour + dh) % 24;
            if !hs.matches(h) {
                continue;
            }
            let mut m_from = if dh == 0 { f.min } else { 0 };
            while let Some(m) = ms.first_from(m_from, 60) {
                let s_from = if dh == 0 && m == f.min { f.sec + 1 } else { 0 };
                if let Some(s) = ss.first_from(s_from, 60) {
                    let d = i64::from(dh) * 3600 + i64::from(m) * 60 + i64::from(s) - start;
                    return u64::try_from(d).ok();
                }
                m_from = m + 1;
            }
        }
        None
    }

    fn alarm_field(&self, reg: u8, hours: bool) -> AlarmField {
        let raw = self.ram[reg as usize];
        if raw & 0xC0 == 0xC0 {
            return AlarmField::Any;
        }
        let (v, limit) = if hours { (self.decode_hour(raw), 24) } else { (self.decode(raw), 60) };
        let canonical = if hours { self.encode_hour(v) } else { self.encode(v) };
        if v < limit && canonical == raw {
            AlarmField::Exact(v)
        } else {
            AlarmField::Never
        }
    }

    // ---- formats (register B DM and 24/12) --------------------------------

    fn binary(&self) -> bool {
        self.reg_b() & B_DM_BINARY != 0
    }

    fn decode(&self, raw: u8) -> u8 {
        if self.binary() {
            raw
        } else {
            (raw >> 4) * 10 + (raw & 0x0F)
        }
    }

    fn encode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            ((v / 10 % 10) << 4) | (v % 10)
        }
    }

    /// Hours register to 0..=23; 0xFF when it holds no valid hour.
    fn decode_hour(&self, raw: u8) -> u8 {
        if self.reg_b() & B_24H != 0 {
            return self.decode(raw);
        }
        // 12-hour mode: 1..=12 with bit 7 set for PM (register B, 24/12).
        let h = self.decode(raw & 0x7F);
        if !(1..=12).contains(&h) {
            return 0xFF;
        }
        let h = if h == 12 { 0 } else { h };
        if raw & 0x80 != 0 {
            h + 12
        } else {
            h
        }
    }

    fn encode_hour(&self, h: u8) -> u8 {
        if self.reg_b() & B_24H != 0 {
            return self.encode(h);
        }
        let h12 = match h % 12 {
            0 => 12,
            x => x,
        };
        self.encode(h12) | if h >= 12 { 0x80 } else { 0 }
    }

    fn fields(&self) -> Fields {
        let r = |i: u8| self.ram[i as usize];
        Fields {
            sec: self.decode(r(REG_SECONDS)),
            min: self.decode(r(REG_MINUTES)),
            hour: self.decode_hour(r(REG_HOURS)),
            dow: self.decode(r(REG_DAY_OF_WEEK)),
            dom: self.decode(r(REG_DAY_OF_MONTH)),
            mon: self.decode(r(REG_MONTH)),
            year: self.decode(r(REG_YEAR)),
            cent: self.decode(r(REG_CENTURY)),
        }
    }

    /// Whether seconds, minutes and hours hold valid, canonically encoded
    /// values (so raw comparisons and decoded arithmetic agree).
    fn tod_valid(&self) -> bool {
        let f = self.fields();
        let r = |i: u8| self.ram[i as usize];
        f.sec < 60
            && f.min < 60
            && f.hour < 24
            && self.encode(f.sec) == r(REG_SECONDS)
            && self.encode(f.min) == r(REG_MINUTES)
            && self.encode_hour(f.hour) == r(REG_HOURS)
    }

    /// Write back the fields that changed, in the current format. Fields the
    /// update did not touch keep their raw bytes, garbage included.
    fn store_changed(&mut self, orig: &Fields, f: &Fields) {
        let pairs = [
            (REG_SECONDS, orig.sec, f.sec),
            (REG_MINUTES, orig.min, f.min),
            (REG_DAY_OF_WEEK, orig.dow, f.dow),
            (REG_DAY_OF_MONTH, orig.dom, f.dom),
            (REG_MONTH, orig.mon, f.mon),
            (REG_YEAR, orig.year, f.year),
            (REG_CENTURY, orig.cent, f.cent),
        ];
        for (reg, old, new) in pairs {
            if old != new {
                self.ram[reg as usize] = self.encode(new);
            }
        }
        if orig.hour != f.hour {
            self.ram[REG_HOURS as usize] = self.encode_hour(f.hour);
        }
    }

    fn store_all(&mut self, f: &Fields) {
        let pairs = [
            (REG_SECONDS, f.sec),
            (REG_MINUTES, f.min),
            (REG_DAY_OF_WEEK, f.dow),
            (REG_DAY_OF_MONTH, f.dom),
            (REG_MONTH, f.mon),
            (REG_YEAR, f.year),
            (REG_CENTURY, f.cent),
        ];
        for (reg, v) in pairs {
            self.ram[reg as usize] = self.encode(v);
        }
        self.ram[REG_HOURS as usize] = self.encode_hour(f.hour);
    }

    fn drive_irq(&self, cx: &mut DevCtx) {
        cx.irq.set(RTC_IRQ, self.irqf());
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        match port {
            RTC_DATA_PORT => self.read_register(self.index),
            // The AT's index port is write-only: reads float.
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        match port {
            RTC_INDEX_PORT => {
                self.index = value & 0x7F;
                self.nmi_masked = value & 0x80 != 0;
            }
            RTC_DATA_PORT => self.write_register(self.index, value),
            _ => {}
        }
    }
}

impl PortIo for Rtc {
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        self.advance(cx.now.0);
        // An 8-bit ISA device: a wider access reads consecutive ports.
        let mut v = 0u32;
        for i in 0..size.bytes() {
            v |= u32::from(self.read_byte(port.wrapping_add(i as u16))) << (8 * i);
        }
        self.drive_irq(cx);
        v
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, cx: &mut DevCtx) {
        self.advance(cx.now.0);
        for i in 0..size.bytes() {
            self.write_byte(port.wrapping_add(i as u16), (value >> (8 * i)) as u8);
        }
        self.drive_irq(cx);
    }
}

impl Timed for Rtc {
    fn poll(&mut self, cx: &mut DevCtx) {
        self.advance(cx.now.0);
        self.drive_irq(cx);
    }

    /// The next instant IRQ8 can rise: a periodic edge (PIE), the next update
    /// (UIE) or the next alarm match (AIE). None while IRQ8 is already high
    /// (only a register C read or B write, both port accesses, can lower
    /// it) or nothing is enabled. UIP needs no event: it is derived from the
    /// time whenever register A is read.
    fn next_event(&self) -> Option<Nanos> {
        if !self.running() || self.irqf() {
            return None;
        }
        let b = self.reg_b();
        let mut best: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        if b & B_PIE != 0 {
            consider(self.next_periodic());
        }
        if b & B_SET == 0 {
            if b & B_UIE != 0 {
                consider(Some(self.next_update));
            } else if b & B_AIE != 0 {
                if self.tod_valid() {
                    consider(
                        self.next_alarm_delta()
                            .map(|d| self.next_update.saturating_add((d - 1).saturating_mul(NS_PER_SEC))),
                    );
                } else {
                    consider(Some(self.next_update));
                }
            }
        }
        best.map(Nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IrqLines;

    const MS: u64 = 1_000_000;
    const SEC: u64 = NS_PER_SEC;

    /// A test harness: an RTC, its IRQ lines and an injected virtual clock.
    struct Bench {
        rtc: Rtc,
        irq: IrqLines,
        now: u64,
    }

    impl Bench {
        fn new(start: RtcDateTime) -> Bench {
            Bench { rtc: Rtc::new(start), irq: IrqLines::default(), now: 0 }
        }

        fn at(&mut self, t: u64) -> &mut Self {
            assert!(t >= self.now, "test clock must not go backwards");
            self.now = t;
            let mut cx = DevCtx { now: Nanos(t), irq: &mut self.irq };
            self.rtc.poll(&mut cx);
            self
        }

        fn read(&mut self, reg: u8) -> u8 {
            let mut cx = DevCtx { now: Nanos(self.now), irq: &mut self.irq };
            self.rtc.io_write(RTC_INDEX_PORT, AccessSize::Byte, u32::from(reg), &mut cx);
            self.rtc.io_read(RTC_DATA_PORT, AccessSize::Byte, &mut cx) as u8
        }

        fn write(&mut self, reg: u8, v: u8) {
            let mut cx = DevCtx { now: Nanos(self.now), irq: &mut self.irq };
            self.rtc.io_write(RTC_INDEX_PORT, AccessSize::Byte, u32::from(reg), &mut cx);
            self.rtc.io_write(RTC_DATA_PORT, AccessSize::Byte, u32::from(v), &mut cx);
        }

        /// (year, month, day, hour, minute, second, day of week), raw bytes.
        fn raw_time(&mut self) -> [u8; 8] {
            [
                self.read(REG_CENTURY),
                self.read(REG_YEAR),
                self.read(REG_MONTH),
                self.read(REG_DAY_OF_MONTH),
                self.read(REG_HOURS),
                self.read(REG_MINUTES),
                self.read(REG_SECONDS),
                self.read(REG_DAY_OF_WEEK),
            ]
        }

        fn irq8(&self) -> bool {
            self.irq.level(RTC_IRQ)
        }
    }

    fn dt(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> RtcDateTime {
        RtcDateTime { year, month, day, hour, minute, second }
    }

    #[test]
    fn unix_seconds_convert_to_calendar_dates() {
        assert_eq!(RtcDateTime::from_unix_seconds(0), dt(1970, 1, 1, 0, 0, 0));
        // 2000-02-29 12:34:56 UTC
        assert_eq!(RtcDateTime::from_unix_seconds(951_827_696), dt(2000, 2, 29, 12, 34, 56));
        // 2038-01-19 03:14:08 UTC
        assert_eq!(RtcDateTime::from_unix_seconds(1 << 31), dt(2038, 1, 19, 3, 14, 8));
    }

    #[test]
    fn day_of_week_counts_sunday_as_one() {
        assert_eq!(dt(1970, 1, 1, 0, 0, 0).day_of_week(), 5); // Thursday
        assert_eq!(dt(2000, 1, 1, 0, 0, 0).day_of_week(), 7); // Saturday
        assert_eq!(dt(2024, 3, 3, 0, 0, 0).day_of_week(), 1); // Sunday
        assert_eq!(dt(2100, 3, 1, 0, 0, 0).day_of_week(), 2); // Monday
    }

    #[test]
    fn reads_time_in_bcd_by_default() {
        let mut b = Bench::new(dt(1999, 12, 31, 23, 59, 58));
        assert_eq!(b.raw_time(), [0x19, 0x99, 0x12, 0x31, 0x23, 0x59, 0x58, 0x06]);
        assert_eq!(b.read(REG_A), DEFAULT_A);
        assert_eq!(b.read(REG_B), B_24H);
        assert_eq!(b.read(REG_D), D_VRT);
    }

    #[test]
    fn reads_time_in_binary_after_setting_it_in_binary() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.write(REG_B, B_SET | B_24H | B_DM_BINARY);
        b.rtc.set_datetime(dt(2021, 7, 14, 21, 45, 30));
        b.write(REG_B, B_24H | B_DM_BINARY);
        assert_eq!(b.raw_time(), [20, 21, 7, 14, 21, 45, 30, 4]);
        b.at(30 * SEC);
        assert_eq!(b.raw_time(), [20, 21, 7, 14, 21, 46, 0, 4]);
    }

    #[test]
    fn twelve_hour_mode_sets_pm_bit_and_rolls_noon_and_midnight() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.write(REG_B, B_SET); // 12-hour BCD
        b.rtc.set_datetime(dt(2000, 1, 1, 11, 59, 59));
        b.write(REG_B, 0);
        assert_eq!(b.read(REG_HOURS), 0x11);
        b.at(SEC);
        assert_eq!(b.read(REG_HOURS), 0x92, "12 PM");
        b.at(SEC + 3600 * SEC);
        assert_eq!(b.read(REG_HOURS), 0x81, "1 PM");
        b.at(SEC + 12 * 3600 * SEC);
        assert_eq!(b.read(REG_HOURS), 0x12, "12 AM");
        assert_eq!(b.read(REG_DAY_OF_MONTH), 0x02);
    }

    #[test]
    fn seconds_minutes_hours_days_months_and_years_roll_over() {
        let mut b = Bench::new(dt(1999, 12, 31, 23, 59, 58));
        b.at(SEC);
        assert_eq!(b.raw_time(), [0x19, 0x99, 0x12, 0x31, 0x23, 0x59, 0x59, 0x06]);
        b.at(2 * SEC);
        assert_eq!(b.raw_time(), [0x20, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x07]);
        assert_eq!(b.rtc.datetime(), Some(dt(2000, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn february_29_exists_in_2000_but_not_in_2100() {
        let mut b = Bench::new(dt(2000, 2, 28, 23, 59, 59));
        b.at(SEC);
        assert_eq!(b.rtc.datetime(), Some(dt(2000, 2, 29, 0, 0, 0)));
        b.at(SEC + 86_400 * SEC);
        assert_eq!(b.rtc.datetime(), Some(dt(2000, 3, 1, 0, 0, 0)));

        let mut b = Bench::new(dt(2100, 2, 28, 23, 59, 59));
        b.at(SEC);
        assert_eq!(b.rtc.datetime(), Some(dt(2100, 3, 1, 0, 0, 0)));
        assert_eq!(b.read(REG_DAY_OF_WEEK), 2, "Monday");

        let mut b = Bench::new(dt(2024, 2, 28, 12, 0, 0));
        b.at(86_400 * SEC);
        assert_eq!(b.rtc.datetime(), Some(dt(2024, 2, 29, 12, 0, 0)));
    }

    #[test]
    fn long_gaps_are_caught_up_in_one_cheap_step() {
        // 400 years of virtual time in one poll, checked against the
        // independent calendar conversion.
        let start = 946_684_800u64; // 2000-01-01 00:00:00
        let gap = 400 * 365 * 86_400 + 12_345;
        let mut b = Bench::new(RtcDateTime::from_unix_seconds(start));
        b.at(gap * SEC);
        let expect = RtcDateTime::from_unix_seconds(start + gap);
        assert_eq!(b.rtc.datetime(), Some(expect));
        assert_eq!(b.read(REG_DAY_OF_WEEK), expect.day_of_week());
        // An hour in many small polls agrees with one big poll.
        let mut c = Bench::new(RtcDateTime::from_unix_seconds(start));
        for i in 1..=3600 {
            c.at(i * SEC + 7 * MS);
        }
        let mut d = Bench::new(RtcDateTime::from_unix_seconds(start));
        d.at(3600 * SEC + 7 * MS);
        assert_eq!(c.raw_time(), d.raw_time());
        assert_eq!(c.rtc.datetime(), Some(dt(2000, 1, 1, 1, 0, 0)));
    }

    #[test]
    fn uip_is_set_for_244_us_before_each_update() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.at(SEC - UIP_LEAD_NS - 1);
        assert_eq!(b.read(REG_A) & A_UIP, 0);
        assert_eq!(b.read(REG_SECONDS), 0x00);
        b.at(SEC - UIP_LEAD_NS);
        assert_eq!(b.read(REG_A) & A_UIP, A_UIP);
        b.at(SEC - 1);
        assert_eq!(b.read(REG_A) & A_UIP, A_UIP);
        assert_eq!(b.read(REG_SECONDS), 0x00);
        b.at(SEC);
        assert_eq!(b.read(REG_A) & A_UIP, 0);
        assert_eq!(b.read(REG_SECONDS), 0x01);
        // A guest polling every 10 µs sees UIP go 1 then 0 once per second.
        let mut rises = 0;
        let mut last = false;
        let mut t = SEC;
        while t < 4 * SEC {
            b.at(t);
            let uip = b.read(REG_A) & A_UIP != 0;
            if uip && !last {
                rises += 1;
            }
            last = uip;
            t += 10_000;
        }
        assert_eq!(rises, 3);
    }

    #[test]
    fn periodic_interrupt_at_1024_hz_sets_pf_1024_times_a_second() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.write(REG_A, 0x26);
        b.write(REG_B, B_24H | B_PIE);
        let mut count = 0;
        while let Some(t) = b.rtc.next_event() {
            if t.0 > SEC {
                break;
            }
            b.at(t.0);
            assert!(b.irq8());
            let c = b.read(REG_C);
            assert_eq!(c & (C_IRQF | C_PF), C_IRQF | C_PF);
            assert!(!b.irq8());
            count += 1;
        }
        assert_eq!(count, 1024);
    }

    #[test]
    fn rate_select_one_and_two_give_256_and_128_hz() {
        for (rs, hz) in [(1u8, 256u64), (2, 128), (3, 8192), (15, 2)] {
            let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
            b.write(REG_A, 0x20 | rs);
            b.write(REG_B, B_24H | B_PIE);
            let mut count = 0;
            while let Some(t) = b.rtc.next_event() {
                if t.0 > SEC {
                    break;
                }
                b.at(t.0);
                b.read(REG_C);
                count += 1;
            }
            assert_eq!(count, hz, "RS={rs}");
        }
    }

    #[test]
    fn pf_is_set_without_pie_but_does_not_raise_irq8() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        assert_eq!(b.rtc.next_event(), None);
        b.at(2 * MS);
        assert!(!b.irq8());
        assert_eq!(b.read(REG_C), C_PF);
        assert_eq!(b.read(REG_C), 0);
        // Enabling PIE with PF pending raises IRQ8 at once (IRQF = PF·PIE).
        b.at(4 * MS);
        b.write(REG_B, B_24H | B_PIE);
        assert!(b.irq8());
    }

    #[test]
    fn update_ended_interrupt_fires_once_per_second() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.write(REG_B, B_24H | B_UIE);
        let mut times = Vec::new();
        while let Some(t) = b.rtc.next_event() {
            if t.0 > 5 * SEC {
                break;
            }
            b.at(t.0);
            assert!(b.irq8());
            assert_eq!(b.read(REG_C) & (C_IRQF | C_UF), C_IRQF | C_UF);
            times.push(t.0);
        }
        assert_eq!(times, vec![SEC, 2 * SEC, 3 * SEC, 4 * SEC, 5 * SEC]);
    }

    #[test]
    fn alarm_dont_care_codes_match_any_value() {
        let mut b = Bench::new(dt(2000, 1, 1, 10, 0, 0));
        b.write(REG_SECONDS_ALARM, 0x30);
        b.write(REG_MINUTES_ALARM, 0xC0);
        b.write(REG_HOURS_ALARM, 0xFF);
        b.write(REG_B, B_24H | B_AIE);
        // Every minute at :30.
        assert_eq!(b.rtc.next_event(), Some(Nanos(30 * SEC)));
        b.at(30 * SEC);
        assert!(b.irq8());
        assert_eq!(b.read(REG_C) & (C_IRQF | C_AF | C_UF), C_IRQF | C_AF | C_UF);
        assert_eq!(b.rtc.next_event(), Some(Nanos(90 * SEC)));

        // Exact hour and minute, don't-care seconds: 60 matches in a row.
        b.write(REG_SECONDS_ALARM, 0xC0);
        b.write(REG_MINUTES_ALARM, 0x05);
        b.write(REG_HOURS_ALARM, 0x11);
        let first = b.rtc.next_event().unwrap().0;
        // From 10:00:30 to 11:05:00 is 3870 s.
        assert_eq!(first, 30 * SEC + 3870 * SEC);
        b.at(first - SEC);
        assert!(!b.irq8());
        assert_eq!(b.read(REG_C) & C_AF, 0);
        let mut hits = 0;
        for i in 0..120 {
            b.at(first + i * SEC);
            if b.read(REG_C) & C_AF != 0 {
                hits += 1;
            }
        }
        assert_eq!(hits, 60);
    }

    #[test]
    fn alarm_matched_during_a_long_gap_sets_af() {
        let mut b = Bench::new(dt(2000, 1, 1, 10, 0, 0));
        b.write(REG_SECONDS_ALARM, 0x00);
        b.write(REG_MINUTES_ALARM, 0x00);
        b.write(REG_HOURS_ALARM, 0x03);
        b.at(10 * 3600 * SEC);
        assert_eq!(b.read(REG_C) & C_AF, 0, "03:00:00 not yet reached");
        b.at(18 * 3600 * SEC);
        assert_eq!(b.read(REG_C) & C_AF, C_AF);
        // An alarm no time can match never fires.
        b.write(REG_HOURS_ALARM, 0x24);
        b.write(REG_B, B_24H | B_AIE);
        assert_eq!(b.rtc.next_event(), None);
        b.at(50 * 3600 * SEC);
        assert_eq!(b.read(REG_C) & C_AF, 0);
    }

    #[test]
    fn reading_register_c_clears_flags_and_lowers_irq8() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.write(REG_B, B_24H | B_UIE);
        b.at(SEC);
        assert!(b.irq8());
        assert_eq!(b.rtc.next_event(), None, "line already high");
        assert_eq!(b.read(REG_C), C_IRQF | C_UF | C_PF);
        assert!(!b.irq8());
        assert_eq!(b.read(REG_C), 0);
        // Register C and D are read-only.
        b.write(REG_C, 0xFF);
        b.write(REG_D, 0x00);
        assert_eq!(b.read(REG_C), 0);
        assert_eq!(b.read(REG_D), D_VRT);
    }

    #[test]
    fn set_freezes_updates_and_accepts_a_new_time() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.write(REG_B, B_24H | B_UIE);
        b.at(SEC / 2);
        b.write(REG_B, B_SET | B_24H | B_UIE);
        assert_eq!(b.read(REG_B) & B_UIE, 0, "SET going high clears UIE");
        b.at(SEC - 100_000);
        assert_eq!(b.read(REG_A) & A_UIP, 0, "no UIP while SET");
        b.write(REG_HOURS, 0x13);
        b.write(REG_MINUTES, 0x14);
        b.write(REG_SECONDS, 0x15);
        b.at(5 * SEC + SEC / 2);
        assert_eq!(b.read(REG_SECONDS), 0x15);
        assert_eq!(b.read(REG_C) & C_UF, 0);
        b.write(REG_B, B_24H);
        // Counting resumes on the divider's one-second grid.
        b.at(6 * SEC - 1);
        assert_eq!(b.read(REG_SECONDS), 0x15);
        b.at(6 * SEC);
        assert_eq!(b.rtc.datetime(), Some(dt(2000, 1, 1, 13, 14, 16)));
    }

    #[test]
    fn divider_reset_delays_first_update_by_half_a_second() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.at(300 * MS);
        b.write(REG_A, 0x70 | 0x06); // hold the divider in reset
        b.read(REG_C);
        b.at(3 * SEC);
        assert_eq!(b.read(REG_SECONDS), 0x00, "no counting in reset");
        assert_eq!(b.read(REG_C), 0, "no periodic flag in reset");
        b.write(REG_A, 0x26);
        b.at(3 * SEC + 500 * MS - 1);
        assert_eq!(b.read(REG_SECONDS), 0x00);
        b.at(3 * SEC + 500 * MS);
        assert_eq!(b.read(REG_SECONDS), 0x01);
        // Stopping the oscillator (DV = 000) keeps the phase.
        b.at(3 * SEC + 700 * MS);
        b.write(REG_A, 0x06);
        b.at(10 * SEC);
        b.write(REG_A, 0x26);
        b.at(10 * SEC + 800 * MS - 1);
        assert_eq!(b.read(REG_SECONDS), 0x01);
        b.at(10 * SEC + 800 * MS);
        assert_eq!(b.read(REG_SECONDS), 0x02);
    }

    #[test]
    fn index_masks_to_seven_bits_and_remembers_nmi_mask() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        b.write(0x40, 0x5A);
        let mut cx = DevCtx { now: Nanos(0), irq: &mut b.irq };
        b.rtc.io_write(RTC_INDEX_PORT, AccessSize::Byte, 0xC0, &mut cx);
        assert!(b.rtc.nmi_masked());
        assert_eq!(b.rtc.io_read(RTC_DATA_PORT, AccessSize::Byte, &mut cx), 0x5A);
        assert_eq!(b.rtc.io_read(RTC_INDEX_PORT, AccessSize::Byte, &mut cx), 0xFF);
        b.rtc.io_write(RTC_INDEX_PORT, AccessSize::Byte, 0x40, &mut cx);
        assert!(!b.rtc.nmi_masked());
    }

    #[test]
    fn checksum_covers_0x10_to_0x2d_big_endian() {
        let mut rtc = Rtc::new(dt(2000, 1, 1, 0, 0, 0));
        let ram = rtc.nvram_mut();
        ram[0x10] = 0x40;
        ram[0x15] = 0x80;
        ram[0x16] = 0x02;
        ram[0x2D] = 0xFF;
        ram[0x30] = 0x77; // outside the checksum
        rtc.update_checksum();
        assert_eq!(rtc.checksum(), 0x40 + 0x80 + 0x02 + 0xFF);
        assert_eq!(rtc.nvram()[0x2E], 0x01);
        assert_eq!(rtc.nvram()[0x2F], 0xC1);
    }

    #[test]
    fn garbage_in_time_registers_never_panics_and_recovers() {
        let mut b = Bench::new(dt(2000, 1, 1, 0, 0, 0));
        for (reg, v) in [
            (REG_SECONDS, 0xFF),
            (REG_MINUTES, 0x7A),
            (REG_HOURS, 0xEE),
            (REG_DAY_OF_WEEK, 0x00),
            (REG_DAY_OF_MONTH, 0x45),
            (REG_MONTH, 0x00),
            (REG_YEAR, 0xFA),
            (REG_CENTURY, 0xFF),
            (REG_HOURS_ALARM, 0x9F),
        ] {
            b.write(reg, v);
        }
        b.write(REG_B, B_24H | B_AIE | B_UIE | B_PIE);
        b.at(SEC);
        b.at(100 * 86_400 * SEC);
        for mode in [0u8, B_24H, B_DM_BINARY, B_24H | B_DM_BINARY] {
            b.write(REG_B, mode | B_AIE);
            let _ = b.rtc.next_event();
            b.at(b.now + 40 * 86_400 * SEC);
        }
        b.write(REG_B, B_24H);
        b.at(b.now + 2 * 366 * 86_400 * SEC);
        assert!(b.rtc.datetime().is_some(), "counting normalised the garbage");
    }

    /// Random port traffic at random times: no panic, and next_event never
    /// names a time in the past.
    #[test]
    fn garbage_port_traffic_never_panics() {
        let mut seed = 0x0DDB_A11C_AFE5_EED5u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut b = Bench::new(dt(2099, 12, 31, 23, 59, 50));
        for _ in 0..100_000 {
            let r = rnd();
            let port = if r & 1 == 0 { RTC_INDEX_PORT } else { RTC_DATA_PORT };
            let mut cx = DevCtx { now: Nanos(b.now), irq: &mut b.irq };
            match (r >> 1) % 4 {
                0 => b.rtc.io_write(port, AccessSize::Byte, (r >> 8) as u32, &mut cx),
                1 => b.rtc.io_write(port, AccessSize::Word, (r >> 8) as u32, &mut cx),
                2 => {
                    b.rtc.io_read(port, AccessSize::Dword, &mut cx);
                }
                _ => {
                    let step = match (r >> 8) % 3 {
                        0 => (r >> 16) % (2 * MS),
                        1 => (r >> 16) % (3 * SEC),
                        _ => (r >> 16) % (10 * 86_400 * SEC),
                    };
                    b.at(b.now + step);
                }
            }
            if let Some(t) = b.rtc.next_event() {
                assert!(t.0 > b.now, "event in the past");
            }
        }
    }

    #[test]
    fn snapshot_round_trip_resumes_identically() {
        let mut a = Bench::new(dt(2000, 2, 28, 23, 59, 0));
        a.write(REG_A, 0x23);
        a.write(REG_B, B_24H | B_PIE | B_AIE);
        a.write(REG_SECONDS_ALARM, 0x30);
        a.write(REG_MINUTES_ALARM, 0xC0);
        a.write(REG_HOURS_ALARM, 0xC0);
        a.write(0x50, 0xAB);
        a.at(12_345_678);
        let state = a.rtc.state();
        let mut b = Bench::new(dt(1980, 1, 1, 0, 0, 0));
        b.rtc.restore(&state);
        b.now = a.now;
        assert_eq!(b.rtc.state(), state);
        for t in [20 * MS, 999 * MS, 31 * SEC, 90 * SEC] {
            a.at(t);
            b.at(t);
            assert_eq!(a.rtc.next_event(), b.rtc.next_event());
            assert_eq!(a.read(REG_C), b.read(REG_C));
            assert_eq!(a.raw_time(), b.raw_time());
        }
        // A truncated RAM image is padded, not trusted.
        let mut short = state.clone();
        short.ram.truncate(3);
        b.rtc.restore(&short);
        assert_eq!(b.rtc.nvram()[0x50], 0);
    }
}
