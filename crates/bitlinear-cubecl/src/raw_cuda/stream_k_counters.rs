//! The stream-K kernels' tile counters, kept between launches.
//!
//! Each tile that several blocks share has a counter on which they count themselves; the block
//! that counts last finishes the tile and sets its counter back to zero (`bl_sk_finish` in
//! `wgmma_common.cuh`), so a launch leaves the counters as zeroed as it found them. One buffer
//! therefore serves every later launch on the same stream, where each launch used to upload a
//! fresh zeroed one: a host-to-device copy in the stream ahead of every stream-K kernel, and the
//! host's staging work. CubeCL gives each host thread its own stream, so the buffers are kept
//! per thread (and per device): launches on one stream run in order and never share counters
//! with a kernel still running on another.

use std::cell::RefCell;

use cubecl::prelude::*;
use cubecl::server::Handle;

/// Bytes of the smallest counter buffer: 1024 shared tiles (more than 7 waves on 132 SMs), so
/// that it is rarely outgrown.
const MIN_BYTES: usize = 4096;

thread_local! {
    /// This thread's counter buffer on each device: the device's key and the buffer's bytes.
    static COUNTERS: RefCell<Vec<(usize, usize, Handle)>> = const { RefCell::new(Vec::new()) };
}

/// A key for the device behind `client`: the address of its properties, which CubeCL keeps in
/// the device's server for as long as the process runs (one server per device and runtime).
fn device_key<R: Runtime>(client: &ComputeClient<R>) -> usize {
    std::ptr::from_ref(client.properties()) as usize
}

/// At least `count` zeroed `u32` counters for a stream-K launch on `client`'s device from this
/// thread: the buffer the previous launch left zeroed, or a new zeroed one (the first launch,
/// or more counters than it has; rounded up to a power of two).
pub(super) fn zeroed_counters<R: Runtime>(client: &ComputeClient<R>, count: usize) -> Handle {
    let key = device_key(client);
    let bytes = 4 * count.max(1);
    COUNTERS.with(|cell| {
        let mut buffers = cell.borrow_mut();
        if let Some((_, have, handle)) = buffers.iter().find(|(k, _, _)| *k == key) {
            if *have >= bytes {
                return handle.clone();
            }
        }
        let size = bytes.next_power_of_two().max(MIN_BYTES);
        let handle = client.create_from_slice(&vec![0u8; size]);
        buffers.retain(|(k, _, _)| *k != key);
        buffers.push((key, size, handle.clone()));
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cubecl::wgpu::{WgpuDevice, WgpuRuntime};

    fn read_u32(client: &ComputeClient<WgpuRuntime>, h: &Handle) -> Vec<u32> {
        let bytes = client.read_one(h.clone()).expect("read");
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// Which memory a handle stands for (CubeCL exposes the id only through `Debug`).
    fn memory_id(h: &Handle) -> String {
        let debug = format!("{:?}", h.memory);
        debug
            .split("location")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// The buffer is zeroed, kept for later launches on this thread, replaced by a larger
    /// zeroed one when outgrown, and not shared with another thread (another stream).
    #[test]
    fn counters_are_zeroed_kept_and_grown_per_thread() {
        let client = WgpuRuntime::client(&WgpuDevice::default());
        let first = zeroed_counters(&client, 10);
        assert!(memory_id(&first).contains("id"), "{:?}", first.memory);
        assert_eq!(first.size() as usize, MIN_BYTES);
        assert!(read_u32(&client, &first).iter().all(|&c| c == 0));
        // The same memory (not a copy of it) while it is large enough, from any client of the
        // device.
        assert_eq!(device_key(&client), device_key(&client.clone()));
        let again = zeroed_counters(&client.clone(), MIN_BYTES / 4);
        assert_eq!(memory_id(&again), memory_id(&first));
        // Outgrown: a new zeroed buffer, kept in turn.
        let grown = zeroed_counters(&client, MIN_BYTES / 4 + 1);
        assert_eq!(grown.size() as usize, 2 * MIN_BYTES);
        assert_ne!(memory_id(&grown), memory_id(&first));
        assert!(read_u32(&client, &grown).iter().all(|&c| c == 0));
        assert_eq!(memory_id(&zeroed_counters(&client, 1)), memory_id(&grown));
        // Another thread (another CubeCL stream) has its own.
        let other = std::thread::spawn(move || memory_id(&zeroed_counters(&client, 1)))
            .join()
            .expect("thread");
        assert_ne!(other, memory_id(&grown));
        assert_ne!(other, memory_id(&first));
    }
}
