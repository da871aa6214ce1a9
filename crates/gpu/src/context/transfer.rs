//! Copies between buffers, uploads, readbacks and device-side reductions read back to the
//! host.

use super::*;

impl GpuContext {
    /// Records a copy of `len` floats of `src` from float `src_at` on into `dst` from float
    /// `dst_at` on (two distinct buffers).
    pub(crate) fn copy_span(
        &self,
        (src, src_at): (&wgpu::Buffer, usize),
        (dst, dst_at): (&wgpu::Buffer, usize),
        len: usize,
    ) {
        if len > 0 {
            self.record(|e| {
                e.copy_buffer_to_buffer(
                    src,
                    (4 * src_at) as u64,
                    dst,
                    (4 * dst_at) as u64,
                    (4 * len) as u64,
                )
            });
        }
    }

    /// Records a copy of `len` floats of `src` into `dst` from float `dst_at` on.
    pub(crate) fn copy_at(
        &self,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        dst_at: usize,
        len: usize,
    ) {
        self.copy_span((src, 0), (dst, dst_at), len);
    }

    /// Records a copy of `len` floats of `src` into `dst`.
    pub(crate) fn copy(&self, src: &wgpu::Buffer, dst: &wgpu::Buffer, len: usize) {
        self.copy_at(src, dst, 0, len);
    }

    /// Submits the pending commands together with a copy of `src` to a staging buffer, waits,
    /// and returns `len` floats.
    pub(crate) fn read(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        Ok(self.read_many(&[(src, 0, len)])?.pop().unwrap_or_default())
    }

    /// Reductions over each of `ranges` in one submission and one readback: `kernel` writes
    /// one partial sum per workgroup (at `out_at` of binding 0, from a buffer kept between
    /// calls); returns each range's partial sums.
    pub(crate) fn reduce_ranges(
        &self,
        kernel: &Kernel,
        ranges: &[Range<usize>],
        params: Params,
        inputs: &[(u32, &wgpu::Buffer)],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let items: Vec<ReduceItem<'_>> = ranges.iter().map(|r| (r.clone(), inputs)).collect();
        self.reduce_many(kernel, &items, params)
    }

    /// [`GpuContext::reduce_ranges`] with inputs of their own per range.
    pub(crate) fn reduce_many(
        &self,
        kernel: &Kernel,
        items: &[ReduceItem<'_>],
        params: Params,
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let jobs: Vec<ReduceJob<'_>> = items
            .iter()
            .map(|(r, inputs)| (kernel, r.clone(), *inputs, params, None))
            .collect();
        self.reduce_jobs(&jobs)
    }

    /// Reductions with kernels, inputs and parameters of their own, read back together: the
    /// per-workgroup partials of each, in order.
    pub(crate) fn reduce_jobs(&self, items: &[ReduceJob<'_>]) -> Result<Vec<Vec<f32>>, GpuError> {
        let (buffer, cap, sources) = self.record_reductions(items);
        let spans: Vec<(&wgpu::Buffer, usize, usize)> =
            sources.iter().map(|&(at, g)| (&buffer, at, g)).collect();
        let out = self.read_many(&spans);
        self.partials.put(buffer, cap);
        out
    }

    /// Records the reductions `items` into the shared partial-sum buffer (taken from its cache;
    /// the caller puts it back): the buffer, its capacity, and each job's span `(first
    /// partial, partials)`.
    pub(super) fn record_reductions(
        &self,
        items: &[ReduceJob<'_>],
    ) -> (wgpu::Buffer, usize, Vec<(usize, usize)>) {
        let counts: Vec<u32> = items
            .iter()
            .map(|(_, r, _, _, _)| u32::try_from(r.len()).expect("lengths fit in u32").max(1))
            .collect();
        let groups: Vec<usize> = counts
            .iter()
            .map(|&c| {
                let (x, y) = Self::grid(c);
                (x * y) as usize
            })
            .collect();
        let (buffer, cap, new) =
            self.partials
                .take(&self.device, groups.iter().sum(), &self.created);
        // A new partial-sum buffer (the old one, if any, is dropped): kernels bind it.
        if new {
            self.buffer_set.fetch_add(1, Ordering::Relaxed);
        }
        let mut at = 0;
        let mut sources = Vec::with_capacity(items.len());
        for (((kernel, range, inputs, params, data), &count), &g) in
            items.iter().zip(&counts).zip(&groups)
        {
            let mut bound: Vec<(u32, &wgpu::Buffer)> = vec![(0, &buffer)];
            bound.extend_from_slice(inputs);
            let p = Params {
                n: range.end as u32,
                start: range.start as u32,
                out_at: at as u32,
                ..*params
            };
            match data {
                Some(data) => self.dispatch_with_data(kernel, count, p, &bound, data),
                None => self.dispatch(kernel, count, p, &bound),
            }
            sources.push((at, g));
            at += g;
        }
        (buffer, cap, sources)
    }

    /// [`GpuContext::read`] of several buffer spans `(buffer, first float, floats)` with one
    /// submission and one wait: every span is copied into one staging buffer (kept between
    /// readbacks), after them the partials of every deferred reduction recorded so far
    /// ([`GpuContext::reduce_jobs_deferred`]), which go to their slots.
    pub(crate) fn read_many(
        &self,
        sources: &[(&wgpu::Buffer, usize, usize)],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let deferred = self.take_deferred();
        let asked: usize = sources.iter().map(|s| s.2).sum();
        let len = asked + deferred.iter().map(|d| d.len()).sum::<usize>();
        if len == 0 {
            for d in deferred {
                d.deliver(self, Some(&[]));
            }
            return Ok(sources.iter().map(|_| Vec::new()).collect());
        }
        let (staging, cap, _) = self.readback.take(&self.device, len, &self.created);
        self.record(|e| {
            let mut offset = 0;
            let spans = sources
                .iter()
                .copied()
                .chain(deferred.iter().map(|d| d.source()));
            for (src, at, n) in spans {
                if n > 0 {
                    e.copy_buffer_to_buffer(src, (4 * at) as u64, &staging, offset, (4 * n) as u64);
                }
                offset += (4 * n) as u64;
            }
        });
        self.flush();
        self.readbacks.fetch_add(1, Ordering::Relaxed);
        let data = match self.map_and_read(&staging, len) {
            Ok(data) => data,
            Err(e) => {
                for d in deferred {
                    d.deliver(self, None);
                }
                return Err(e);
            }
        };
        // Kept only after a good readback (a failed map leaves it in no state to reuse).
        staging.unmap();
        self.readback.put(staging, cap);
        let mut out = Vec::with_capacity(sources.len());
        let mut start = 0;
        for (_, _, n) in sources {
            out.push(data[start..start + n].to_vec());
            start += n;
        }
        for d in deferred {
            let n = d.len();
            d.deliver(self, Some(&data[start..start + n]));
            start += n;
        }
        Ok(out)
    }

    /// Maps the first `len` floats of a submitted staging buffer, waits, and copies them out
    /// (the caller unmaps).
    fn map_and_read(&self, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        map_and_copy(&self.device, staging, 4 * len).map_err(GpuError::Readback)
    }

    /// Records an upload of floats into `dst` (through a buffer mapped at creation and a
    /// recorded copy, so that it keeps its place among the pending commands; `write_buffer`
    /// would run ahead of them).
    pub(crate) fn write(&self, dst: &wgpu::Buffer, data: &[f32]) {
        if data.is_empty() {
            return;
        }
        self.created.fetch_add(1, Ordering::Relaxed);
        let upload = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("upload"),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::COPY_SRC,
            });
        let size = (4 * data.len()) as u64;
        self.record(|e| e.copy_buffer_to_buffer(&upload, 0, dst, 0, size));
    }
}
