//! Reading a mapped buffer back to the host (used by the context's readbacks and by the
//! profiler's timestamp queries).

/// Maps the first `bytes` bytes of a submitted mappable buffer, waits, and copies them out as
/// `T` (the caller unmaps); the error says what failed.
pub(crate) fn map_and_copy<T: bytemuck::Pod>(
    device: &wgpu::Device,
    buffer: &wgpu::Buffer,
    bytes: usize,
) -> Result<Vec<T>, String> {
    let slice = buffer.slice(..bytes as u64);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    // Another thread's poll may run this map's callback; wait for it rather than assume that
    // our own poll did.
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| e.to_string())?;
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(format!("the map callback did not run: {e}")),
    }
    let view = slice.get_mapped_range().map_err(|e| format!("{e:?}"))?;
    Ok(bytemuck::cast_slice::<u8, T>(&view).to_vec())
}
