//! The Intel 8254 programmable interval timer at ports 0x40-0x43, clocked at
//! 1.193182 MHz. Counter 0's OUT drives IRQ0; counter 1 is the (unused)
//! refresh timer; counter 2 feeds the speaker, its GATE is port 0x61 bit 0
//! and its OUT is read back through port 0x61 bit 5 (the board owns 0x61 and
//! calls [`Pit::gate2`] and [`Pit::out2`]).
//!
//! References: Intel 8254 datasheet (order 231164): "Control Word Format",
//! "Write Operations", "Read Operations" (counter latch command, read-back
//! command, status byte, null count), "Mode Definitions" (modes 0-5, figures
//! 14-19), "Operations Common to All Modes" (gate sampling, count of 0 is the
//! maximum, CR loaded into CE on the next CLK pulse) and table "Gate Pin
//! Operations Summary".
//!
//! Nothing is stepped per clock: each counter keeps a description of its
//! counting element (CE) as a function of the input-clock tick number, from
//! which the count and OUT at any virtual time follow with integer
//! arithmetic. A tick is `ns * 1_193_182 / 1e9` rounded down, so time never
//! drifts however long the machine runs.
//!
//! Not modelled: the CE value during the fraction of a clock between a count
//! write and its load (the previous value is shown); the exact behaviour of
//! the undefined counts 1 in modes 2 and 3 (OUT simply stays high) and of
//! invalid BCD digits (a digit of 10-15 counts as its binary value).

use serde::{Deserialize, Serialize};

use crate::{AccessSize, DevCtx, Nanos, PortIo, Timed};

/// Counter 0 data port; counters 1 and 2 follow, then the control port.
pub const COUNTER0: u16 = 0x40;
/// Control word register (write only).
pub const CONTROL: u16 = 0x43;
/// Input clock of all three counters, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// The interrupt line counter 0's OUT drives.
pub const PIT_IRQ: u8 = 0;

const NS_PER_S: u128 = 1_000_000_000;

/// Number of input clock edges from machine start up to `now`.
pub fn tick_at(now: Nanos) -> u64 {
    (now.0 as u128 * PIT_HZ as u128 / NS_PER_S) as u64
}

/// The first instant at which `tick_at` reaches `tick`.
pub fn time_of_tick(tick: u64) -> Nanos {
    let ns = (tick as u128 * NS_PER_S).div_ceil(PIT_HZ as u128);
    Nanos(ns.min(u64::MAX as u128) as u64)
}

/// What the counter does from tick `start` on: the CE was loaded with `n`
/// there (or, for a resumed mode 0/4 count, had already counted `base`
/// steps). Everything else follows from the mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Tick at which this run takes over.
    pub start: u64,
    /// Initial count in clock steps: 1..=65536 (binary) or 1..=10000 (BCD).
    pub n: u32,
    /// Steps counted before `start`.
    pub base: u64,
    /// Mode 3: position in the square-wave period at `start` (0 starts the
    /// high half, `(n + 1) / 2` the low half).
    pub phase: u32,
    /// Modes 0 and 4: GATE high, so the CE decrements.
    pub counting: bool,
}

/// Registers and timeline of one counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterState {
    /// Bits 5:0 of the last control word (RW1 RW0 M2 M1 M0 BCD), as the
    /// status byte reports them.
    pub control: u8,
    pub gate: bool,
    /// Count register as written (BCD digits in BCD mode).
    pub cr: u16,
    /// A count has been written since the control word.
    pub cr_valid: bool,
    /// First byte of a two-byte count write.
    pub write_lsb: Option<u8>,
    /// Two-byte reads: the next read returns the MSB.
    pub read_msb_next: bool,
    /// Output latch holding a latched count.
    pub latched_count: Option<u16>,
    /// Latched status byte (read-back command).
    pub latched_status: Option<u8>,
    /// Null count is set until this tick (`u64::MAX`: until a gate trigger).
    pub null_until: Option<u64>,
    /// CE value and OUT before `run` starts, or while there is none.
    pub frozen_ce: u16,
    pub frozen_out: bool,
    pub run: Option<Run>,
    /// Modes 2 and 3: the run a count written while counting starts at the
    /// end of the current period (mode 2) or half-cycle (mode 3).
    pub next: Option<Run>,
}

/// The operating mode from the control word's M2-M0 (x10 = 2, x11 = 3).
fn decode_mode(control: u8) -> u8 {
    match (control >> 1) & 7 {
        6 => 2,
        7 => 3,
        m => m,
    }
}

fn to_bcd(v: u32) -> u16 {
    let v = v % 10_000;
    (((v / 1000) << 12) | ((v / 100 % 10) << 8) | ((v / 10 % 10) << 4) | (v % 10)) as u16
}

fn from_bcd(v: u16) -> u32 {
    let d = |i: u32| ((v >> (4 * i)) & 0xF) as u32;
    d(3) * 1000 + d(2) * 100 + d(1) * 10 + d(0)
}

impl CounterState {
    /// Power-on state: the datasheet leaves it undefined until a control
    /// word; this is mode 0, two-byte access, binary, not counting.
    fn power_on(gate: bool) -> CounterState {
        CounterState {
            control: 0x30,
            gate,
            cr: 0,
            cr_valid: false,
            write_lsb: None,
            read_msb_next: false,
            latched_count: None,
            latched_status: None,
            null_until: None,
            frozen_ce: 0,
            frozen_out: false,
            run: None,
            next: None,
        }
    }

    fn mode(&self) -> u8 {
        decode_mode(self.control)
    }

    fn bcd(&self) -> bool {
        self.control & 1 != 0
    }

    /// RW1 RW0: 1 = LSB only, 2 = MSB only, 3 = LSB then MSB.
    fn access(&self) -> u8 {
        (self.control >> 4) & 3
    }

    /// Counting range: the CE wraps modulo this.
    fn modulus(&self) -> u64 {
        if self.bcd() {
            10_000
        } else {
            65_536
        }
    }

    /// The initial count in clock steps: a count of 0 is the maximum, 2^16
    /// in binary and 10^4 in BCD ("Operations Common to All Modes").
    fn initial(&self) -> u32 {
        let v = if self.bcd() { from_bcd(self.cr) } else { self.cr as u32 };
        if v == 0 {
            self.modulus() as u32
        } else {
            v
        }
    }

    /// The run in force at tick `t`, if any.
    fn run_at(&self, t: u64) -> Option<&Run> {
        match (&self.next, &self.run) {
            (Some(nx), _) if t >= nx.start => Some(nx),
            (_, Some(r)) if t >= r.start => Some(r),
            _ => None,
        }
    }

    /// First tick after `t` at which the run in force changes.
    fn boundary_after(&self, t: u64) -> Option<u64> {
        [self.run.map(|r| r.start), self.next.map(|r| r.start)].into_iter().flatten().filter(|&s| s > t).min()
    }

    fn steps(r: &Run, t: u64) -> u64 {
        if r.counting {
            r.base.saturating_add(t.saturating_sub(r.start))
        } else {
            r.base
        }
    }

    /// CE contents (binary value, before BCD encoding) `s` steps into `r`.
    fn run_ce(&self, r: &Run, s: u64) -> u64 {
        let n = r.n.max(1) as u64;
        let m = self.modulus();
        match self.mode() {
            // Mode 2: n, n-1, ..., 1, then reload ("Mode 2").
            2 => n - s % n,
            // Mode 3: even counts step n, n-2, ..., 2 in each half; odd
            // counts step n-1, ..., 0 in the high half (which lasts one
            // clock longer) and n-1, ..., 2 in the low half ("Mode 3").
            3 => {
                let p = s.saturating_add(r.phase as u64) % n;
                let hi = n.div_ceil(2);
                let top = n & !1;
                if p < hi {
                    top - 2 * p
                } else {
                    top - 2 * (p - hi)
                }
            }
            // Modes 0, 1, 4, 5 count down once and wrap past zero.
            _ => (n as i128 - s as i128).rem_euclid(m as i128) as u64,
        }
    }

    /// OUT `s` steps into `r`.
    fn run_out(&self, r: &Run, s: u64) -> bool {
        let n = r.n.max(1) as u64;
        match self.mode() {
            // Low from the load until terminal count, then high.
            0 | 1 => s >= n,
            // High, with a one-clock low strobe at terminal count.
            4 | 5 => s != n,
            // Low for the one clock in which the CE holds 1.
            2 => n < 2 || s % n != n - 1,
            _ => n < 2 || s.saturating_add(r.phase as u64) % n < n.div_ceil(2),
        }
    }

    /// First tick after `t` at which OUT differs from OUT at `t`, within
    /// run `r` alone.
    fn run_next_change(&self, r: &Run, t: u64) -> Option<u64> {
        if !r.counting {
            return None;
        }
        let s = Self::steps(r, t);
        let n = r.n.max(1) as u64;
        let delta = match self.mode() {
            0 | 1 => (s < n).then(|| n - s)?,
            4 | 5 if s < n => n - s,
            4 | 5 => (s == n).then_some(1)?,
            2 if n < 2 => return None,
            2 => {
                let p = s % n;
                if p < n - 1 {
                    n - 1 - p
                } else {
                    1
                }
            }
            _ if n < 2 => return None,
            _ => {
                let p = s.saturating_add(r.phase as u64) % n;
                let hi = n.div_ceil(2);
                if p < hi {
                    hi - p
                } else {
                    n - p
                }
            }
        };
        Some(t.saturating_add(delta))
    }

    /// The CE as a read shows it at tick `t`.
    fn ce_at(&self, t: u64) -> u16 {
        match self.run_at(t) {
            Some(r) => {
                let v = self.run_ce(r, Self::steps(r, t)) % self.modulus();
                if self.bcd() {
                    to_bcd(v as u32)
                } else {
                    v as u16
                }
            }
            None => self.frozen_ce,
        }
    }

    fn out_at(&self, t: u64) -> bool {
        match self.run_at(t) {
            Some(r) => self.run_out(r, Self::steps(r, t)),
            None => self.frozen_out,
        }
    }

    /// First tick after `t` at which OUT changes.
    fn next_out_change(&self, t: u64) -> Option<u64> {
        let level = self.out_at(t);
        let mut at = t;
        // Frozen part, current run, next run: at most three pieces.
        for _ in 0..3 {
            let end = self.boundary_after(at);
            if let Some(r) = self.run_at(at) {
                if let Some(c) = self.run_next_change(r, at) {
                    if end.is_none_or(|e| c < e) {
                        return Some(c);
                    }
                }
            }
            let e = end?;
            if self.out_at(e) != level {
                return Some(e);
            }
            at = e;
        }
        None
    }

    fn null_count_at(&self, t: u64) -> bool {
        self.null_until.is_some_and(|u| t < u)
    }

    fn status_at(&self, t: u64) -> u8 {
        (self.out_at(t) as u8) << 7 | (self.null_count_at(t) as u8) << 6 | (self.control & 0x3F)
    }

    /// Fold a pending reload that has happened by tick `t`.
    fn settle(&mut self, t: u64) {
        if self.next.is_some_and(|nx| t >= nx.start) {
            self.run = self.next.take();
        }
        if self.null_until.is_some_and(|u| t >= u) {
            self.null_until = None;
        }
    }

    /// Stop the CE where it is at `t` with OUT at `out`.
    fn freeze(&mut self, t: u64, out: bool) {
        self.frozen_ce = self.ce_at(t);
        self.frozen_out = out;
        self.run = None;
        self.next = None;
    }

    /// Start a run loading the CR on the next clock after `t`.
    fn load_next_clock(&mut self, t: u64, out_until_load: bool, counting: bool) {
        self.freeze(t, out_until_load);
        let start = t.saturating_add(1);
        self.run = Some(Run { start, n: self.initial(), base: 0, phase: 0, counting });
        if self.null_count_at(t) {
            self.null_until = Some(start);
        }
    }

    /// A control word for this counter: "all control logic is immediately
    /// reset and OUT goes to a known initial state" (low in mode 0, high
    /// otherwise); counting waits for a count; latches are dropped.
    fn write_control(&mut self, control: u8, t: u64) {
        self.settle(t);
        self.control = control & 0x3F;
        let out = self.mode() != 0;
        self.freeze(t, out);
        self.cr_valid = false;
        self.write_lsb = None;
        self.read_msb_next = false;
        self.latched_count = None;
        self.latched_status = None;
        self.null_until = Some(u64::MAX);
    }

    fn write_count_byte(&mut self, value: u8, t: u64) {
        self.settle(t);
        match self.access() {
            1 => self.commit(value as u16, t),
            2 => self.commit((value as u16) << 8, t),
            _ => match self.write_lsb.take() {
                None => {
                    self.write_lsb = Some(value);
                    // Mode 0: "writing the first byte disables counting,
                    // OUT is set low immediately".
                    if self.mode() == 0 {
                        self.freeze(t, false);
                    }
                }
                Some(lsb) => self.commit(lsb as u16 | (value as u16) << 8, t),
            },
        }
    }

    /// A complete count reached the CR at tick `t`.
    fn commit(&mut self, cr: u16, t: u64) {
        self.cr = cr;
        self.cr_valid = true;
        self.null_until = Some(u64::MAX);
        match self.mode() {
            // Mode 0: loaded on the next clock, counting restarts, OUT low
            // until terminal count. GATE low holds the count after the load.
            0 => self.load_next_clock(t, false, self.gate),
            // Mode 4: a new count is loaded on the next clock and counting
            // continues from it.
            4 => {
                let out = self.out_at(t);
                self.load_next_clock(t, out, self.gate);
            }
            // Modes 1 and 5: the CR waits for the next gate trigger.
            1 | 5 => {}
            // Modes 2 and 3: loaded on the next clock if not yet counting;
            // while counting, at the end of the current period (mode 2) or
            // half-cycle (mode 3). A low GATE defers the load to its rising
            // edge.
            _ => {
                if !self.gate {
                    return;
                }
                let counting = self.run.filter(|r| t >= r.start);
                match counting {
                    Some(r) => {
                        let (delta, low_after) = self.next_reload(&r, t);
                        let start = t.saturating_add(delta);
                        let n = self.initial();
                        // Mode 3 starting in its low half: position (n+1)/2.
                        let phase = if low_after { n.div_ceil(2) } else { 0 };
                        self.next = Some(Run { start, n, base: 0, phase, counting: true });
                        self.null_until = Some(start);
                    }
                    None => self.load_next_clock(t, true, true),
                }
            }
        }
    }

    /// Clocks from `t` to the next reload of run `r` (modes 2 and 3), and
    /// whether OUT is low after it (mode 3 reloads at each half-cycle).
    fn next_reload(&self, r: &Run, t: u64) -> (u64, bool) {
        let n = r.n.max(1) as u64;
        let s = Self::steps(r, t);
        if self.mode() == 2 {
            return (n - s % n, false);
        }
        let p = s.saturating_add(r.phase as u64) % n;
        let hi = n.div_ceil(2);
        if p < hi {
            (hi - p, true)
        } else {
            (n - p, false)
        }
    }

    /// GATE input change at tick `t` ("Gate Pin Operations Summary").
    fn set_gate(&mut self, high: bool, t: u64) {
        self.settle(t);
        if high == self.gate {
            return;
        }
        self.gate = high;
        match self.mode() {
            // Low disables counting, high enables it; OUT is unaffected.
            0 | 4 => {
                if let Some(r) = self.run.as_mut() {
                    if high && !r.counting {
                        r.start = r.start.max(t);
                        r.counting = true;
                    } else if !high && r.counting {
                        if t >= r.start {
                            r.base = Self::steps(r, t);
                            r.start = t;
                        }
                        r.counting = false;
                    }
                }
            }
            // A rising edge triggers: CR loaded on the next clock; mode 1
            // drives OUT low from then until terminal count.
            1 | 5 => {
                if high && self.cr_valid {
                    let out = self.out_at(t);
                    self.load_next_clock(t, out, true);
                }
            }
            // Low stops counting and sets OUT high at once; a rising edge
            // reloads the initial count on the next clock.
            _ => {
                if high {
                    if self.cr_valid {
                        self.load_next_clock(t, true, true);
                    }
                } else {
                    self.freeze(t, true);
                    if self.null_count_at(t) {
                        self.null_until = Some(u64::MAX);
                    }
                }
            }
        }
    }

    /// Counter latch command: ignored while a latched count is unread.
    fn latch_count(&mut self, t: u64) {
        if self.latched_count.is_none() {
            self.latched_count = Some(self.ce_at(t));
        }
    }

    /// Read-back status latch: ignored while a latched status is unread.
    fn latch_status(&mut self, t: u64) {
        if self.latched_status.is_none() {
            self.latched_status = Some(self.status_at(t));
        }
    }

    /// A read of the counter's port: a latched status first, then the
    /// latched count (released once fully read), else the live CE.
    fn read_byte(&mut self, t: u64) -> u8 {
        if let Some(status) = self.latched_status.take() {
            return status;
        }
        let value = self.latched_count.unwrap_or_else(|| self.ce_at(t));
        let (byte, done) = match self.access() {
            1 => (value as u8, true),
            2 => ((value >> 8) as u8, true),
            _ if !self.read_msb_next => {
                self.read_msb_next = true;
                (value as u8, false)
            }
            _ => {
                self.read_msb_next = false;
                ((value >> 8) as u8, true)
            }
        };
        if done {
            self.latched_count = None;
        }
        byte
    }

    /// Bring restored values into range.
    fn sanitize(&mut self) {
        self.control &= 0x3F;
        if self.access() == 0 {
            self.control |= 0x30;
        }
        for r in [&mut self.run, &mut self.next].into_iter().flatten() {
            r.n = r.n.clamp(1, 65_536);
        }
    }
}

/// Snapshot of the PIT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitState {
    pub counters: [CounterState; 3],
    /// Tick at which IRQ0 was last driven.
    pub irq_tick: u64,
    /// Level driven on IRQ0.
    pub irq_level: bool,
    /// A whole OUT0 pulse fell between two polls and is being shown as one
    /// inverted level; the true level is restored at this time (ns).
    pub reassert_at: Option<u64>,
}

/// The 8254 with the PC's wiring.
#[derive(Clone, Debug)]
pub struct Pit {
    s: PitState,
}

impl Default for Pit {
    fn default() -> Self {
        Pit::new()
    }
}

impl Pit {
    /// Power-on state; GATE0 and GATE1 are tied high, GATE2 starts low
    /// (port 0x61 bit 0 resets to 0).
    pub fn new() -> Pit {
        Pit {
            s: PitState {
                counters: [CounterState::power_on(true), CounterState::power_on(true), CounterState::power_on(false)],
                irq_tick: 0,
                irq_level: false,
                reassert_at: None,
            },
        }
    }

    /// Drive counter 2's GATE (port 0x61 bit 0).
    pub fn gate2(&mut self, high: bool, cx: &mut DevCtx) {
        self.s.counters[2].set_gate(high, tick_at(cx.now));
    }

    /// Counter 2's GATE as last driven.
    pub fn gate2_level(&self) -> bool {
        self.s.counters[2].gate
    }

    /// Counter 2's OUT at `now` (port 0x61 bit 5, the speaker input).
    pub fn out2(&self, now: Nanos) -> bool {
        self.output(2, now)
    }

    /// OUT of counter `channel` (0-2) at `now`; false for other numbers.
    pub fn output(&self, channel: usize, now: Nanos) -> bool {
        self.s.counters.get(channel).is_some_and(|c| c.out_at(tick_at(now)))
    }

    pub fn save(&self) -> PitState {
        self.s.clone()
    }

    pub fn restore(state: PitState) -> Pit {
        let mut s = state;
        s.counters.iter_mut().for_each(CounterState::sanitize);
        s.counters[0].gate = true;
        s.counters[1].gate = true;
        Pit { s }
    }

    /// Drive IRQ0 from OUT0 at `cx.now`. The board polls at
    /// [`Timed::next_event`], but if it comes late enough that a whole OUT0
    /// pulse (mode 2's one-clock low, or a half-cycle) fell between two
    /// polls, the line shows the opposite level now and the true level at
    /// the next poll, so the PIC still sees one edge instead of none.
    fn sync_irq0(&mut self, cx: &mut DevCtx) {
        let t = tick_at(cx.now).max(self.s.irq_tick);
        let c0 = &self.s.counters[0];
        let level = c0.out_at(t);
        if self.s.reassert_at.take().is_some() || level != self.s.irq_level {
            self.s.irq_level = level;
        } else if t > self.s.irq_tick && c0.next_out_change(self.s.irq_tick).is_some_and(|c| c <= t) {
            self.s.irq_level = !level;
            self.s.reassert_at = Some(cx.now.0);
        }
        self.s.irq_tick = t;
        cx.irq.set(PIT_IRQ, self.s.irq_level);
    }

    /// After a register write at `cx.now`, show OUT0's new level unless a
    /// missed pulse is still being shown.
    fn refresh_irq0(&mut self, cx: &mut DevCtx) {
        if self.s.reassert_at.is_none() {
            self.s.irq_level = self.s.counters[0].out_at(self.s.irq_tick);
        }
        cx.irq.set(PIT_IRQ, self.s.irq_level);
    }

    fn read_byte(&mut self, port: u16, t: u64) -> u8 {
        match port {
            0x40..=0x42 => self.s.counters[(port - COUNTER0) as usize].read_byte(t),
            // The control word register cannot be read (8254: "no-operation,
            // 3-state").
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, value: u8, t: u64) {
        match port {
            0x40..=0x42 => self.s.counters[(port - COUNTER0) as usize].write_count_byte(value, t),
            CONTROL => {
                let select = (value >> 6) as usize;
                if select == 3 {
                    // Read-back: D5 = !COUNT, D4 = !STATUS, D3-D1 select
                    // counters 2-0.
                    for (i, c) in self.s.counters.iter_mut().enumerate() {
                        if value & (2 << i) != 0 {
                            if value & 0x20 == 0 {
                                c.latch_count(t);
                            }
                            if value & 0x10 == 0 {
                                c.latch_status(t);
                            }
                        }
                    }
                } else if value & 0x30 == 0 {
                    self.s.counters[select].latch_count(t);
                } else {
                    self.s.counters[select].write_control(value, t);
                }
            }
            _ => {}
        }
    }
}

impl PortIo for Pit {
    /// Wider accesses are split into byte cycles on consecutive ports.
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        self.sync_irq0(cx);
        let t = tick_at(cx.now);
        (0..size.bytes()).fold(0u32, |acc, i| acc | (self.read_byte(port.wrapping_add(i as u16), t) as u32) << (8 * i))
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, cx: &mut DevCtx) {
        self.sync_irq0(cx);
        let t = tick_at(cx.now);
        for i in 0..size.bytes() {
            self.write_byte(port.wrapping_add(i as u16), (value >> (8 * i)) as u8, t);
        }
        self.refresh_irq0(cx);
    }
}

impl Timed for Pit {
    fn poll(&mut self, cx: &mut DevCtx) {
        self.sync_irq0(cx);
    }

    /// When OUT0 next changes (both edges: the PIC needs the low level to
    /// see the next rising edge).
    fn next_event(&self) -> Option<Nanos> {
        if let Some(at) = self.s.reassert_at {
            return Some(Nanos(at));
        }
        self.s.counters[0].next_out_change(self.s.irq_tick).map(time_of_tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pic::{Pic, MASTER_CMD, MASTER_DATA};
    use crate::IrqLines;

    /// One input clock in ns, rounded up.
    const TICK_NS: u64 = 839;

    /// A PIT with an injected clock and its interrupt lines.
    struct Bench {
        pit: Pit,
        lines: IrqLines,
        now: Nanos,
    }

    impl Bench {
        fn new() -> Bench {
            Bench { pit: Pit::new(), lines: IrqLines::default(), now: Nanos::ZERO }
        }

        fn at_tick(&mut self, tick: u64) -> &mut Bench {
            self.now = time_of_tick(tick);
            self
        }

        fn out(&mut self, port: u16, value: u8) {
            let mut cx = DevCtx { now: self.now, irq: &mut self.lines };
            self.pit.io_write(port, AccessSize::Byte, value as u32, &mut cx);
        }

        fn inp(&mut self, port: u16) -> u8 {
            let mut cx = DevCtx { now: self.now, irq: &mut self.lines };
            self.pit.io_read(port, AccessSize::Byte, &mut cx) as u8
        }

        fn read16(&mut self, port: u16) -> u16 {
            let lo = self.inp(port) as u16;
            lo | (self.inp(port) as u16) << 8
        }

        fn program(&mut self, channel: u16, control: u8, count: u16) {
            self.out(CONTROL, control);
            self.out(COUNTER0 + channel, count as u8);
            self.out(COUNTER0 + channel, (count >> 8) as u8);
        }

        fn gate2(&mut self, high: bool) {
            let mut cx = DevCtx { now: self.now, irq: &mut self.lines };
            self.pit.gate2(high, &mut cx);
        }

        fn poll(&mut self) {
            let mut cx = DevCtx { now: self.now, irq: &mut self.lines };
            self.pit.poll(&mut cx);
        }

        fn out0(&self, tick: u64) -> bool {
            self.pit.output(0, time_of_tick(tick))
        }

        fn out2(&self, tick: u64) -> bool {
            self.pit.out2(time_of_tick(tick))
        }

        /// Run the board's event loop until `end`, returning the times of
        /// IRQ0 rising edges.
        fn run_irq0_edges(&mut self, end: Nanos) -> Vec<u64> {
            let mut edges = Vec::new();
            while let Some(at) = self.pit.next_event() {
                if at > end {
                    break;
                }
                let before = self.lines.level(PIT_IRQ);
                self.now = at;
                self.poll();
                if !before && self.lines.level(PIT_IRQ) {
                    edges.push(at.0);
                }
            }
            edges
        }
    }

    #[test]
    fn tick_conversion_is_exact_and_inverse() {
        assert_eq!(tick_at(Nanos(1_000_000_000)), PIT_HZ);
        assert_eq!(tick_at(Nanos(3_600_000_000_000)), PIT_HZ * 3600);
        for k in [0u64, 1, 2, 65_536, 1_193_181, 1_193_182, 987_654_321_987] {
            let t = time_of_tick(k);
            assert_eq!(tick_at(t), k);
            assert_eq!(tick_at(Nanos(t.0 - t.0.min(1))), k.saturating_sub(1));
        }
    }

    #[test]
    fn mode2_bios_default_interrupts_at_18_2_hz() {
        let mut b = Bench::new();
        b.program(0, 0x34, 0); // counter 0, LSB/MSB, mode 2, count 65536
        let edges = b.run_irq0_edges(Nanos(1_000_000_000));
        assert_eq!(edges.len(), 18);
        // 65536 / 1.193182 MHz = 54.925 ms.
        for pair in edges.windows(2) {
            let period = pair[1] - pair[0];
            assert!(period.abs_diff(54_925_413) <= TICK_NS, "period {period}");
        }
        // Count 65536 is loaded one clock after the write; OUT rises after
        // the low clock at count 1.
        assert_eq!(edges[0], time_of_tick(1 + 65_536).0);
    }

    #[test]
    fn irq0_periods_reach_the_cpu_through_the_pic() {
        let mut b = Bench::new();
        let mut pic = Pic::new();
        fn pic_out(pic: &mut Pic, lines: &mut IrqLines, port: u16, v: u8) {
            let mut cx = DevCtx { now: Nanos::ZERO, irq: lines };
            pic.io_write(port, AccessSize::Byte, v as u32, &mut cx);
        }
        for (port, v) in [(MASTER_CMD, 0x11), (MASTER_DATA, 0x08), (MASTER_DATA, 0x04), (MASTER_DATA, 0x01)] {
            pic_out(&mut pic, &mut b.lines, port, v);
        }
        pic_out(&mut pic, &mut b.lines, MASTER_DATA, 0xFE);
        b.program(0, 0x34, 1193); // ~1 kHz, as Linux programs it for HZ=1000
        let mut interrupts = 0;
        while let Some(at) = b.pit.next_event() {
            if at > Nanos(100_000_000) {
                break;
            }
            b.now = at;
            b.poll();
            pic.update(&b.lines);
            if pic.interrupt_pending() {
                assert_eq!(pic.acknowledge(), Some(0x08));
                pic_out(&mut pic, &mut b.lines, MASTER_CMD, 0x20);
                interrupts += 1;
            }
        }
        assert_eq!(interrupts, 100);
    }

    #[test]
    fn late_poll_still_delivers_one_edge_per_missed_pulse() {
        let mut b = Bench::new();
        b.program(0, 0x34, 100);
        b.poll();
        assert!(b.lines.level(PIT_IRQ));
        // Skip the low clock at tick 100 and the rise at 101.
        b.at_tick(150).poll();
        assert!(!b.lines.level(PIT_IRQ), "missed pulse shown as low");
        assert_eq!(b.pit.next_event(), Some(b.now));
        b.poll();
        assert!(b.lines.level(PIT_IRQ));
        assert_eq!(b.pit.next_event(), Some(time_of_tick(200)));
    }

    #[test]
    fn mode3_square_wave_duty_for_even_and_odd_counts() {
        let mut b = Bench::new();
        b.gate2(true);
        b.program(2, 0xB6, 1000); // counter 2, LSB/MSB, mode 3
        let high = (1..=1000).filter(|&k| b.out2(k)).count();
        assert_eq!(high, 500);
        assert!(b.out2(500) && !b.out2(501) && !b.out2(1000) && b.out2(1001));
        // Decrements by two.
        assert_eq!(b.at_tick(1).read16(0x42), 1000);
        assert_eq!(b.at_tick(2).read16(0x42), 998);
        assert_eq!(b.at_tick(501).read16(0x42), 1000);

        let mut b = Bench::new();
        b.gate2(true);
        b.program(2, 0xB6, 5);
        let levels: Vec<bool> = (1..=10).map(|k| b.out2(k)).collect();
        assert_eq!(levels, [true, true, true, false, false, true, true, true, false, false]);
        let counts: Vec<u16> = (1..=5).map(|k| b.at_tick(k).read16(0x42)).collect();
        assert_eq!(counts, [4, 2, 0, 4, 2]);
    }

    #[test]
    fn mode3_on_counter0_gives_one_irq_edge_per_period() {
        let mut b = Bench::new();
        b.program(0, 0x36, 0);
        let edges = b.run_irq0_edges(Nanos(1_000_000_000));
        assert_eq!(edges.len(), 18);
        for pair in edges.windows(2) {
            assert!((pair[1] - pair[0]).abs_diff(54_925_413) <= TICK_NS);
        }
    }

    #[test]
    fn mode0_out_rises_at_terminal_count_and_stays_high() {
        let mut b = Bench::new();
        b.at_tick(10).program(0, 0x30, 100);
        assert!(!b.lines.level(PIT_IRQ));
        assert!(!b.out0(110));
        assert!(b.out0(111), "N + 1 clocks after the write");
        assert_eq!(b.pit.next_event(), Some(time_of_tick(111)));
        assert_eq!(b.at_tick(50).read16(0x40), 61);
        b.at_tick(111).poll();
        assert!(b.lines.level(PIT_IRQ));
        assert_eq!(b.pit.next_event(), None);
        assert_eq!(b.at_tick(112).read16(0x40), 0xFFFF, "the count wraps and goes on");
        assert!(b.out0(1_000_000));
        // A new count restarts the one-shot with OUT low.
        b.at_tick(200).program(0, 0x30, 10);
        assert!(!b.lines.level(PIT_IRQ));
        assert_eq!(b.pit.next_event(), Some(time_of_tick(211)));
    }

    #[test]
    fn mode0_first_byte_stops_counting_and_drops_out() {
        let mut b = Bench::new();
        b.program(0, 0x30, 10);
        b.at_tick(20).poll();
        assert!(b.lines.level(PIT_IRQ));
        b.out(0x40, 0x50);
        assert!(!b.lines.level(PIT_IRQ));
        let held = b.at_tick(25).read16(0x40);
        assert_eq!(b.at_tick(40).read16(0x40), held, "not counting between the bytes");
        b.out(0x40, 0x00);
        assert!(b.out0(40 + 0x50 + 1) && !b.out0(40 + 0x50));
    }

    #[test]
    fn mode4_strobes_low_for_one_clock() {
        let mut b = Bench::new();
        b.program(0, 0x38, 20);
        let levels: Vec<bool> = (19..=23).map(|k| b.out0(k)).collect();
        assert_eq!(levels, [true, true, false, true, true]);
        assert!(b.out0(21 + 65_536), "only one strobe");
    }

    #[test]
    fn mode2_new_count_waits_for_the_next_reload() {
        let mut b = Bench::new();
        b.program(0, 0x34, 100);
        // Period 1: ticks 1..=100, rises at 101.
        b.at_tick(30).out(0x40, 50);
        b.out(0x40, 0);
        assert_eq!(b.at_tick(40).read16(0x40), 100 - 39);
        assert!(!b.out0(100) && b.out0(101));
        assert_eq!(b.at_tick(101).read16(0x40), 50);
        assert!(!b.out0(150) && b.out0(151));
    }

    #[test]
    fn mode3_new_count_waits_for_the_half_cycle() {
        let mut b = Bench::new();
        b.gate2(true);
        b.program(2, 0xB6, 100);
        // High half is ticks 1..=50.
        b.at_tick(10).out(0x42, 20);
        b.out(0x42, 0);
        assert!(b.out2(50) && !b.out2(51));
        // New count from tick 51, starting with its low half.
        assert_eq!(b.at_tick(51).read16(0x42), 20);
        assert!(!b.out2(60) && b.out2(61) && b.out2(70) && !b.out2(71));
    }

    #[test]
    fn counter_latch_freezes_the_read_value() {
        let mut b = Bench::new();
        b.program(0, 0x34, 1000);
        b.at_tick(101).out(CONTROL, 0x00);
        b.at_tick(300).out(CONTROL, 0x00); // ignored: previous latch unread
        assert_eq!(b.at_tick(500).read16(0x40), 900);
        assert_eq!(b.read16(0x40), 501, "live again after the latch is read");
    }

    #[test]
    fn read_back_latches_status_and_count_of_several_counters() {
        let mut b = Bench::new();
        b.program(0, 0x34, 1000);
        b.out(CONTROL, 0xB0); // counter 2: mode 0, no count yet
        b.at_tick(11).out(CONTROL, 0xCA); // count + status of counters 0 and 2
        b.at_tick(12).out(CONTROL, 0xE2); // status of 0 again: ignored
        b.at_tick(20);
        // Status: OUT high, count loaded, RW=11, mode 2, binary.
        assert_eq!(b.inp(0x40), 0b1011_0100);
        assert_eq!(b.read16(0x40), 990);
        // Counter 2: OUT low (mode 0), null count, RW=11, mode 0.
        assert_eq!(b.inp(0x42), 0b0111_0000);
        b.read16(0x42);
        // Status only, then the count loads and null count clears.
        b.out(0x42, 5);
        b.out(0x42, 0);
        b.out(CONTROL, 0xE8);
        assert_eq!(b.inp(0x42), 0b0111_0000);
        b.at_tick(21).out(CONTROL, 0xE8);
        assert_eq!(b.inp(0x42), 0b0011_0000);
        assert_eq!(b.read16(0x42), 5, "status read once, then live count");
    }

    #[test]
    fn bcd_counter_counts_in_decimal_digits() {
        let mut b = Bench::new();
        b.program(0, 0x35, 0x0100); // mode 2, BCD, 100
        assert_eq!(b.at_tick(2).read16(0x40), 0x0099);
        assert_eq!(b.at_tick(91).read16(0x40), 0x0010);
        assert!(!b.out0(100) && b.out0(101) && !b.out0(200));
        // BCD 0 is 10^4.
        b.at_tick(1000).program(0, 0x31, 0);
        assert_eq!(b.at_tick(1001).read16(0x40), 0x0000);
        assert_eq!(b.at_tick(1002).read16(0x40), 0x9999);
        assert!(!b.out0(11_000) && b.out0(11_001));
    }

    #[test]
    fn lsb_only_msb_only_and_interleaved_two_byte_access() {
        let mut b = Bench::new();
        b.gate2(true);
        b.out(CONTROL, 0x90); // counter 2, LSB only, mode 0
        b.out(0x42, 0x40);
        assert_eq!(b.at_tick(1).inp(0x42), 0x40);
        assert_eq!(b.inp(0x42), 0x40, "every read is the LSB");
        b.out(CONTROL, 0xA0); // MSB only
        b.at_tick(10).out(0x42, 0x12);
        assert_eq!(b.at_tick(11).inp(0x42), 0x12);
        assert_eq!(b.at_tick(11 + 0x100).inp(0x42), 0x11);

        // Datasheet: read LSB, write LSB, read MSB, write MSB is valid.
        b.at_tick(2000).program(2, 0xB4, 0x1234); // mode 2
        b.at_tick(2001);
        assert_eq!(b.inp(0x42), 0x34);
        b.out(0x42, 0x00);
        assert_eq!(b.inp(0x42), 0x12);
        b.out(0x42, 0x10);
        // 0x1000 takes effect at the end of the running 0x1234 period.
        assert_eq!(b.at_tick(2001 + 0x1234).read16(0x42), 0x1000);
    }

    #[test]
    fn gate2_controls_counting_and_triggers() {
        // Mode 0: GATE low holds the count.
        let mut b = Bench::new();
        b.program(2, 0xB0, 10);
        assert_eq!(b.at_tick(50).read16(0x42), 10);
        b.gate2(true);
        assert!(!b.out2(59) && b.out2(60));
        b.at_tick(55).gate2(false);
        assert!(!b.out2(100));
        b.at_tick(100).gate2(true);
        assert!(!b.out2(104) && b.out2(105));

        // Mode 1: a rising edge starts a retriggerable one-shot.
        let mut b = Bench::new();
        b.program(2, 0xB2, 10);
        assert!(b.out2(100), "waits for a trigger");
        b.at_tick(100).gate2(true);
        assert!(b.out2(100) && !b.out2(101) && !b.out2(110) && b.out2(111));
        b.at_tick(105).gate2(false);
        b.at_tick(106).gate2(true);
        assert!(!b.out2(111) && b.out2(117), "retriggered");

        // Mode 2: GATE low forces OUT high and stops; rising edge reloads.
        let mut b = Bench::new();
        b.gate2(true);
        b.program(2, 0xB4, 10);
        assert!(!b.out2(10));
        b.at_tick(10).gate2(false);
        assert!(b.out2(10) && b.out2(50));
        b.at_tick(50).gate2(true);
        assert_eq!(b.at_tick(51).read16(0x42), 10);
        assert!(!b.out2(60) && b.out2(61));

        // Mode 5: a trigger strobes OUT N + 1 clocks later.
        let mut b = Bench::new();
        b.program(2, 0xBA, 4);
        b.at_tick(7).gate2(true);
        let levels: Vec<bool> = (10..=13).map(|k| b.out2(k)).collect();
        assert_eq!(levels, [true, true, false, true]);
    }

    #[test]
    fn snapshot_round_trip_keeps_counting() {
        let mut b = Bench::new();
        b.program(0, 0x34, 1000);
        b.gate2(true);
        b.program(2, 0xB6, 300);
        b.at_tick(350).out(CONTROL, 0x80);
        b.out(0x42, 0x10); // half a two-byte write
        let state = b.pit.save();
        let mut other = Bench { pit: Pit::restore(state.clone()), lines: b.lines, now: b.now };
        assert_eq!(other.pit.save(), state);
        for bench in [&mut b, &mut other] {
            bench.out(0x42, 0x00);
            bench.at_tick(999);
        }
        assert_eq!(b.read16(0x40), other.read16(0x40));
        assert_eq!(b.pit.next_event(), other.pit.next_event());
        assert_eq!(b.inp(0x42), other.inp(0x42));
        assert_eq!(b.pit.save(), other.pit.save());
    }

    #[test]
    fn state_is_serde_serializable() {
        fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
        assert_serde::<PitState>();
    }

    #[test]
    fn garbage_on_every_port_never_panics() {
        let mut b = Bench::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.now = Nanos(b.now.0 + (x >> 40) % 100_000);
            let port = COUNTER0 + (x % 5) as u16;
            match (x >> 8) % 5 {
                0 => {
                    b.inp(port);
                }
                1 => b.gate2(x & 0x100 != 0),
                2 => {
                    if let Some(at) = b.pit.next_event() {
                        b.now = b.now.max(at);
                    }
                    b.poll();
                }
                _ => b.out(port, (x >> 16) as u8),
            }
        }
        let mut restored = Pit::restore(b.pit.save());
        let mut cx = DevCtx { now: Nanos(u64::MAX), irq: &mut b.lines };
        restored.poll(&mut cx);
        restored.next_event();
    }
}
