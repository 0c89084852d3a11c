//! ferrite-benches: shared set-up for the criterion micro benchmarks in
//! `benches/` and the whole-guest benchmarks.
