//! Size of the deployed 2-bit weight layout, for records that do not report it.

/// Bytes of a deployed (2-bit packed) `k`→`n` weight matrix.
///
/// The deployed layout pads both dimensions to multiples of 16 (the kernels' tile), stores four
/// ternary weights per byte, and appends one f32 weight scale:
/// `ceil(n/16)·16 · ceil(k/16)·16 / 4 + 4`.
///
/// The GPU check does not write `packed_bytes`, so the bandwidth-floor figure uses this instead.
pub fn deployed_packed_bytes(k: u64, n: u64) -> u64 {
    let pad = |x: u64| x.div_ceil(16) * 16;
    pad(n) * pad(k) / 4 + 4
}
