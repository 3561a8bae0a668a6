//! Small `#[cube]` helpers shared by the kernels: rounding, code decoding, grid positions.

use cubecl::prelude::*;

/// Scale granularity of the weights, as a comptime tag (kernels branch on it at compile time).
pub const GRAN_TENSOR: u32 = 0;
/// Per output channel scales (`N` values).
pub const GRAN_CHANNEL: u32 = 1;
/// Per group of `G` input columns (`N × ceil(K/G)` values, row-major `[n][g]`).
pub const GRAN_GROUP: u32 = 2;

/// Round half to even (`f32::round_ties_even`), written with `floor` because GLSL's `round` leaves
/// ties implementation-defined. Exact for |v| < 2^23, which covers every quantized value.
#[cube]
pub fn round_ties_even(v: f32) -> f32 {
    let f = f32::floor(v);
    let d = v - f;
    let mut r = f;
    if d > 0.5 {
        r = f + 1.0;
    } else if d == 0.5 {
        let half = f * 0.5;
        if half != f32::floor(half) {
            r = f + 1.0;
        }
    }
    r
}

/// Signed int8 stored in byte `j` (bits `8j..8j+7`) of a little-endian `u32` word.
#[cube]
pub fn signed_byte(word: u32, j: u32) -> i32 {
    let shifted = word << (24 - 8 * j);
    i32::cast_from(shifted) >> 24
}

/// Ternary weight (-1, 0 or 1) stored at 2-bit position `bit` of a packed word (code = w + 1).
#[cube]
pub fn ternary_at(word: u32, bit: u32) -> i32 {
    i32::cast_from((word >> bit) & 3) - 1
}

/// Linear cube index over a 2-D grid (rows beyond 65535 cubes are spread over `y`).
#[cube]
pub fn linear_cube_pos() -> usize {
    CUBE_POS_Y as usize * CUBE_COUNT_X as usize + CUBE_POS_X as usize
}
