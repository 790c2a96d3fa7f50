//! SPEC 6: the Mamba2Block on the device. Weights are uploaded once at creation; a
//! forward is five launches on one stream (in_proj GEMM, conv1d+silu on the
//! channel-last xBC slice, SSD, gated RMS norm, out_proj GEMM) with stream-ordered
//! scratch, so blocks chain with no host round trip.

use std::ffi::c_void;

use mamba_core::abi::{dtype, BlockConfigC, BlockForwardDesc, BlockWeightsC};

use super::params::{self, ConvParams, NormParams, SsdParams};
use super::{gpu, mem_alloc, mem_free, memcpy_htod, stream_synchronize, Gpu};
use crate::{PErr, PResult};

pub(crate) struct Block {
    pub(super) cfg: BlockConfigC,
    pub(super) act: u32,
    /// One device allocation holding every weight below (each 256-byte aligned), written
    /// from one host image ([`weight_image`]) at creation and by `block_set_weights`.
    base: u64,
    /// The image's length in bytes.
    image_len: usize,
    /// A page-locked host buffer of `image_len` bytes for `block_set_weights` (its
    /// address; 0 until the first update, or where none could be had).
    host_image: std::sync::Mutex<usize>,
    pub(super) in_proj: u64,
    /// A 16-bit block's in_proj weight as f32 (the storage type's values), for the
    /// backward's products with the f32 gradient on cuBLASLt; 0 for an f32 block and for a
    /// 16-bit block made with dzx in the storage type (`MAMBA_CUDA_BB_DZX16`, the default).
    pub(super) in_proj_f32: u64,
    pub(super) out_proj: u64,
    pub(super) conv_w: u64,
    pub(super) conv_b: u64,
    pub(super) dt_bias: u64,
    pub(super) a: u64,
    pub(super) d: u64,
    pub(super) norm_w: u64,
}

/// Where one forward pass reads and writes (device addresses; 0 = absent).
pub(super) struct FwdBufs {
    pub input: u64,
    /// in_proj's output (m, d_in_proj).
    pub zx: u64,
    /// conv + silu's output (m, conv_dim).
    pub xbc: u64,
    /// The SSD's output (m, d_inner).
    pub y: u64,
    /// The gated norm's output (m, d_inner); may be `xbc` (then xBC is overwritten).
    pub normed: u64,
    /// The block's output (m, d_model); 0: out_proj is skipped.
    pub out: u64,
    /// Conv state read (0: zeros) and written (0: not written); distinct buffers.
    pub conv_init: u64,
    pub conv_final: u64,
    /// SSM state read (0: zeros) and written (0: not written); may be the same buffer.
    pub ssm_init: u64,
    pub ssm_final: u64,
    /// Add the output into `out` (`block_flags::ADD`) instead of overwriting it.
    pub add: bool,
}

/// kernels/misc.cu's `GATED_NORM_PAIRS`: column pairs per thread of `gated_rmsnorm_pairs`.
const GATED_NORM_PAIRS: usize = 4;

/// The fused decode step's B / C conv-state shift, done by the gated norm
/// (`NormParams::shift_*`): the conv state, the conv's input (zx's xBC columns) and its
/// row stride.
#[derive(Clone, Copy)]
struct NormShift {
    state: u64,
    xin: u64,
    xin_ld: usize,
}

/// Copies `bytes` into the device buffer `p` and waits for the copy.
fn write_bytes(p: u64, bytes: &[u8]) -> PResult<()> {
    // SAFETY: `bytes` is a live host slice of the stated length; `p` holds as many.
    unsafe { memcpy_htod(p, bytes.as_ptr() as *const c_void, bytes.len(), 0) }?;
    stream_synchronize(0)
}

/// `v` rounded to the storage type `act` and back to f32.
fn rounded(v: &[f32], act: u32) -> Vec<f32> {
    match act {
        dtype::BF16 => v
            .iter()
            .map(|x| mamba_core::bf16::from_f32(*x).to_f32())
            .collect(),
        dtype::F16 => v
            .iter()
            .map(|x| mamba_core::f16::from_f32(*x).to_f32())
            .collect(),
        _ => v.to_vec(),
    }
}

/// # Safety
/// `p` is null (then `len` must be 0 for an optional weight) or holds `len` floats.
unsafe fn host<'a>(
    p: *const f32,
    len: usize,
    name: &str,
    expected: usize,
    optional: bool,
) -> PResult<Option<&'a [f32]>> {
    if p.is_null() {
        if optional {
            return Ok(None);
        }
        return Err(PErr::invalid(format!(
            "Mamba2Block: weight `{name}` is missing"
        )));
    }
    if len != expected {
        return Err(PErr::invalid(format!(
            "Mamba2Block: weight `{name}` has {len} elements, expected {expected}"
        )));
    }
    // SAFETY: the caller guarantees `p` holds `len` floats.
    Ok(Some(unsafe { std::slice::from_raw_parts(p, len) }))
}

pub(crate) fn check_config(c: &BlockConfigC) -> PResult<()> {
    let bad = |why: String| Err(PErr::invalid(format!("Mamba2Block config: {why}")));
    if c.d_model == 0
        || c.d_state == 0
        || c.d_conv == 0
        || c.expand == 0
        || c.headdim == 0
        || c.ngroups == 0
    {
        return bad(format!("every size must be positive: {c:?}"));
    }
    if !c.d_inner().is_multiple_of(c.headdim as usize) {
        return bad(format!(
            "d_inner = {} is not divisible by headdim = {}",
            c.d_inner(),
            c.headdim
        ));
    }
    if !c.nheads().is_multiple_of(c.ngroups as usize) {
        return bad(format!(
            "heads = {} not divisible by ngroups = {}",
            c.nheads(),
            c.ngroups
        ));
    }
    if !matches!(c.dtype, dtype::F32 | dtype::BF16 | dtype::F16) {
        return bad(format!(
            "dtype must be f32, bf16 or f16, got {}",
            dtype::name(c.dtype)
        ));
    }
    if c.has_dt_limit != 0 && (c.dt_lo.is_nan() || c.dt_hi.is_nan() || c.dt_lo > c.dt_hi) {
        return bad(format!(
            "dt_limit ({}, {}) is not an interval",
            c.dt_lo, c.dt_hi
        ));
    }
    Ok(())
}

/// A block's weights on the host, each checked against the configuration's shapes.
struct HostWeights<'a> {
    in_proj: &'a [f32],
    conv_w: &'a [f32],
    conv_b: Option<&'a [f32]>,
    dt_bias: &'a [f32],
    /// `A = -exp(A_log)`.
    a: Vec<f32>,
    d: &'a [f32],
    norm: &'a [f32],
    out_proj: &'a [f32],
}

/// # Safety
/// The pointers of `w` hold the lengths it states, alive for `'a`.
unsafe fn host_weights<'a>(cfg: &BlockConfigC, w: &BlockWeightsC) -> PResult<HostWeights<'a>> {
    let (dm, di, h, cd, wd) = (
        cfg.d_model as usize,
        cfg.d_inner(),
        cfg.nheads(),
        cfg.conv_dim(),
        cfg.d_conv as usize,
    );
    let req = |p, len, name, expected| -> PResult<&'a [f32]> {
        // SAFETY: the caller guarantees each pointer of `w` holds its stated length; a
        // required weight comes back as Some or an error.
        Ok(unsafe { host(p, len, name, expected, false) }?.unwrap_or(&[]))
    };
    let in_proj = req(
        w.in_proj,
        w.in_proj_len,
        "in_proj.weight",
        cfg.d_in_proj() * dm,
    )?;
    let conv_w = req(w.conv_weight, w.conv_weight_len, "conv1d.weight", cd * wd)?;
    // SAFETY: as above.
    let conv_b = unsafe { host(w.conv_bias, w.conv_bias_len, "conv1d.bias", cd, true) }?;
    let dt_bias = req(w.dt_bias, w.dt_bias_len, "dt_bias", h)?;
    let a_log = req(w.a_log, w.a_log_len, "A_log", h)?;
    let d = req(w.d, w.d_len, "D", h)?;
    let norm = req(w.norm_weight, w.norm_weight_len, "norm.weight", di)?;
    let out_proj = req(w.out_proj, w.out_proj_len, "out_proj.weight", dm * di)?;
    Ok(HostWeights {
        in_proj,
        conv_w,
        conv_b,
        dt_bias,
        a: a_log.iter().map(|v| -v.exp()).collect(),
        d,
        norm,
        out_proj,
    })
}

/// The byte offsets of each weight in a block's device image; `None`: absent.
struct ImageLayout {
    in_proj: usize,
    in_proj_f32: Option<usize>,
    out_proj: usize,
    conv_w: usize,
    conv_b: Option<usize>,
    dt_bias: usize,
    a: usize,
    d: usize,
    norm_w: usize,
}

/// Where each weight of `hw` goes in the block's device image for the storage type
/// `act`: the projections in `act` (and, where `f32_copy`, in_proj's values again as f32),
/// the rest f32, each part 256-byte aligned; and the image's length.
fn image_layout(hw: &HostWeights<'_>, act: u32, f32_copy: bool) -> (ImageLayout, usize) {
    let es = dtype::size(act);
    let mut len = 0usize;
    let mut put = |bytes: usize| {
        let at = len.next_multiple_of(256);
        len = at + bytes;
        at
    };
    let layout = ImageLayout {
        in_proj: put(hw.in_proj.len() * es),
        in_proj_f32: f32_copy.then(|| put(hw.in_proj.len() * 4)),
        out_proj: put(hw.out_proj.len() * es),
        conv_w: put(hw.conv_w.len() * 4),
        conv_b: hw.conv_b.map(|b| put(b.len() * 4)),
        dt_bias: put(hw.dt_bias.len() * 4),
        a: put(hw.a.len() * 4),
        d: put(hw.d.len() * 4),
        norm_w: put(hw.norm.len() * 4),
    };
    (layout, len)
}

/// Writes `v` in the storage type `act` at the start of `dst`.
fn put_values(dst: &mut [u8], v: &[f32], act: u32) {
    match act {
        dtype::BF16 => dst
            .chunks_exact_mut(2)
            .zip(v)
            .for_each(|(d, x)| d.copy_from_slice(&mamba_core::bf16::from_f32(*x).to_le_bytes())),
        dtype::F16 => dst
            .chunks_exact_mut(2)
            .zip(v)
            .for_each(|(d, x)| d.copy_from_slice(&mamba_core::f16::from_f32(*x).to_le_bytes())),
        _ => dst
            .chunks_exact_mut(4)
            .zip(v)
            .for_each(|(d, x)| d.copy_from_slice(&x.to_le_bytes())),
    }
}

/// Fills `img` (the length [`image_layout`] gave) with the weights of `hw`.
fn write_image(hw: &HostWeights<'_>, act: u32, at: &ImageLayout, img: &mut [u8]) {
    let f = dtype::F32;
    put_values(&mut img[at.in_proj..], hw.in_proj, act);
    if let Some(o) = at.in_proj_f32 {
        put_values(&mut img[o..], &rounded(hw.in_proj, act), f);
    }
    put_values(&mut img[at.out_proj..], hw.out_proj, act);
    put_values(&mut img[at.conv_w..], hw.conv_w, f);
    if let (Some(o), Some(b)) = (at.conv_b, hw.conv_b) {
        put_values(&mut img[o..], b, f);
    }
    put_values(&mut img[at.dt_bias..], hw.dt_bias, f);
    put_values(&mut img[at.a..], &hw.a, f);
    put_values(&mut img[at.d..], hw.d, f);
    put_values(&mut img[at.norm_w..], hw.norm, f);
}

/// # Safety
/// `block` is null or a live block from `block_create`; `master` is device memory of `n`
/// f32 (checked against the block's weights), alive until `stream` has run the update.
pub(crate) unsafe fn block_set_weights_device(
    block: *mut c_void,
    master: u64,
    n: usize,
    stream: u64,
) -> PResult<()> {
    let g = super::gpu()?;
    // SAFETY: the caller passes a live block from block_create (or null).
    let b = unsafe { live(block, "set_weights_device") }?;
    let c = &b.cfg;
    let (dm, di, h, cd) = (c.d_model as usize, c.d_inner(), c.nheads(), c.conv_dim());
    // The order of the backward's gradients.
    let lens = [
        c.d_in_proj() * dm,
        cd * c.d_conv as usize,
        cd,
        h,
        h,
        h,
        di,
        dm * di,
    ];
    let total: usize = lens.iter().sum();
    if n != total {
        return Err(PErr::invalid(format!(
            "Mamba2Block set_weights_device: {n} master values for a block of {total}"
        )));
    }
    if master == 0 {
        return Err(PErr::invalid("Mamba2Block set_weights_device: null master"));
    }
    let mut at = [0u64; 8];
    let mut off = master;
    for (a, l) in at.iter_mut().zip(lens) {
        *a = off;
        off += (l * 4) as u64;
    }
    let seg = |src: u64, dst: u64, n: usize, mode: i32| params::ImageSeg {
        src,
        dst,
        n: n as i64,
        mode,
        pad0: 0,
    };
    let mut segs = vec![seg(at[0], b.in_proj, lens[0], 1)];
    if b.in_proj_f32 != 0 {
        segs.push(seg(at[0], b.in_proj_f32, lens[0], 2));
    }
    segs.push(seg(at[1], b.conv_w, lens[1], 0));
    if b.conv_b != 0 {
        segs.push(seg(at[2], b.conv_b, lens[2], 0));
    }
    segs.push(seg(at[3], b.dt_bias, lens[3], 0));
    segs.push(seg(at[4], b.a, lens[4], 3));
    segs.push(seg(at[5], b.d, lens[5], 0));
    segs.push(seg(at[6], b.norm_w, lens[6], 0));
    segs.push(seg(at[7], b.out_proj, lens[7], 1));
    let mut prm = params::ImageParams::default();
    prm.seg[..segs.len()].copy_from_slice(&segs);
    let name = match b.act {
        dtype::BF16 => "set_image_bf16",
        dtype::F16 => "set_image_f16",
        _ => "set_image_f32",
    };
    let f = g.func(name)?;
    let longest = lens.iter().max().copied().unwrap_or(1);
    let blocks = longest.div_ceil(256).min(g.sm_count.max(1) as usize * 4) as u32;
    g.launch(f, (blocks, segs.len() as u32, 1), 256, 0, stream, &prm)
}

/// # Safety
/// The pointers of `w` hold the lengths it states.
pub(crate) unsafe fn block_create(cfg: &BlockConfigC, w: &BlockWeightsC) -> PResult<*mut c_void> {
    gpu()?;
    check_config(cfg)?;
    // SAFETY: the caller guarantees each pointer of `w` holds its stated length.
    let hw = unsafe { host_weights(cfg, w) }?;
    // A 16-bit block keeps in_proj again as f32 only for a backward with f32 dzx
    // (`MAMBA_CUDA_BB_DZX16=0` when the block is made), whose products then run in f32 on
    // cuBLASLt; made with dzx in the storage type (the default), a later `DZX16=0` call takes
    // our mixed-type GEMM instead (4 bytes per weight less on the device and per update).
    let f32_copy = cfg.dtype != dtype::F32 && !super::block_bwd::dzx16_on();
    let (at, len) = image_layout(&hw, cfg.dtype, f32_copy);
    let mut img = vec![0u8; len];
    write_image(&hw, cfg.dtype, &at, &mut img);
    let base = mem_alloc(img.len())?;
    if let Err(e) = write_bytes(base, &img) {
        let _ = mem_free(base);
        return Err(e);
    }
    let p = |off: usize| base + off as u64;
    Ok(Box::into_raw(Box::new(Block {
        cfg: *cfg,
        act: cfg.dtype,
        base,
        image_len: img.len(),
        host_image: std::sync::Mutex::new(0),
        in_proj: p(at.in_proj),
        in_proj_f32: at.in_proj_f32.map_or(0, p),
        out_proj: p(at.out_proj),
        conv_w: p(at.conv_w),
        conv_b: at.conv_b.map_or(0, p),
        dt_bias: p(at.dt_bias),
        a: p(at.a),
        d: p(at.d),
        norm_w: p(at.norm_w),
    })) as *mut c_void)
}

/// Replaces a block's weights in place (same shapes; a conv bias where the block has one
/// and none where it has none), after all work of the context has finished: one copy of
/// the weights' image, no allocation, the block's handle and its cuBLASLt plans kept. On
/// an error during the copy the block's weights are undefined: its owner must not use it.
///
/// # Safety
/// `block` came from [`block_create`] and is alive; the pointers of `w` hold the lengths
/// it states.
pub(crate) unsafe fn block_set_weights(block: *mut c_void, w: &BlockWeightsC) -> PResult<()> {
    gpu()?;
    // SAFETY: the caller passes a live block from block_create (or null).
    let b = unsafe { live(block, "set_weights") }?;
    // SAFETY: the caller guarantees each pointer of `w` holds its stated length.
    let hw = unsafe { host_weights(&b.cfg, w) }?;
    if hw.conv_b.is_some() != (b.conv_b != 0) {
        return Err(PErr::invalid(format!(
            "Mamba2Block set_weights: the block was made {} a conv1d.bias and the new weights {} one",
            if b.conv_b != 0 { "with" } else { "without" },
            if hw.conv_b.is_some() { "have" } else { "lack" }
        )));
    }
    let (at, len) = image_layout(&hw, b.act, b.in_proj_f32 != 0);
    if len != b.image_len {
        return Err(PErr::invalid(format!(
            "Mamba2Block set_weights: an image of {len} bytes for a block of {}",
            b.image_len
        )));
    }
    // The image is written into the block's page-locked buffer (made on the first
    // update), so that the copy runs at the bus's rate; where none can be had, a Vec.
    let mut host = b.host_image.lock().unwrap_or_else(|e| e.into_inner());
    if *host == 0 {
        *host = super::host_alloc(len).map_or(0, |p| p as usize);
    }
    let mut owned = Vec::new();
    let img: &mut [u8] = if *host != 0 {
        // SAFETY: a page-locked buffer of `len` bytes that only this block uses, under
        // its lock; no copy from it is in flight (each update waits for its copy).
        unsafe { std::slice::from_raw_parts_mut(*host as *mut u8, len) }
    } else {
        owned.resize(len, 0u8);
        &mut owned
    };
    write_image(&hw, b.act, &at, img);
    // SAFETY: waits for all work of the context (the old weights may still be in use).
    super::check(unsafe { cust::sys::cuCtxSynchronize() }, "cuCtxSynchronize")?;
    write_bytes(b.base, img)
}

impl Block {
    fn free(&self) {
        let _ = mem_free(self.base);
        let host = *self.host_image.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the block's own page-locked buffer (or null), no copy in flight on it.
        let _ = unsafe { super::host_free(host as *mut c_void) };
    }

    /// The forward's five steps on the buffers of `bf` for `b` sequences of `l` steps.
    pub(super) fn forward_into(
        &self,
        g: &Gpu,
        b: usize,
        l: usize,
        bf: &FwdBufs,
        stream: u64,
    ) -> PResult<()> {
        let c = &self.cfg;
        let m = b * l;
        let (dm, di, h, p, n, ng, cd, wd) = (
            c.d_model as usize,
            c.d_inner(),
            c.nheads(),
            c.headdim as usize,
            c.d_state as usize,
            c.ngroups as usize,
            c.conv_dim(),
            c.d_conv as usize,
        );
        let dip = c.d_in_proj();
        let es = mamba_core::abi::dtype::size(self.act);
        let (zx, xbc, y) = (bf.zx, bf.xbc, bf.y);
        // 1. zxbcdt = u . in_proj^T
        g.gemm.run(
            g,
            self.act,
            m,
            dip,
            dm,
            bf.input,
            dm,
            self.in_proj,
            zx,
            dip,
            false,
            stream,
        )?;
        // 2. xBC = silu(conv1d(xBC)) over time, channel-last, from the state.
        let conv = ConvParams {
            x: zx + (di * es) as u64,
            w: self.conv_w,
            bias: self.conv_b,
            init: bf.conv_init,
            out: xbc,
            final_states: bf.conv_final,
            x_sb: (l * dip) as i64,
            x_sc: 1,
            x_st: dip as i64,
            o_sb: (l * cd) as i64,
            o_sc: 1,
            o_st: cd as i64,
            batch: b as i32,
            channels: cd as i32,
            seqlen: l as i32,
            width: wd as i32,
            silu: 1,
            channel_last: 1,
        };
        super::ops::conv_launch(g, conv, self.act, stream)?;
        // 3-4. y = ssd(x, dt, A, B, C, D, dt_bias, softplus, dt_limit)
        let ssd = SsdParams {
            x: xbc,
            dt: zx + ((dip - h) * es) as u64,
            a: self.a,
            b: xbc + (di * es) as u64,
            c: xbc + ((di + ng * n) * es) as u64,
            d: self.d,
            z: 0,
            dt_bias: self.dt_bias,
            init: bf.ssm_init,
            seq_idx: 0,
            out: y,
            final_states: bf.ssm_final,
            x_sb: (l * cd) as i64,
            x_st: cd as i64,
            dt_sb: (l * dip) as i64,
            dt_st: dip as i64,
            b_sb: (l * cd) as i64,
            b_st: cd as i64,
            c_sb: (l * cd) as i64,
            c_st: cd as i64,
            z_sb: 0,
            z_st: 0,
            out_sb: (l * di) as i64,
            out_st: di as i64,
            batch: b as i32,
            seqlen: l as i32,
            nheads: h as i32,
            headdim: p as i32,
            ngroups: ng as i32,
            dstate: n as i32,
            d_per_channel: 0,
            softplus: 1,
            has_limit: (c.has_dt_limit != 0) as i32,
            lo: c.dt_lo,
            hi: c.dt_hi,
            ..SsdParams::default()
        };
        super::ops::ssd_dispatch(g, ssd, self.act, stream)?;
        self.norm_and_out_proj(g, m, bf, None, stream)
    }

    /// Steps 5-6 of the forward: the gated RMS norm of `bf.y` gated by `bf.zx`'s z
    /// columns into `bf.normed`, and (where `bf.out` is not 0) the output projection;
    /// `shift`: the fused decode step's B / C conv-state shift, done by the norm.
    fn norm_and_out_proj(
        &self,
        g: &Gpu,
        m: usize,
        bf: &FwdBufs,
        shift: Option<NormShift>,
        stream: u64,
    ) -> PResult<()> {
        let c = &self.cfg;
        let (dm, di, ng) = (c.d_model as usize, c.d_inner(), c.ngroups as usize);
        let dip = c.d_in_proj();
        let (zx, y) = (bf.zx, bf.y);
        // 5. gated RMS norm per group, into the (now free) xBC buffer.
        let mut norm = NormParams {
            y,
            z: zx,
            weight: self.norm_w,
            out: bf.normed,
            z_ld: dip as i64,
            m: m as i32,
            d_inner: di as i32,
            group: (di / ng) as i32,
            norm_before_gate: (c.norm_before_gate != 0) as i32,
            eps: c.rmsnorm_eps,
            ..NormParams::default()
        };
        if let Some(sh) = shift {
            let n = c.d_state as usize;
            norm.shift_state = sh.state;
            norm.shift_x = sh.xin;
            norm.shift_x_ld = sh.xin_ld as i64;
            norm.shift_lo = di as i32;
            norm.shift_hi = (di + 2 * ng * n) as i32;
            norm.shift_cd = c.conv_dim() as i32;
            norm.shift_width = c.d_conv as i32;
        }
        let sfx = super::ops::suffix(self.act, "Mamba2Block")?;
        if m > 65535 * 65535 || ng > 65535 {
            return Err(PErr::unsupported(
                "Mamba2Block: too many tokens for one launch",
            ));
        }
        // 256 threads per (token, group); where the blocks are fewer than the SMs (a decode
        // step's few tokens) up to 1024, so that a 1536-wide group takes two values a
        // thread instead of six (`MAMBA_CUDA_NORM_WIDE=0`: 256 always).
        let cap = if m * ng < g.sm_count as usize
            && super::ops::env_str("MAMBA_CUDA_NORM_WIDE").as_deref() != Some("0")
        {
            1024
        } else {
            256
        };
        // Column pairs per access with the row kept in registers (`gated_rmsnorm_pairs`)
        // where every row start is aligned to two elements and the group fits
        // (`MAMBA_CUDA_NORM_PAIRS=1` / `0`, default block_bwd.rs's `NORM_PAIRS_DEFAULT`;
        // off: the kernel above always).
        let gs = di / ng;
        let es = dtype::size(self.act) as u64;
        let pairs = shift.is_none()
            && cap == 256
            && gs.is_multiple_of(2)
            && gs / 2 <= GATED_NORM_PAIRS * 256
            && di.is_multiple_of(2)
            && dip.is_multiple_of(2)
            && [y, zx, bf.normed].iter().all(|&a| a.is_multiple_of(2 * es))
            && super::ops::env_switch(
                "MAMBA_CUDA_NORM_PAIRS",
                super::block_bwd::NORM_PAIRS_DEFAULT,
            );
        let (fnorm, threads) = if pairs {
            let t = (gs / 2).next_power_of_two().clamp(32, 256);
            (g.func(&format!("gated_rmsnorm_pairs_{sfx}"))?, t as u32)
        } else {
            let t = gs.next_power_of_two().clamp(32, cap);
            (g.func(&format!("gated_rmsnorm_{sfx}"))?, t as u32)
        };
        let (gx, gy) = (m as u32, ng as u32);
        g.launch(fnorm, (gx, gy, 1), threads, 0, stream, &norm)?;
        // 6. out = normed . out_proj^T
        if bf.out == 0 {
            return Ok(());
        }
        g.gemm.run(
            g,
            self.act,
            m,
            dm,
            di,
            bf.normed,
            di,
            self.out_proj,
            bf.out,
            dm,
            bf.add,
            stream,
        )
    }

    /// Where the saving forward keeps its activations for `b` sequences of `l` steps:
    /// the byte offsets of zx (m, d_in_proj), xbc (m, conv_dim), y (m, d_inner) and
    /// normed (m, d_inner), in the storage type, each 256-byte aligned, and the total.
    pub(super) fn saved_layout(&self, b: usize, l: usize) -> PResult<([usize; 4], usize)> {
        let c = &self.cfg;
        let m = b
            .checked_mul(l)
            .ok_or_else(|| PErr::invalid("Mamba2Block: batch * seqlen overflows"))?;
        let es = mamba_core::abi::dtype::size(self.act);
        let align = |v: usize| v.div_ceil(256) * 256;
        let cols = [c.d_in_proj(), c.conv_dim(), c.d_inner(), c.d_inner()];
        let mut offs = [0usize; 4];
        let mut at = 0usize;
        for (o, k) in offs.iter_mut().zip(cols) {
            *o = at;
            let bytes = m
                .checked_mul(k * es)
                .ok_or_else(|| PErr::invalid("Mamba2Block: activations overflow"))?;
            at += align(bytes);
        }
        Ok((offs, at))
    }

    /// Checks a caller's saved-activations buffer for `b` x `l` and returns the device
    /// addresses of zx, xbc, y and normed in it.
    pub(super) fn saved_slots(
        &self,
        what: &str,
        b: usize,
        l: usize,
        saved: u64,
        bytes: usize,
    ) -> PResult<[u64; 4]> {
        let (offs, need) = self.saved_layout(b, l)?;
        if saved == 0 {
            return Err(PErr::invalid(format!("{what}: `saved` is a null pointer")));
        }
        if !saved.is_multiple_of(256) {
            return Err(PErr::invalid(format!(
                "{what}: `saved` must be 256-byte aligned (got {saved:#x})"
            )));
        }
        if bytes < need {
            return Err(PErr::invalid(format!(
                "{what}: `saved` holds {bytes} bytes; b={b}, L={l} needs {need} \
                 (block_saved_bytes)"
            )));
        }
        Ok(offs.map(|o| saved + o as u64))
    }

    pub(super) fn forward(
        &self,
        g: &Gpu,
        f: &BlockForwardDesc,
        saved: Option<(u64, usize)>,
        stream: u64,
    ) -> PResult<()> {
        let c = &self.cfg;
        if f.batch == 0 || f.seqlen == 0 {
            return Err(PErr::invalid(
                "Mamba2Block forward: batch and seqlen must be positive",
            ));
        }
        if f.input == 0 || f.out == 0 {
            return Err(PErr::invalid(
                "Mamba2Block forward: `input` and `out` are required",
            ));
        }
        if f.flags & !mamba_core::abi::block_flags::ADD != 0 {
            return Err(PErr::invalid(format!(
                "Mamba2Block forward: unknown flags {:#x} (this plugin knows ADD = 1)",
                f.flags
            )));
        }
        let (b, l) = (f.batch as usize, f.seqlen as usize);
        if saved.is_none() && self.step_wanted(f) {
            return self.step(g, f, stream);
        }
        let m = b * l;
        let (di, cd, wd) = (c.d_inner(), c.conv_dim(), c.d_conv as usize);
        let dip = c.d_in_proj();
        let es = mamba_core::abi::dtype::size(self.act);
        let kept = match saved {
            Some((p, n)) => Some(self.saved_slots("Mamba2Block forward_saving", b, l, p, n)?),
            None => None,
        };
        // With a saved area the activations go there; the scratch holds only the
        // conv state's copy.
        let (zx_bytes, xbc_bytes, y_bytes) = if kept.is_some() {
            (0, 0, 0)
        } else {
            (m * dip * es, m * cd * es, m * di * es)
        };
        let cs_bytes = if f.has_state != 0 && f.conv_state != 0 && wd > 1 {
            b * cd * (wd - 1) * 4
        } else {
            0
        };
        let align = |v: usize| v.div_ceil(256) * 256;
        let total = align(zx_bytes) + align(xbc_bytes) + align(y_bytes) + align(cs_bytes);
        let scratch = if total > 0 {
            g.alloc_async(total, stream)?
        } else {
            0
        };
        let (zx, xbc, y, normed, cs) = match kept {
            Some([zx, xbc, y, normed]) => (zx, xbc, y, normed, scratch),
            None => {
                let zx = scratch;
                let xbc = zx + align(zx_bytes) as u64;
                let y = xbc + align(xbc_bytes) as u64;
                (zx, xbc, y, xbc, y + align(y_bytes) as u64)
            }
        };
        let run = || -> PResult<()> {
            let init = if cs_bytes > 0 {
                super::memcpy_dtod(cs, f.conv_state, cs_bytes, stream)?;
                cs
            } else {
                0
            };
            let bufs = FwdBufs {
                input: f.input,
                zx,
                xbc,
                y,
                normed,
                out: f.out,
                conv_init: init,
                conv_final: f.conv_state,
                ssm_init: if f.has_state != 0 { f.ssm_state } else { 0 },
                ssm_final: f.ssm_state,
                add: f.flags & mamba_core::abi::block_flags::ADD != 0,
            };
            self.forward_into(g, b, l, &bufs, stream)
        };
        let r = run();
        if scratch == 0 {
            return r;
        }
        let fr = g.free_async(scratch, stream);
        r.and(fr)
    }
}

impl Block {
    /// Whether a forward takes the decode-step form ([`Block::step`]): one step from
    /// states held in the caller's buffers, with a conv state to keep (width > 1);
    /// `MAMBA_CUDA_BLOCK_STEP=0` keeps the general forward (the A/B switch that measured
    /// the two).
    fn step_wanted(&self, f: &BlockForwardDesc) -> bool {
        f.seqlen == 1
            && f.has_state != 0
            && f.conv_state != 0
            && f.ssm_state != 0
            && self.cfg.d_conv > 1
            && super::ops::env_str("MAMBA_CUDA_BLOCK_STEP").as_deref() != Some("0")
    }

    /// One decode step of `f.batch` rows, the states updated in place: in_proj, the conv
    /// and SSM steps in one launch (`block_step_fused`; `MAMBA_CUDA_BLOCK_STEP_FUSED=0`
    /// runs them as `block_conv_step` and `block_ssm_step`), the gated norm (which also
    /// shifts the fused step's B / C conv state) and out_proj; four launches, no state
    /// copies. The same values as the general forward at L = 1 to rounding (its SSD takes
    /// its decays from the chunked kernels' exponential); the fused and the two-launch
    /// forms give the same bits.
    fn step(&self, g: &Gpu, f: &BlockForwardDesc, stream: u64) -> PResult<()> {
        let c = &self.cfg;
        let b = f.batch as usize;
        let (di, cd, h, ng) = (c.d_inner(), c.conv_dim(), c.nheads(), c.ngroups as usize);
        let (p, n) = (c.headdim as usize, c.d_state as usize);
        let dip = c.d_in_proj();
        let es = mamba_core::abi::dtype::size(self.act);
        if b > i32::MAX as usize / dip.max(cd) {
            return Err(PErr::unsupported(
                "Mamba2Block step: too many rows for one launch",
            ));
        }
        // The fused form's grid is (p / 8, h, b) with 2N + 8 floats of shared memory.
        let fused = b <= 65535
            && h <= 65535
            && n <= 4096
            && super::ops::env_str("MAMBA_CUDA_BLOCK_STEP_FUSED").as_deref() != Some("0");
        let align = |v: usize| v.div_ceil(256) * 256;
        // The fused form keeps B, C and x in shared memory: no xBC buffer (the norm's
        // output goes to y's buffer then, which the norm reads row by row before it writes).
        let (zx_bytes, xbc_bytes, y_bytes) = (
            b * dip * es,
            if fused { 0 } else { b * cd * es },
            b * di * es,
        );
        let scratch = g.alloc_async(align(zx_bytes) + align(xbc_bytes) + align(y_bytes), stream)?;
        let zx = scratch;
        let xbc = zx + align(zx_bytes) as u64;
        let y = xbc + align(xbc_bytes) as u64;
        let sfx = super::ops::suffix(self.act, "Mamba2Block")?;
        let dt = zx + ((dip - h) * es) as u64;
        let xin = zx + (di * es) as u64;
        let run = || -> PResult<()> {
            g.gemm.run(
                g,
                self.act,
                b,
                dip,
                c.d_model as usize,
                f.input,
                c.d_model as usize,
                self.in_proj,
                zx,
                dip,
                false,
                stream,
            )?;
            let shift = if fused {
                let prm = params::BlockStepParams {
                    xin,
                    dt,
                    conv_state: f.conv_state,
                    conv_w: self.conv_w,
                    conv_b: self.conv_b,
                    state: f.ssm_state,
                    a: self.a,
                    d: self.d,
                    dt_bias: self.dt_bias,
                    y,
                    xin_ld: dip as i64,
                    dt_ld: dip as i64,
                    batch: b as i32,
                    nheads: h as i32,
                    headdim: p as i32,
                    ngroups: ng as i32,
                    dstate: n as i32,
                    width: c.d_conv as i32,
                    softplus: 1,
                    has_limit: (c.has_dt_limit != 0) as i32,
                    lo: c.dt_lo,
                    hi: c.dt_hi,
                };
                let ff = g.func(&format!("block_step_fused_{sfx}"))?;
                let grid = (p.div_ceil(8) as u32, h as u32, b as u32);
                g.launch(ff, grid, 256, (2 * n + 8) * 4, stream, &prm)?;
                Some(NormShift {
                    state: f.conv_state,
                    xin,
                    xin_ld: dip,
                })
            } else {
                let conv = params::BlockConvStepParams {
                    x: xin,
                    state: f.conv_state,
                    w: self.conv_w,
                    bias: self.conv_b,
                    out: xbc,
                    x_ld: dip as i64,
                    batch: b as i32,
                    channels: cd as i32,
                    width: c.d_conv as i32,
                    pad0: 0,
                };
                let blocks = (b * cd).div_ceil(128).min(65535) as u32;
                let fc = g.func(&format!("block_conv_step_{sfx}"))?;
                g.launch(fc, (blocks, 1, 1), 128, 0, stream, &conv)?;
                let ssm = params::BlockSsmStepParams {
                    xbc,
                    dt,
                    state: f.ssm_state,
                    a: self.a,
                    d: self.d,
                    dt_bias: self.dt_bias,
                    y,
                    xbc_ld: cd as i64,
                    dt_ld: dip as i64,
                    batch: b as i32,
                    nheads: h as i32,
                    headdim: p as i32,
                    ngroups: ng as i32,
                    dstate: n as i32,
                    softplus: 1,
                    has_limit: (c.has_dt_limit != 0) as i32,
                    lo: c.dt_lo,
                    hi: c.dt_hi,
                    pad0: 0,
                };
                let rows = b * di;
                let blocks = u32::try_from((rows * 32).div_ceil(128)).map_err(|_| {
                    PErr::unsupported("Mamba2Block step: too many rows for one launch")
                })?;
                let fs = g.func(&format!("block_ssm_step_{sfx}"))?;
                g.launch(fs, (blocks, 1, 1), 128, 0, stream, &ssm)?;
                None
            };
            let bufs = FwdBufs {
                input: f.input,
                zx,
                xbc,
                y,
                normed: if fused { y } else { xbc },
                out: f.out,
                conv_init: 0,
                conv_final: 0,
                ssm_init: 0,
                ssm_final: 0,
                add: f.flags & mamba_core::abi::block_flags::ADD != 0,
            };
            self.norm_and_out_proj(g, b, &bufs, shift, stream)
        };
        let r = run();
        let fr = g.free_async(scratch, stream);
        r.and(fr)
    }
}

/// The block behind an ABI handle; a null handle is refused for the entry `what`.
///
/// # Safety
/// `block` is null or came from [`block_create`] and is alive for `'a`.
pub(super) unsafe fn live<'a>(block: *mut c_void, what: &str) -> PResult<&'a Block> {
    if block.is_null() {
        return Err(PErr::invalid(format!("Mamba2Block {what}: null block")));
    }
    // SAFETY: non-null, so a live block from block_create (the caller's contract).
    Ok(unsafe { &*(block as *const Block) })
}

/// # Safety
/// `block` came from [`block_create`] and is destroyed once.
pub(crate) unsafe fn block_destroy(block: *mut c_void) -> PResult<()> {
    if block.is_null() {
        return Ok(());
    }
    let g = gpu()?;
    // SAFETY: the caller passes a pointer from Box::into_raw in block_create, once.
    let b = unsafe { Box::from_raw(block as *mut Block) };
    // SAFETY: waits for all work of the context (the weights may still be in use).
    super::check(unsafe { cust::sys::cuCtxSynchronize() }, "cuCtxSynchronize")?;
    let _ = g;
    b.free();
    Ok(())
}

/// # Safety
/// `block` came from [`block_create`] and is alive.
pub(crate) unsafe fn block_forward(
    block: *mut c_void,
    desc: &BlockForwardDesc,
    stream: u64,
) -> PResult<()> {
    let g = gpu()?;
    // SAFETY: the caller passes a live block from block_create (or null).
    let b = unsafe { live(block, "forward") }?;
    b.forward(g, desc, None, stream)
}

/// # Safety
/// `block` came from [`block_create`] and is alive.
pub(crate) unsafe fn block_saved_bytes(
    block: *mut c_void,
    batch: u32,
    seqlen: u32,
) -> PResult<usize> {
    gpu()?;
    // SAFETY: the caller passes a live block from block_create (or null).
    let b = unsafe { live(block, "saved_bytes") }?;
    if batch == 0 || seqlen == 0 {
        return Err(PErr::invalid(
            "Mamba2Block saved_bytes: batch and seqlen must be positive",
        ));
    }
    Ok(b.saved_layout(batch as usize, seqlen as usize)?.1)
}

/// # Safety
/// As [`block_forward`]; `saved` is device memory of `bytes` bytes.
pub(crate) unsafe fn block_forward_saving(
    block: *mut c_void,
    desc: &BlockForwardDesc,
    saved: u64,
    bytes: usize,
    stream: u64,
) -> PResult<()> {
    let g = gpu()?;
    // SAFETY: the caller passes a live block from block_create (or null).
    let b = unsafe { live(block, "forward_saving") }?;
    b.forward(g, desc, Some((saved, bytes)), stream)
}
