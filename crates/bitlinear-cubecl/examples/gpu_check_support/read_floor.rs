//! The bandwidth floors the timings are read against: a large copy (the device's practical
//! bandwidth) and a read-only pass over the same bytes as a kernel's packed weights.

use cubecl::prelude::*;
use cubecl::server::Handle;

/// Large-buffer copy, 16 bytes per unit, for the device's practical bandwidth.
#[cube(launch_unchecked)]
pub(crate) fn copy_kernel<NV: Size>(
    input: &Array<Vector<u32, NV>>,
    output: &mut Array<Vector<u32, NV>>,
    len: usize,
) {
    let pos = (CUBE_POS_Y as usize * CUBE_COUNT_X as usize + CUBE_POS_X as usize)
        * CUBE_DIM as usize
        + UNIT_POS as usize;
    if pos < len {
        output[pos] = input[pos];
    }
}

/// Read-only pass over `len` 16-byte vectors, `loads` per unit (strided by the grid): the time
/// any kernel needs to stream those bytes once, its launch and ramp included. Writes only when
/// the xor of everything it read equals a value it never does, so no load is dropped.
#[cube(launch_unchecked)]
pub(crate) fn read_kernel<NV: Size>(
    input: &Array<Vector<u32, NV>>,
    output: &mut Array<u32>,
    len: usize,
    #[comptime] loads: usize,
) {
    let units = CUBE_COUNT_X as usize * CUBE_DIM as usize;
    let pos = CUBE_POS_X as usize * CUBE_DIM as usize + UNIT_POS as usize;
    let mut acc = 0u32;
    #[unroll]
    for i in 0..loads {
        let p = pos + i * units;
        if p < len {
            let v = input[p];
            acc ^= v[0] ^ v[1] ^ v[2] ^ v[3];
        }
    }
    if acc == 0x9E37_79B9u32 {
        output[0] = acc;
    }
}

/// Vectors each unit of the read floor loads: 4 (the floor every table quotes), and with
/// `GPU_CHECK_READ_SWEEP=1` also 1, 2, 8 and 16 (more blocks with fewer loads each, or fewer
/// with more), to see whether any read of the same bytes beats that floor (`read-floor-l<n>`).
pub(crate) fn read_floor_loads() -> Vec<usize> {
    if std::env::var("GPU_CHECK_READ_SWEEP").is_ok() {
        vec![4, 1, 2, 8, 16]
    } else {
        vec![4]
    }
}

/// The read floor's name for `loads` vectors per unit (the default keeps its old name).
pub(crate) fn read_floor_name(loads: usize) -> String {
    match loads {
        4 => "read-floor".to_string(),
        _ => format!("read-floor-l{loads}"),
    }
}

/// Launches [`read_kernel`] over the `vecs` 16-byte vectors of `input`, `loads` per unit.
///
/// # Safety
/// `input` holds at least `vecs` vectors and `sink` one u32.
pub(crate) unsafe fn launch_read<R: Runtime>(
    c: &ComputeClient<R>,
    input: &Handle,
    sink: &Handle,
    vecs: usize,
    loads: usize,
) {
    unsafe {
        read_kernel::launch_unchecked::<R>(
            c,
            CubeCount::Static(vecs.div_ceil(loads * 256) as u32, 1, 1),
            CubeDim::new_1d(256),
            4usize,
            ArrayArg::from_raw_parts(input.clone(), vecs),
            ArrayArg::from_raw_parts(sink.clone(), 1),
            vecs,
            loads,
        );
    }
}
