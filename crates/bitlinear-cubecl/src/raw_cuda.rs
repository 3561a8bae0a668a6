//! Hand-written CUDA C kernels launched through CubeCL's own CUDA server.
//!
//! CubeCL 0.10 exposes neither `dp4a` nor `mma.sync` on register fragments, and its `cmma`
//! lowers to WMMA from shared memory. The two kernels that need those instructions (the packed
//! GEMV and the tensor-core GEMM, see `kernels/cuda/`) are therefore written in CUDA C and
//! handed to the runtime as a [`CubeTask`] whose source replaces the one CubeCL would generate:
//! the CUDA server compiles it with NVRTC, caches it by [`KernelId`], and launches it on the
//! same stream, with the same memory handles, as every other kernel of the crate. Buffers
//! arrive as pointers in binding order, followed by one by-value struct of `u64` scalars (the
//! "info" argument, which the CUDA runtime passes as a grid constant from sm 70).

use cubecl::prelude::*;
use cubecl::server::{Handle, KernelArguments, MetadataBindingInfo};
use cubecl::{CompilationError, Compiler, CubeTask};

/// Whether the hand-written CUDA kernels can run on this client: the CUDA runtime on sm ≥ 80
/// (`cp.async`, which the GEMM uses; `dp4a` and `mma.sync` s8 exist from sm 61 / 75). False on
/// every other runtime (Wgpu, lavapipe), where the portable CubeCL kernels run instead.
pub fn raw_cuda_available<R: Runtime>(client: &ComputeClient<R>) -> bool {
    R::name(client) == "cuda" && client.properties().features.copy_async
}

/// One hand-written CUDA kernel: its complete source, entry point and block size.
pub(crate) struct RawCudaKernel {
    source: String,
    entry: String,
    cube_dim: CubeDim,
}

impl RawCudaKernel {
    /// `source` must define `extern "C" __global__ void <entry>(...)`.
    pub(crate) fn new(source: String, entry: String, cube_dim: CubeDim) -> Self {
        Self {
            source,
            entry,
            cube_dim,
        }
    }

    /// Launches the kernel on `count` blocks with `buffers` (in the kernel's parameter order)
    /// and `scalars` (the kernel's last, by-value parameter: a struct of that many `u64`).
    ///
    /// # Safety
    /// The kernel must stay inside the buffers for these scalars (the caller validated the
    /// shapes), and the client must be the CUDA runtime ([`raw_cuda_available`]).
    pub(crate) unsafe fn launch<R: Runtime>(
        self,
        client: &ComputeClient<R>,
        count: CubeCount,
        buffers: &[&Handle],
        scalars: Vec<u64>,
    ) {
        let mut args = KernelArguments::new();
        for b in buffers {
            args = args.with_buffer((*b).clone().binding());
        }
        // All of the data is static: nothing is uploaded as dynamic metadata.
        let len = scalars.len();
        args.info = MetadataBindingInfo::new(scalars, len);
        let task: Box<dyn CubeTask<R::Compiler>> = Box::new(self);
        unsafe { client.launch_unchecked(task, count, args) };
    }
}

impl KernelMetadata for RawCudaKernel {
    fn id(&self) -> KernelId {
        // The source is the key: two kernels with the same text are the same kernel.
        KernelId::new::<Self>()
            .info(self.source.clone())
            .cube_dim(self.cube_dim)
    }

    fn address_type(&self) -> StorageType {
        AddressType::U32.unsigned_type()
    }
}

impl<C: Compiler> CubeTask<C> for RawCudaKernel {
    fn compile(
        &self,
        compiler: &mut C,
        compilation_options: &C::CompilationOptions,
        mode: ExecutionMode,
        address_type: StorageType,
    ) -> Result<CompiledKernel<C>, CompilationError> {
        // The runtime wants the compiler's representation too (it reads the kernel's dynamic
        // shared memory from it): an empty kernel gives one with none, which is right for
        // kernels that only declare static `__shared__` arrays.
        let empty = KernelDefinition {
            buffers: vec![],
            tensor_maps: vec![],
            scalars: vec![],
            cube_dim: self.cube_dim,
            body: Scope::root(false),
            options: KernelOptions {
                kernel_name: self.entry.clone(),
                debug_symbols: false,
                cluster_dim: None,
            },
        };
        let repr = compiler.compile(empty, compilation_options, mode, address_type)?;
        Ok(CompiledKernel {
            entrypoint_name: self.entry.clone(),
            debug_name: Some("bitlinear raw CUDA kernel"),
            source: self.source.clone(),
            repr: Some(repr),
            cube_dim: self.cube_dim,
            debug_info: None,
        })
    }
}

#[cfg(all(test, feature = "cuda"))]
mod tests {
    use super::*;
    use cubecl::cuda::CudaCompiler;

    /// The CUDA compiler (host side only, no GPU needed) accepts the task and the compiled kernel
    /// carries our source and entry point, with no dynamic shared memory.
    #[test]
    fn compiles_to_the_given_source_with_the_cuda_compiler() {
        let k = RawCudaKernel::new(
            "extern \"C\" __global__ void my_entry() {}".into(),
            "my_entry".into(),
            CubeDim::new_1d(256),
        );
        let compiled = CubeTask::<CudaCompiler>::compile(
            &k,
            &mut CudaCompiler::default(),
            &Default::default(),
            ExecutionMode::Unchecked,
            KernelMetadata::address_type(&k),
        )
        .expect("compiles");
        assert_eq!(compiled.entrypoint_name, "my_entry");
        assert!(compiled.source.contains("void my_entry()"));
        assert_eq!(compiled.cube_dim, CubeDim::new_1d(256));
        assert_eq!(compiled.repr.expect("repr").shared_memory_size(), 0);
        // Different sources are different kernels.
        let other = RawCudaKernel::new("x".into(), "my_entry".into(), CubeDim::new_1d(256));
        assert_ne!(k.id(), other.id());
    }
}
