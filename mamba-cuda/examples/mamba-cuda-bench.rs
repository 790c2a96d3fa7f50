//! `mamba-cuda-bench`: times the forward ops and the Mamba2Block on the GPU, each call
//! as a user makes it (device-resident inputs, no graph capture), with CUDA events
//! around every call; prints the median after warm-up and the achieved bandwidth
//! against a measured device-to-device copy.
//!
//! ```text
//! MAMBA_CUDA_PLUGIN=target/cuda/libmamba_cuda.so \
//!   cargo run --release -p mamba-cuda --example mamba-cuda-bench -- [--quick] [--sweep] [--only SUBSTR] [--json FILE]
//! ```
//!
//! The SSD forward it times is the one the plugin picks; `MAMBA_CUDA_SSD_IMPL` =
//! `recurrent` | `chunked` | `wmma` | `split3` | `auto` (default) forces a form, so
//! one device call can compare them (src/gpu/ops.rs `ssd_chunk_plan`).
//!
//! Minimal bytes count each input read once and each output written once; GB/s is
//! those bytes over the median time.

use mamba_core::abi::{self, BlockConfigC, SelectiveScanDesc, SsdDesc, TensorDesc};
use mamba_core::plugin::{
    self, median, BlockWeights, CudaBackend, CudaStream, DeviceBuffer, DeviceElement,
};
use mamba_core::{bf16, f16, Error};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| lo + (hi - lo) * 0.5 * (self.next() + 1.0))
            .collect()
    }
}

trait Store: DeviceElement {
    fn of(v: f32) -> Self;
    const NAME: &'static str;
}
impl Store for f32 {
    fn of(v: f32) -> Self {
        v
    }
    const NAME: &'static str = "f32";
}
impl Store for bf16 {
    fn of(v: f32) -> Self {
        bf16::from_f32(v)
    }
    const NAME: &'static str = "bf16";
}
impl Store for f16 {
    fn of(v: f32) -> Self {
        f16::from_f32(v)
    }
    const NAME: &'static str = "f16";
}

fn up<T: Store>(be: &CudaBackend, s: &CudaStream, v: &[f32]) -> Result<DeviceBuffer<T>, Error> {
    let c: Vec<T> = v.iter().map(|&x| T::of(x)).collect();
    be.upload(&c, s)
}

struct Row {
    name: String,
    median_us: f64,
    min_us: f64,
    bytes: f64,
    flops: f64,
    reference_us: Option<f64>,
    target_us: Option<f64>,
}

struct Bench<'a> {
    only: Option<String>,
    be: &'a CudaBackend,
    stream: CudaStream,
    warmup: usize,
    iters: usize,
    rows: Vec<Row>,
    copy_gbs: f64,
}

impl<'a> Bench<'a> {
    fn skip(&self, name: &str) -> bool {
        self.only.as_deref().is_some_and(|o| !name.contains(o))
    }

    fn time(&self, mut f: impl FnMut() -> Result<(), Error>) -> Result<(f64, f64), Error> {
        // Also the host time of each call (what the plugin spends before it returns: checks,
        // lookups, the launch), printed apart.
        let mut host = Vec::with_capacity(self.warmup + self.iters);
        let t = self
            .be
            .time_calls(&self.stream, self.warmup, self.iters, || {
                let t0 = std::time::Instant::now();
                let r = f();
                host.push(t0.elapsed().as_secs_f64() * 1e6);
                r
            })?;
        let host = median(&host[self.warmup.min(host.len())..]);
        eprintln!("  (host time per call: median {host:.2} us)");
        let min = t.iter().cloned().fold(f64::INFINITY, f64::min);
        Ok((median(&t), min))
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: String,
        (med, min): (f64, f64),
        bytes: f64,
        flops: f64,
        reference_us: Option<f64>,
        target_us: Option<f64>,
    ) {
        let gbs = bytes / med / 1e3;
        eprintln!(
            "{name:<48} {med:>10.2} us  (min {min:>9.2})  {gbs:>8.1} GB/s  {:>5.1}% of copy{}",
            100.0 * gbs / self.copy_gbs,
            match (reference_us, target_us) {
                (Some(r), Some(t)) => format!("  [mamba-ssm {r:.0} us, target {t:.0} us]"),
                (None, Some(t)) => format!("  [target {t:.0} us]"),
                _ => String::new(),
            }
        );
        self.rows.push(Row {
            name,
            median_us: med,
            min_us: min,
            bytes,
            flops,
            reference_us,
            target_us,
        });
    }

    fn copy_bandwidth(&mut self) -> Result<(), Error> {
        let n = 256 << 20; // 1 GiB of f32
        let a = self.be.zeros::<f32>(n, &self.stream)?;
        let b = self.be.zeros::<f32>(n, &self.stream)?;
        let api = self.be.api();
        let (pa, pb, raw) = (a.ptr(), b.ptr(), self.stream.raw());
        let t = self.time(|| {
            // SAFETY: two live device buffers of n floats each.
            let code = unsafe { (api.memcpy_dtod)(pb, pa, n * 4, raw) };
            if code == 0 {
                Ok(())
            } else {
                Err(Error::Backend {
                    backend: "cuda",
                    message: format!("memcpy_dtod: {code}"),
                })
            }
        })?;
        self.copy_gbs = 2.0 * (n * 4) as f64 / t.0 / 1e3;
        // The floor of any timed call: two events around one 4-byte memset.
        let tiny = self.time(|| {
            // SAFETY: the first 4 bytes of a live device buffer.
            let code = unsafe { (api.memset)(pa, 0, 4, raw) };
            if code == 0 {
                Ok(())
            } else {
                Err(Error::Backend {
                    backend: "cuda",
                    message: format!("memset: {code}"),
                })
            }
        })?;
        eprintln!(
            "timing floor (events around a 4-byte memset): median {:.2} us",
            tiny.0
        );
        eprintln!(
            "device-to-device copy: {:.0} GB/s (read + write), median {:.1} us for 1 GiB",
            self.copy_gbs, t.0
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn scan1<T: Store>(
        &mut self,
        b: usize,
        d: usize,
        n: usize,
        l: usize,
        reference: Option<f64>,
        target: Option<f64>,
        tag: &str,
    ) -> Result<(), Error> {
        let name = format!("scan1 {} b{b} d{d} N{n} L{l}{tag}", T::NAME);
        if self.skip(&name) {
            return Ok(());
        }
        let mut rng = Rng(7);
        let (be, s) = (self.be, &self.stream);
        let io = b * d * l;
        let u = up::<T>(be, s, &rng.vec(io, -1.0, 1.0))?;
        let delta = up::<T>(be, s, &rng.vec(io, -3.0, 0.0))?;
        let z = up::<T>(be, s, &rng.vec(io, -1.0, 1.0))?;
        let a = be.upload(&rng.vec(d * n, -8.0, -0.5), s)?;
        let bm = up::<T>(be, s, &rng.vec(b * n * l, -1.0, 1.0))?;
        let cm = up::<T>(be, s, &rng.vec(b * n * l, -1.0, 1.0))?;
        let dv = be.upload(&rng.vec(d, -1.0, 1.0), s)?;
        let bias = be.upload(&rng.vec(d, -4.0, -1.0), s)?;
        let out = be.alloc::<T>(io)?;
        let desc = SelectiveScanDesc {
            u: u.desc(&[b, d, l]),
            delta: delta.desc(&[b, d, l]),
            a: a.desc(&[d, n]),
            b: bm.desc(&[b, n, l]),
            c: cm.desc(&[b, n, l]),
            d: dv.desc(&[d]),
            z: z.desc(&[b, d, l]),
            delta_bias: bias.desc(&[d]),
            initial_state: TensorDesc::NONE,
            out: out.desc(&[b, d, l]),
            last_state: TensorDesc::NONE,
            delta_softplus: 1,
            reserved: 0,
        };
        // SAFETY: every pointer is a live buffer above with the shape of its descriptor.
        let t = self.time(|| unsafe { be.selective_scan_device(&desc, s) })?;
        let es = std::mem::size_of::<T>() as f64;
        let bytes = es * (4 * io + 2 * b * n * l) as f64 + 4.0 * (d * n + 2 * d) as f64;
        let flops = 7.0 * (b * d * n * l) as f64;
        self.push(name, t, bytes, flops, reference, target);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn ssd<T: Store>(
        &mut self,
        b: usize,
        l: usize,
        h: usize,
        p: usize,
        n: usize,
        reference: Option<f64>,
        target: Option<f64>,
        tag: &str,
    ) -> Result<(), Error> {
        let name = format!("ssd {} b{b} L{l} h{h} p{p} N{n}{tag}", T::NAME);
        if self.skip(&name) {
            return Ok(());
        }
        let mut rng = Rng(11);
        let (be, s) = (self.be, &self.stream);
        let g = 1;
        let io = b * l * h * p;
        let x = up::<T>(be, s, &rng.vec(io, -1.0, 1.0))?;
        let dt = up::<T>(be, s, &rng.vec(b * l * h, -3.0, 0.0))?;
        let a = be.upload(&rng.vec(h, -8.0, -1.0), s)?;
        let bm = up::<T>(be, s, &rng.vec(b * l * g * n, -1.0, 1.0))?;
        let cm = up::<T>(be, s, &rng.vec(b * l * g * n, -1.0, 1.0))?;
        let dv = be.upload(&rng.vec(h, -1.0, 1.0), s)?;
        let bias = be.upload(&rng.vec(h, -4.0, -1.0), s)?;
        let out = be.alloc::<T>(io)?;
        let desc = SsdDesc {
            x: x.desc(&[b, l, h, p]),
            dt: dt.desc(&[b, l, h]),
            a: a.desc(&[h]),
            b: bm.desc(&[b, l, g, n]),
            c: cm.desc(&[b, l, g, n]),
            d: dv.desc(&[h]),
            dt_bias: bias.desc(&[h]),
            out: out.desc(&[b, l, h, p]),
            dt_softplus: 1,
            ..SsdDesc::default()
        };
        // SAFETY: every pointer is a live buffer above with the shape of its descriptor.
        let t = self.time(|| unsafe { be.ssd_device(&desc, s) })?;
        let es = std::mem::size_of::<T>() as f64;
        let bytes = es * (2 * io + b * l * h + 2 * b * l * g * n) as f64;
        let flops = 4.0 * (b * h * p * n * l) as f64;
        self.push(name, t, bytes, flops, reference, target);
        Ok(())
    }

    /// A block of the SPEC's defaults (`d_model`, `N`, head dim 64, one group) with the
    /// bench's fixed random weights, its storage type T.
    fn make_block<T: Store>(
        &self,
        dm: u32,
        n: u32,
    ) -> Result<(plugin::CudaBlock, BlockConfigC), Error> {
        let mut rng = Rng(13);
        let cfg = BlockConfigC {
            dtype: T::CODE,
            ..BlockConfigC::new(dm, n)
        };
        let (dmu, di, h, cd, w) = (
            dm as usize,
            cfg.d_inner(),
            cfg.nheads(),
            cfg.conv_dim(),
            cfg.d_conv as usize,
        );
        let in_proj = rng.vec(cfg.d_in_proj() * dmu, -0.07, 0.07);
        let conv_w = rng.vec(cd * w, -0.5, 0.5);
        let conv_b = rng.vec(cd, -0.1, 0.1);
        let dt_bias = rng.vec(h, -4.0, -1.0);
        let a_log = rng.vec(h, 0.0, 2.0);
        let dvec = rng.vec(h, -1.0, 1.0);
        let norm = rng.vec(di, 0.5, 1.5);
        let out_proj = rng.vec(dmu * di, -0.05, 0.05);
        let blk = self.be.block(
            &cfg,
            &BlockWeights {
                in_proj: &in_proj,
                conv_weight: &conv_w,
                conv_bias: Some(&conv_b),
                dt_bias: &dt_bias,
                a_log: &a_log,
                d: &dvec,
                norm_weight: &norm,
                out_proj: &out_proj,
            },
        )?;
        Ok((blk, cfg))
    }

    /// The block's minimal bytes (input and output once, the projections' weights once)
    /// and its flops (the two projections, the scan's four per state element).
    fn block_cost<T: Store>(cfg: &BlockConfigC, b: usize, l: usize) -> (f64, f64) {
        let (dmu, di, n) = (cfg.d_model as usize, cfg.d_inner(), cfg.d_state as usize);
        let es = std::mem::size_of::<T>() as f64;
        let bytes = es * (2 * b * l * dmu + (cfg.d_in_proj() + dmu) * di) as f64;
        let flops = 2.0 * (b * l) as f64 * (dmu * cfg.d_in_proj() + di * dmu) as f64
            + 4.0 * (b * l * di * n) as f64;
        (bytes, flops)
    }

    fn block<T: Store>(
        &mut self,
        b: usize,
        l: usize,
        dm: u32,
        n: u32,
        target: Option<f64>,
    ) -> Result<(), Error> {
        let name = format!("Mamba2Block {} b{b} L{l} d_model{dm} N{n}", T::NAME);
        if self.skip(&name) {
            return Ok(());
        }
        let (blk, cfg) = self.make_block::<T>(dm, n)?;
        let (be, s) = (self.be, &self.stream);
        let dmu = dm as usize;
        let mut rng = Rng(14);
        let input = up::<T>(be, s, &rng.vec(b * l * dmu, -1.0, 1.0))?;
        let mut out = be.alloc::<T>(b * l * dmu)?;
        let mut cs = be.zeros::<f32>(blk.conv_state_len(b), s)?;
        let mut ss = be.zeros::<f32>(blk.ssm_state_len(b), s)?;
        let t =
            self.time(|| blk.forward(&input, b, l, &mut out, Some((&mut cs, &mut ss)), false, s))?;
        let (bytes, flops) = Self::block_cost::<T>(&cfg, b, l);
        self.push(name, t, bytes, flops, None, target);
        Ok(())
    }

    /// The block's training pass on device buffers: the forward alone, the saving forward
    /// + the backward from its activations (every parameter gradient and the input's),
    ///   and that backward alone (from one saving forward's activations).
    fn block_train<T: Store>(&mut self, b: usize, l: usize, dm: u32, n: u32) -> Result<(), Error> {
        let name = format!("Mamba2Block train {} b{b} L{l} d_model{dm} N{n}", T::NAME);
        if self.skip(&name) {
            return Ok(());
        }
        let (blk, cfg) = self.make_block::<T>(dm, n)?;
        let (be, s) = (self.be, &self.stream);
        let len = b * l * dm as usize;
        let mut rng = Rng(14);
        let input = up::<T>(be, s, &rng.vec(len, -1.0, 1.0))?;
        let dout = up::<T>(be, s, &rng.vec(len, -1e-2, 1e-2))?;
        let mut out = be.alloc::<T>(len)?;
        let mut dx = be.alloc::<T>(len)?;
        let mut grads = blk.grads(be)?;
        let mut acts = blk.activations(be, b, l)?;
        let (bytes, flops) = Self::block_cost::<T>(&cfg, b, l);
        let fwd = self.time(|| blk.forward(&input, b, l, &mut out, None, false, s))?;
        // The backward from `acts` into dx and grads.
        let backward = |acts: &plugin::DeviceActivations,
                        dx: &mut DeviceBuffer<T>,
                        grads: &mut plugin::DeviceGrads| {
            let pass = plugin::DeviceBackward {
                input: &input,
                dout: &dout,
                batch: b,
                seqlen: l,
                activations: Some(acts),
                init: None,
                dfinal: None,
            };
            blk.backward(&pass, dx, grads, None, s)
        };
        let pair = self.time(|| {
            blk.forward_train(&input, b, l, &mut out, None, false, &mut acts, s)?;
            backward(&acts, &mut dx, &mut grads)
        })?;
        let bwd = self.time(|| backward(&acts, &mut dx, &mut grads))?;
        self.push(format!("{name} forward"), fwd, bytes, flops, None, None);
        let (b3, f3) = (3.0 * bytes, 3.0 * flops);
        self.push(format!("{name} forward+backward"), pair, b3, f3, None, None);
        self.push(
            format!("{name} backward"),
            bwd,
            2.0 * bytes,
            2.0 * flops,
            None,
            None,
        );
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sweep = args.iter().any(|a| a == "--sweep");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if sweep {
        // The sweeps change overrides at run time: the plugin must read them on every call
        // (set before its first call).
        std::env::set_var("MAMBA_CUDA_ENV_LIVE", "1");
    }
    let be = match plugin::load() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mamba-cuda-bench: no CUDA backend: {e}");
            return;
        }
    };
    eprintln!("device: {}", be.describe());
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let mut bench = Bench {
        only,
        be,
        stream: be.stream().expect("stream"),
        warmup: if quick { 3 } else { 20 },
        iters: if quick { 10 } else { 100 },
        rows: Vec::new(),
        copy_gbs: 4300.0,
    };
    // MAMBA_BENCH_ITERS="warmup,iters" (a profiler run: "1,1").
    if let Some(v) = env_shapes("MAMBA_BENCH_ITERS").and_then(|v| v.into_iter().next()) {
        if let [w, i] = v[..] {
            bench.warmup = w;
            bench.iters = i.max(1);
        }
    }
    let r = (|| -> Result<(), Error> {
        // MAMBA_BENCH_DTYPE=f32|bf16|f16 (default f32): the storage type of the two lists
        // below.
        let dtype = std::env::var("MAMBA_BENCH_DTYPE").unwrap_or_else(|_| "f32".into());
        // MAMBA_BENCH_SCAN1="b,d,N,L;b,d,N,L": only these Mamba-1 shapes.
        if let Some(shapes) = env_shapes("MAMBA_BENCH_SCAN1") {
            for v in shapes {
                if let [b, d, n, l] = v[..] {
                    match dtype.as_str() {
                        "bf16" => bench.scan1::<bf16>(b, d, n, l, None, None, "")?,
                        "f16" => bench.scan1::<f16>(b, d, n, l, None, None, "")?,
                        _ => bench.scan1::<f32>(b, d, n, l, None, None, "")?,
                    }
                }
            }
            return Ok(());
        }
        // MAMBA_BENCH_SSD="b,L,h,p,N;...": only these SSD shapes (one group).
        if let Some(shapes) = env_shapes("MAMBA_BENCH_SSD") {
            for v in shapes {
                if let [b, l, h, p, n] = v[..] {
                    match dtype.as_str() {
                        "bf16" => bench.ssd::<bf16>(b, l, h, p, n, None, None, "")?,
                        "f16" => bench.ssd::<f16>(b, l, h, p, n, None, None, "")?,
                        _ => bench.ssd::<f32>(b, l, h, p, n, None, None, "")?,
                    }
                }
            }
            return Ok(());
        }
        // MAMBA_BENCH_BLOCK="b,L,d_model,N;...": only the block's forward, training pass
        // and backward at these shapes (head dim 64, one group).
        if let Some(shapes) = env_shapes("MAMBA_BENCH_BLOCK") {
            for v in shapes {
                if let [b, l, dm, n] = v[..] {
                    let (dm, n) = (dm as u32, n as u32);
                    match dtype.as_str() {
                        "bf16" => bench.block_train::<bf16>(b, l, dm, n)?,
                        "f16" => bench.block_train::<f16>(b, l, dm, n)?,
                        _ => bench.block_train::<f32>(b, l, dm, n)?,
                    }
                }
            }
            return Ok(());
        }
        if bench.only.is_none() {
            bench.copy_bandwidth()?;
        }
        // The floor of a call: one step.
        bench.scan1::<f32>(2, 384, 64, 1, None, None, "")?;
        for (l, reference) in [(100, 59.0), (400, 81.0), (800, 101.0)] {
            bench.scan1::<f32>(
                2,
                384,
                64,
                l,
                Some(reference),
                (l >= 400).then_some(25.0),
                "",
            )?;
        }
        // The seed shapes in bf16 and f16 (no target).
        for l in [400, 800] {
            bench.scan1::<bf16>(2, 384, 64, l, None, None, "")?;
        }
        for l in [400, 800] {
            bench.scan1::<f16>(2, 384, 64, l, None, None, "")?;
        }
        bench.scan1::<f32>(8, 2048, 16, 2048, Some(1160.0), Some(580.0), "")?;
        bench.scan1::<bf16>(8, 2048, 16, 2048, Some(590.0), Some(295.0), "")?;
        for l in [400, 800] {
            bench.ssd::<f32>(2, l, 6, 64, 64, None, Some(25.0), "")?;
        }
        // The seed shapes in bf16 and f16 (the Mamba2Block's SSD in 16 bits; no target).
        for l in [400, 800] {
            bench.ssd::<bf16>(2, l, 6, 64, 64, None, None, "")?;
        }
        for l in [400, 800] {
            bench.ssd::<f16>(2, l, 6, 64, 64, None, None, "")?;
        }
        bench.ssd::<f32>(8, 2048, 80, 64, 128, Some(1180.0), Some(590.0), "")?;
        bench.ssd::<bf16>(8, 2048, 80, 64, 128, Some(690.0), Some(345.0), "")?;
        bench.block::<f32>(2, 400, 192, 64, Some(100.0))?;
        bench.block::<bf16>(2, 400, 192, 64, Some(100.0))?;
        if sweep {
            eprintln!("--- sweeps (launch-shape overrides) ---");
            let set = |k: &str, v: &str| std::env::set_var(k, v);
            let unset = |k: &str| std::env::remove_var(k);
            for lite in ["0", "1"] {
                set("MAMBA_CUDA_SCAN1_LITE", lite);
                for sv in ["2", "4"] {
                    set("MAMBA_CUDA_SCAN1_S", sv);
                    let tag = format!(" S={sv} lite={lite}");
                    bench.scan1::<f32>(2, 384, 64, 400, None, None, &tag)?;
                    bench.scan1::<f32>(2, 384, 64, 800, None, None, &tag)?;
                    bench.scan1::<f32>(8, 2048, 16, 2048, None, None, &tag)?;
                    bench.scan1::<bf16>(8, 2048, 16, 2048, None, None, &tag)?;
                }
            }
            unset("MAMBA_CUDA_SCAN1_LITE");
            unset("MAMBA_CUDA_SCAN1_S");
        }
        Ok(())
    })();
    if let Err(e) = r {
        eprintln!("mamba-cuda-bench: {e}");
    }
    if let Some(path) = json {
        let mut s = String::from("{\n");
        s += &format!(
            "  \"device\": {:?},\n  \"copy_gbs\": {:.1},\n  \"rows\": [\n",
            be.describe(),
            bench.copy_gbs
        );
        let rows: Vec<String> = bench
            .rows
            .iter()
            .map(|r| {
                format!(
                    "    {{\"name\": {:?}, \"median_us\": {:.3}, \"min_us\": {:.3}, \"bytes\": {:.0}, \"flops\": {:.0}, \"gbs\": {:.1}, \"reference_us\": {}, \"target_us\": {}}}",
                    r.name,
                    r.median_us,
                    r.min_us,
                    r.bytes,
                    r.flops,
                    r.bytes / r.median_us / 1e3,
                    r.reference_us.map_or("null".into(), |v| format!("{v}")),
                    r.target_us.map_or("null".into(), |v| format!("{v}"))
                )
            })
            .collect();
        s += &rows.join(",\n");
        s += "\n  ]\n}\n";
        if let Err(e) = std::fs::write(&path, s) {
            eprintln!("cannot write {path}: {e}");
        }
    }
    let _ = abi::ABI_VERSION;
}

/// The shapes in the env var `name` ("a,b,c;a,b,c"), each as its numbers; None when unset.
fn env_shapes(name: &str) -> Option<Vec<Vec<usize>>> {
    let shapes = std::env::var(name).ok()?;
    Some(
        shapes
            .split(';')
            .map(|sh| {
                sh.split(',')
                    .filter_map(|x| x.trim().parse().ok())
                    .collect()
            })
            .collect(),
    )
}
