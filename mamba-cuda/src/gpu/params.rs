//! `#[repr(C)]` mirrors of the kernels' parameter blocks (kernels/common.cuh): the
//! same fields in the same order. Each kernel takes one of these by value.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Scan1Params {
    pub u: u64,
    pub delta: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub z: u64,
    pub delta_bias: u64,
    pub h0: u64,
    pub out: u64,
    pub hlast: u64,
    pub chunk_states: u64,
    pub chunk_dtsum: u64,
    /// Fused time split: each chunk's outgoing state (b, d, K, N).
    pub chunk_incl: u64,
    /// Fused time split: [0] block ticket, then one flag per (chunk, block row).
    pub flags: u64,
    pub batch: i32,
    pub dim: i32,
    pub seqlen: i32,
    pub dstate: i32,
    pub b_groups: i32,
    pub c_groups: i32,
    pub softplus: i32,
    pub seg: i32,
    pub cb: i32,
    pub g: i32,
    pub blocks_per_seg: i32,
    pub async_copy: i32,
    pub nchunks: i32,
    pub chunk_len: i32,
    /// Fused time split: this call's flag values (flag_base, flag_base + 1).
    pub flag_base: u32,
    pub reserved: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SsdParams {
    pub x: u64,
    pub dt: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub z: u64,
    pub dt_bias: u64,
    pub init: u64,
    pub seq_idx: u64,
    pub out: u64,
    pub final_states: u64,
    pub chunk_states: u64,
    pub chunk_decay: u64,
    pub x_sb: i64,
    pub x_st: i64,
    pub dt_sb: i64,
    pub dt_st: i64,
    pub b_sb: i64,
    pub b_st: i64,
    pub c_sb: i64,
    pub c_st: i64,
    pub z_sb: i64,
    pub z_st: i64,
    pub out_sb: i64,
    pub out_st: i64,
    pub batch: i32,
    pub seqlen: i32,
    pub nheads: i32,
    pub headdim: i32,
    pub ngroups: i32,
    pub dstate: i32,
    pub d_per_channel: i32,
    pub softplus: i32,
    pub has_limit: i32,
    pub lo: f32,
    pub hi: f32,
    pub nchunks: i32,
    pub chunk_len: i32,
    pub mode: i32,
    pub qb: i32,
    pub g: i32,
    pub async_copy: i32,
    /// The LM outputs kernels: batch rows in reverse block order (`ssd_rev_i` in
    /// kernels/common.cuh; [`ssd_rev_b`]).
    pub rev_b: i32,
    /// The caller's seq_idx where `seq_idx` carries the LM kernels' headers (their header
    /// kernels reset the state at each packed sequence's first step; 0 = none).
    pub seq_ids: u64,
    /// A call that is one time segment of its rows (`seed::ssdz_segmented_launch`): the row
    /// stride of `seq_idx` in elements (0: `seqlen`).
    pub seq_st: i32,
    /// With `seq_st`: `seq_idx` points inside its row (a segment after the first), so step 0
    /// starts a sequence where its id differs from the step before's (`ssd_starts_seg`).
    pub seq_back: i32,
}

/// Which dimension [`SsdParams::offset_io`] moves along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SsdAxis {
    /// Batch rows (the `*_sb` strides).
    Batch,
    /// Time steps (the `*_st` strides).
    Time,
}

impl SsdParams {
    /// The six activation tensors (x, dt, B, C, z, out) moved `n` positions along `axis`
    /// (`es` bytes per element); a null (absent) tensor stays null. The caller sets the new
    /// extent (`batch` or `seqlen`) and the states.
    pub(crate) fn offset_io(&mut self, axis: SsdAxis, n: i64, es: i64) {
        let pick = |sb: i64, st: i64| if axis == SsdAxis::Batch { sb } else { st };
        let at = |ptr: u64, stride: i64| {
            if ptr == 0 {
                0
            } else {
                ptr.wrapping_add((n * stride * es) as u64)
            }
        };
        self.x = at(self.x, pick(self.x_sb, self.x_st));
        self.dt = at(self.dt, pick(self.dt_sb, self.dt_st));
        self.b = at(self.b, pick(self.b_sb, self.b_st));
        self.c = at(self.c, pick(self.c_sb, self.c_st));
        self.z = at(self.z, pick(self.z_sb, self.z_st));
        self.out = at(self.out, pick(self.out_sb, self.out_st));
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConvParams {
    pub x: u64,
    pub w: u64,
    pub bias: u64,
    pub init: u64,
    pub out: u64,
    pub final_states: u64,
    pub x_sb: i64,
    pub x_sc: i64,
    pub x_st: i64,
    pub o_sb: i64,
    pub o_sc: i64,
    pub o_st: i64,
    pub batch: i32,
    pub channels: i32,
    pub seqlen: i32,
    pub width: i32,
    pub silu: i32,
    pub channel_last: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StateUpdateParams {
    pub state: u64,
    pub x: u64,
    pub dt: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub z: u64,
    pub dt_bias: u64,
    pub out: u64,
    pub batch: i32,
    pub nheads: i32,
    pub headdim: i32,
    pub ngroups: i32,
    pub dstate: i32,
    pub softplus: i32,
    pub has_limit: i32,
    pub lo: f32,
    pub hi: f32,
    pub pad0: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConvUpdateParams {
    pub state: u64,
    pub x: u64,
    pub w: u64,
    pub bias: u64,
    pub out: u64,
    pub batch: i32,
    pub channels: i32,
    pub steps: i32,
    pub width: i32,
    pub state_len: i32,
    pub silu: i32,
}

/// kernels/common.cuh `BlockConvStepParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockConvStepParams {
    pub x: u64,
    pub state: u64,
    pub w: u64,
    pub bias: u64,
    pub out: u64,
    pub x_ld: i64,
    pub batch: i32,
    pub channels: i32,
    pub width: i32,
    pub pad0: i32,
}

/// kernels/common.cuh `BlockSsmStepParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockSsmStepParams {
    pub xbc: u64,
    pub dt: u64,
    pub state: u64,
    pub a: u64,
    pub d: u64,
    pub dt_bias: u64,
    pub y: u64,
    pub xbc_ld: i64,
    pub dt_ld: i64,
    pub batch: i32,
    pub nheads: i32,
    pub headdim: i32,
    pub ngroups: i32,
    pub dstate: i32,
    pub softplus: i32,
    pub has_limit: i32,
    pub lo: f32,
    pub hi: f32,
    pub pad0: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GemmParams {
    pub a: u64,
    pub w: u64,
    pub c: u64,
    pub lda: i64,
    pub ldc: i64,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    /// Non-zero: `c += a . w^T`.
    pub add: i32,
}

/// kernels/misc.cu `AdamWParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AdamWParams {
    pub param: u64,
    pub grad: u64,
    pub m: u64,
    pub v: u64,
    pub n: i64,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub bc1: f32,
    pub bc2: f32,
    pub grad_scale: f32,
}

/// kernels/misc.cu `SumSqParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SumSqParams {
    pub x: u64,
    pub out: u64,
    pub n: i64,
}

/// kernels/misc.cu `ImageSeg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ImageSeg {
    pub src: u64,
    pub dst: u64,
    pub n: i64,
    pub mode: i32,
    pub pad0: i32,
}

/// kernels/misc.cu `ImageParams` (`IMAGE_SEGS` segments).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ImageParams {
    pub seg: [ImageSeg; 10],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AxpyParams {
    pub x: u64,
    pub y: u64,
    pub n: i64,
    pub alpha: f32,
    pub pad0: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NormParams {
    pub y: u64,
    pub z: u64,
    pub weight: u64,
    pub out: u64,
    pub z_ld: i64,
    pub m: i32,
    pub d_inner: i32,
    pub group: i32,
    pub norm_before_gate: i32,
    pub eps: f32,
    pub pad0: i32,
    /// The fused decode step's deferred conv-state shift (0: none): channels
    /// `[shift_lo, shift_hi)` of `shift_state` (m, shift_cd, shift_width - 1) take their
    /// new input from `shift_x` (m, row stride `shift_x_ld`, channel ch at column ch).
    pub shift_state: u64,
    pub shift_x: u64,
    pub shift_x_ld: i64,
    pub shift_lo: i32,
    pub shift_hi: i32,
    pub shift_cd: i32,
    pub shift_width: i32,
}

/// kernels/common.cuh `BlockStepParams`: a Mamba2Block's decode step, conv and SSM in one
/// launch (`block_step_fused`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockStepParams {
    pub xin: u64,
    pub dt: u64,
    pub conv_state: u64,
    pub conv_w: u64,
    pub conv_b: u64,
    pub state: u64,
    pub a: u64,
    pub d: u64,
    pub dt_bias: u64,
    pub y: u64,
    pub xin_ld: i64,
    pub dt_ld: i64,
    pub batch: i32,
    pub nheads: i32,
    pub headdim: i32,
    pub ngroups: i32,
    pub dstate: i32,
    pub width: i32,
    pub softplus: i32,
    pub has_limit: i32,
    pub lo: f32,
    pub hi: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ScanBwdParams {
    pub u: u64,
    pub delta: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub z: u64,
    pub bias: u64,
    pub h0: u64,
    pub seq_idx: u64,
    pub dout: u64,
    pub dlast: u64,
    pub du: u64,
    pub ddelta: u64,
    pub dz: u64,
    pub ddt_acc: u64,
    pub da: u64,
    pub db: u64,
    pub dc: u64,
    pub dd: u64,
    pub dbias: u64,
    pub dh0: u64,
    pub ckpt: u64,
    pub batch: i32,
    pub rows: i32,
    pub seqlen: i32,
    pub dstate: i32,
    pub nheads: i32,
    pub headdim: i32,
    pub b_groups: i32,
    pub c_groups: i32,
    pub softplus: i32,
    pub has_limit: i32,
    pub lo: f32,
    pub hi: f32,
    pub d_per_channel: i32,
    pub seg: i32,
    pub w: i32,
    pub blocks_per_seg: i32,
    pub r: i32,
    pub nseg: i32,
    pub pad0: i32,
    pub pad1: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConvBwdParams {
    pub x: u64,
    pub w: u64,
    pub bias: u64,
    pub init: u64,
    pub dout: u64,
    pub dfinal: u64,
    pub dpre: u64,
    pub dx: u64,
    pub dw: u64,
    pub dbias: u64,
    pub dinit: u64,
    pub x_sb: i64,
    pub x_sc: i64,
    pub x_st: i64,
    pub batch: i32,
    pub channels: i32,
    pub seqlen: i32,
    pub width: i32,
    pub silu: i32,
    pub channel_last: i32,
    /// dout's strides (batch row, channel, step), in elements.
    pub d_sb: i64,
    pub d_sc: i64,
    pub d_st: i64,
    /// dx's strides.
    pub dx_sb: i64,
    pub dx_sc: i64,
    pub dx_st: i64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BwdCastParams {
    pub src: u64,
    pub dst: u64,
    pub n: i64,
}

/// `GateBwdParams` (common.cuh): the SSD gate's backward, elementwise.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GateBwdParams {
    pub dout: u64,
    pub z: u64,
    pub y: u64,
    pub dz: u64,
    pub n: i64,
}

// Sizes as the C compiler lays the structs out (checked against common.cuh by hand:
// pointers and 64-bit strides first, 32-bit scalars after, padded to 8).
const _: () = assert!(std::mem::size_of::<Scan1Params>() == 15 * 8 + 16 * 4);
const _: () = assert!(std::mem::size_of::<SsdParams>() == 14 * 8 + 12 * 8 + 18 * 4 + 8 + 2 * 4);
const _: () = assert!(std::mem::size_of::<ConvParams>() == 6 * 8 + 6 * 8 + 6 * 4);
const _: () = assert!(std::mem::size_of::<StateUpdateParams>() == 10 * 8 + 10 * 4);
const _: () = assert!(std::mem::size_of::<ConvUpdateParams>() == 5 * 8 + 6 * 4);
const _: () = assert!(std::mem::size_of::<BlockConvStepParams>() == 6 * 8 + 4 * 4);
const _: () = assert!(std::mem::size_of::<BlockSsmStepParams>() == 9 * 8 + 10 * 4);
const _: () = assert!(std::mem::size_of::<GemmParams>() == 5 * 8 + 4 * 4);
const _: () = assert!(std::mem::size_of::<NormParams>() == 5 * 8 + 6 * 4 + 3 * 8 + 4 * 4);
const _: () = assert!(std::mem::size_of::<BlockStepParams>() == 12 * 8 + 10 * 4);
const _: () = assert!(std::mem::size_of::<ScanBwdParams>() == 23 * 8 + 20 * 4);
const _: () = assert!(std::mem::size_of::<ConvBwdParams>() == 11 * 8 + 3 * 8 + 6 * 4 + 6 * 8);
const _: () = assert!(std::mem::size_of::<BwdCastParams>() == 3 * 8);
const _: () = assert!(std::mem::size_of::<GateBwdParams>() == 5 * 8);

/// The LM outputs kernels' block order over batch rows: `MAMBA_CUDA_SSD_REV` 1 walks them
/// last row first (the rows the states kernel's last wave read and wrote, possibly still in
/// L2), 0 first row first.
pub(crate) fn ssd_rev_b() -> i32 {
    (super::ops::env_usize("MAMBA_CUDA_SSD_REV").unwrap_or(0) != 0) as i32
}
