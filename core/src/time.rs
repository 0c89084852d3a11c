//! Virtual time. The core never reads the wall clock: time advances with
//! retired instructions (and, later, with the frontend's pacing), so two runs
//! with the same inputs behave the same.

/// A point in virtual time, in nanoseconds since machine start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// `self + d`, saturating at the end of time.
    pub fn after(self, d: u64) -> Nanos {
        Nanos(self.0.saturating_add(d))
    }

    /// Nanoseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since(self, earlier: Nanos) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(Nanos(u64::MAX - 1).after(5), Nanos(u64::MAX));
        assert_eq!(Nanos(3).since(Nanos(10)), 0);
        assert_eq!(Nanos(10).since(Nanos(3)), 7);
    }
}
