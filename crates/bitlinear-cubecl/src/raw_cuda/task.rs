//! The hand-written kernels as CubeCL tasks: a [`CubeTask`] whose source replaces the one
//! CubeCL would generate. The CUDA server compiles it with NVRTC, caches it by [`KernelId`],
//! and launches it on the same stream, with the same memory handles, as every other kernel of
//! the crate. Buffers arrive as pointers in binding order, followed by one by-value struct of
//! `u64` scalars (the "info" argument, which the CUDA runtime passes as a grid constant from
//! sm 70).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use cubecl::prelude::*;
use cubecl::server::{Handle, KernelArguments, MetadataBindingInfo, TensorMapBinding};
use cubecl::{CompilationError, Compiler, CubeTask};

/// The full source of one kernel configuration and a hash of it, built once per process.
struct RawSource {
    entry: String,
    source: String,
    hash: u64,
}

/// Sources already assembled, by entry name (each configuration has its own name).
static SOURCES: LazyLock<Mutex<HashMap<String, Arc<RawSource>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// One hand-written CUDA kernel: its complete source, entry point, block size, and the bytes of
/// dynamic shared memory it is launched with (for kernels declaring `extern __shared__`).
pub(crate) struct RawCudaKernel {
    source: Arc<RawSource>,
    cube_dim: CubeDim,
    dynamic_shared: usize,
    /// TMA tensor maps, passed ahead of the buffers (see [`Self::with_tensor_map`]).
    tensor_maps: Vec<TensorMapBinding>,
}

/// Reserves `words` u32 of shared memory in an otherwise empty kernel. The CUDA runtime sizes a
/// launch's dynamic shared memory from the compiled representation, and CubeCL only allocates
/// shared memory that the kernel touches, hence the one store.
#[cube]
fn reserve_shared(#[comptime] words: usize) {
    let mut smem = SharedMemory::<u32>::new(words);
    smem[0] = 0u32;
}

impl RawCudaKernel {
    /// The kernel named `entry`; `source` (which must define `extern "C" __global__ void
    /// <entry>(...)`) is only called the first time this entry is seen in the process, so a
    /// launch costs neither assembling nor hashing the (kilobytes long) source again. One entry
    /// name must always stand for the same source.
    pub(crate) fn cached(
        entry: String,
        source: impl FnOnce() -> String,
        cube_dim: CubeDim,
    ) -> Self {
        let mut sources = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
        let source = sources
            .entry(entry)
            .or_insert_with_key(|entry| {
                let source = source();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                source.hash(&mut h);
                Arc::new(RawSource {
                    entry: entry.clone(),
                    source,
                    hash: h.finish(),
                })
            })
            .clone();
        Self {
            source,
            cube_dim,
            dynamic_shared: 0,
            tensor_maps: Vec::new(),
        }
    }

    /// Adds a TMA tensor map: the runtime encodes it on the host (`cuTensorMapEncodeTiled`) and
    /// passes it as the kernel's next `const __grid_constant__ CUtensorMap` parameter; the
    /// tensor maps come first, then each one's own buffer, then the launch's buffers.
    pub(crate) fn with_tensor_map(mut self, map: TensorMapBinding) -> Self {
        self.tensor_maps.push(map);
        self
    }

    /// Launches the kernel with `bytes` of dynamic shared memory (its `extern __shared__` array;
    /// above 48 KB too, up to the device's per-block limit, which the runtime checks).
    pub(crate) fn with_dynamic_shared(mut self, bytes: usize) -> Self {
        self.dynamic_shared = bytes;
        self
    }

    /// Launches the kernel on `count` blocks with `buffers` (in the kernel's parameter order)
    /// and `scalars` (the kernel's last, by-value parameter: a struct of that many `u64`).
    ///
    /// # Safety
    /// The kernel must stay inside the buffers for these scalars (the caller validated the
    /// shapes), and the client must be the CUDA runtime ([`super::raw_cuda_available`]).
    pub(crate) unsafe fn launch<R: Runtime>(
        mut self,
        client: &ComputeClient<R>,
        count: CubeCount,
        buffers: &[&Handle],
        scalars: Vec<u64>,
    ) {
        let mut args = KernelArguments::new();
        let maps = std::mem::take(&mut self.tensor_maps);
        args = args.with_tensor_maps(maps);
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
        // The entry name and a hash of the source: a persistent PTX cache (CubeCL's
        // `compilation.cache`) then never serves the PTX of an older source.
        KernelId::new::<Self>()
            .info((
                self.source.entry.clone(),
                self.source.hash,
                self.dynamic_shared,
            ))
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
        // kernels that only declare static `__shared__` arrays; others reserve their bytes.
        let mut body = Scope::root(false);
        if self.dynamic_shared > 0 {
            // The frontend's index type, as the kernel launcher would register it.
            body.register_type::<usize>(address_type);
            reserve_shared::expand(&mut body, self.dynamic_shared.div_ceil(4));
        }
        let empty = KernelDefinition {
            buffers: vec![],
            tensor_maps: vec![],
            scalars: vec![],
            cube_dim: self.cube_dim,
            body,
            options: KernelOptions {
                kernel_name: self.source.entry.clone(),
                debug_symbols: false,
                cluster_dim: None,
            },
        };
        let repr = compiler.compile(empty, compilation_options, mode, address_type)?;
        Ok(CompiledKernel {
            entrypoint_name: self.source.entry.clone(),
            debug_name: Some("bitlinear raw CUDA kernel"),
            source: self.source.source.clone(),
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

    /// The task compiled by the CUDA compiler, host side only (no GPU needed).
    fn compile_for_cuda(k: &RawCudaKernel) -> CompiledKernel<CudaCompiler> {
        CubeTask::<CudaCompiler>::compile(
            k,
            &mut CudaCompiler::default(),
            &Default::default(),
            ExecutionMode::Unchecked,
            KernelMetadata::address_type(k),
        )
        .expect("compiles")
    }

    /// The CUDA compiler (host side only, no GPU needed) accepts the task and the compiled kernel
    /// carries our source and entry point, with no dynamic shared memory.
    #[test]
    fn compiles_to_the_given_source_with_the_cuda_compiler() {
        let k = RawCudaKernel::cached(
            "my_entry".into(),
            || "extern \"C\" __global__ void my_entry() {}".into(),
            CubeDim::new_1d(256),
        );
        let compiled = compile_for_cuda(&k);
        assert_eq!(compiled.entrypoint_name, "my_entry");
        assert!(compiled.source.contains("void my_entry()"));
        assert_eq!(compiled.cube_dim, CubeDim::new_1d(256));
        assert_eq!(compiled.repr.expect("repr").shared_memory_size(), 0);
    }

    /// A kernel asking for dynamic shared memory gets (at least) that many bytes in the
    /// representation the runtime sizes its launch from, above the 48 KB static limit too.
    #[test]
    fn reserves_the_dynamic_shared_memory_asked_for() {
        for bytes in [4, 1000, 66 * 1024, 129 * 1024] {
            let k = RawCudaKernel::cached(
                format!("dyn_entry_{bytes}"),
                || "extern \"C\" __global__ void dyn_entry() {}".into(),
                CubeDim::new_1d(128),
            )
            .with_dynamic_shared(bytes);
            let got = compile_for_cuda(&k)
                .repr
                .expect("repr")
                .shared_memory_size();
            assert!(
                (bytes..bytes + 64).contains(&got),
                "asked {bytes} bytes, got {got}"
            );
        }
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    /// A source is assembled once per entry name; later launches reuse it (and its id).
    #[test]
    fn sources_are_built_once_per_entry() {
        let mut built = 0;
        let a = RawCudaKernel::cached(
            "cache_test_a".into(),
            || {
                built += 1;
                "source a".into()
            },
            CubeDim::new_1d(32),
        );
        let b = RawCudaKernel::cached(
            "cache_test_a".into(),
            || {
                built += 1;
                "never built".into()
            },
            CubeDim::new_1d(32),
        );
        assert_eq!(built, 1);
        assert!(Arc::ptr_eq(&a.source, &b.source));
        assert_eq!(a.id(), b.id());
        let c = RawCudaKernel::cached(
            "cache_test_c".into(),
            || "source c".into(),
            CubeDim::new_1d(32),
        );
        assert_ne!(a.id(), c.id());
        // Same entry, another block size: another kernel.
        let d = RawCudaKernel::cached("cache_test_a".into(), String::new, CubeDim::new_1d(64));
        assert_ne!(a.id(), d.id());
    }
}
