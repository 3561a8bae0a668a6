//! Device capability queries and launch-grid helpers.

use cubecl::features::Plane;
use cubecl::ir::{ElemType, IntKind, StorageType};
use cubecl::prelude::*;

/// Whether the runtime offers int8 tensor-core MMA (`cmma` i8×i8→i32, 16×16×16) and 32-wide
/// planes, which [`crate::MatmulPath::CmmaGemm`] needs. False on lavapipe; true on CUDA sm ≥ 72.
pub fn cmma_available<R: Runtime>(client: &ComputeClient<R>) -> bool {
    let i8t = StorageType::Scalar(ElemType::Int(IntKind::I8));
    let i32t = StorageType::Scalar(ElemType::Int(IntKind::I32));
    let props = client.properties();
    props.hardware.plane_size_max == 32
        && props.hardware.plane_size_min == 32
        && props.features.matmul.cmma.iter().any(|c| {
            c.a_type == i8t
                && c.b_type == i8t
                && c.cd_type == i32t
                && c.m == 16
                && c.n == 16
                && c.k == 16
        })
}

/// Whether plane (warp) shuffles are reported, so reductions may use them. False on lavapipe
/// (cubecl-wgpu withholds `Plane::Ops` on CPU adapters even though they work).
pub fn plane_ops_available<R: Runtime>(client: &ComputeClient<R>) -> bool {
    let props = client.properties();
    client.features().plane.contains(Plane::Ops)
        && props.hardware.plane_size_min == props.hardware.plane_size_max
        && props.hardware.plane_size_min >= 4
        && props.hardware.plane_size_min.is_power_of_two()
}

/// A grid of `cubes` cubes, spilling past 65535 into `y` (kernels use `linear_cube_pos`).
pub(crate) fn grid_1d(cubes: usize) -> CubeCount {
    const MAX_X: usize = 65_535;
    let cubes = cubes.max(1);
    if cubes <= MAX_X {
        CubeCount::Static(cubes as u32, 1, 1)
    } else {
        CubeCount::Static(MAX_X as u32, cubes.div_ceil(MAX_X) as u32, 1)
    }
}

/// Grid for one unit per element, `units_per_cube` units per cube.
pub(crate) fn grid_for_elements(elements: usize, units_per_cube: u32) -> CubeCount {
    grid_1d(elements.div_ceil(units_per_cube as usize))
}
