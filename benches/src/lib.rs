//! Benchmarks and load for FERRY/1: the criterion benches in `benches/`,
//! `ferry-load` (a load generator in the spirit of wrk) in `src/bin`, and
//! the scripts `compare` (ferry against nginx and iperf3) and `scale`
//! (thousands of concurrent downloads).
//!
//! **Layer:** on top: it measures the drivers (and nginx, rsync and iperf3
//! beside them); nothing depends on it.
